"""Small helpers for tests: a call recorder, loop pumps, socket pairs, closing a listener.

They work with any :class:`~pyevent_envoy.event.Dispatcher`, so a test written
with them runs unchanged on :class:`~pyevent_envoy.event.DispatcherImpl` and
on :class:`~pyevent_envoy.testing.ReferenceDispatcher`.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

from pyevent_envoy.event.dispatcher import Dispatcher, RunType

__all__ = [
    "Recorder",
    "drain_socket",
    "fill_socket",
    "run_nonblock",
    "run_until",
    "socketpair_nonblocking",
    "stop_listening",
]


class Recorder:
    """Records calls in the order they happen (Envoy's ``ReadyWatcher``).

    ``recorder.callback("timer")`` returns a callable that appends
    ``("timer", args)`` to :attr:`calls` each time it is called, then calls
    ``fn(*args)`` when one was given.  Safe to call from several threads.

    Example::

        rec = Recorder()
        timer = dispatcher.create_timer(rec.callback("timer"))
        ...
        assert rec.labels == ["timer"]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __repr__(self) -> str:
        return f"<Recorder {self.labels!r}>"

    def __len__(self) -> int:
        return len(self.calls)

    def record(self, label: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((label, args))

    def callback(self, label: str, fn: Callable[..., Any] | None = None) -> Callable[..., None]:
        """A callable that records ``label`` with its arguments, then runs ``fn``."""

        def recorded(*args: Any) -> None:
            self.record(label, *args)
            if fn is not None:
                fn(*args)

        recorded.__qualname__ = f"Recorder.callback({label!r})"
        return recorded

    @property
    def labels(self) -> list[str]:
        """The labels of the calls so far, in order."""
        with self._lock:
            return [label for label, _args in self.calls]

    def args(self, label: str) -> list[tuple[Any, ...]]:
        """The arguments of each call recorded under ``label``, in order."""
        with self._lock:
            return [args for name, args in self.calls if name == label]

    def count(self, label: str | None = None) -> int:
        """How many calls were recorded (under ``label`` when given)."""
        with self._lock:
            if label is None:
                return len(self.calls)
            return sum(1 for name, _args in self.calls if name == label)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


def run_nonblock(dispatcher: Dispatcher, n: int = 1) -> None:
    """Run ``n`` loop iterations without waiting (``RunType.NON_BLOCK``)."""
    for _ in range(n):
        dispatcher.run(RunType.NON_BLOCK)


def run_until(
    dispatcher: Dispatcher,
    predicate: Callable[[], bool],
    *,
    timeout: float = 30.0,
    pause: float = 0.001,
) -> int:
    """Run non-blocking iterations until ``predicate()`` holds; return how many ran.

    Between iterations it sleeps ``pause`` seconds of real time, so it suits
    waiting for real timers and other threads; ``timeout`` is generous on
    purpose and only guards against a hang.

    Raises:
        TimeoutError: ``predicate()`` still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    passes = 0
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not reached after {passes} iterations ({timeout} s)")
        dispatcher.run(RunType.NON_BLOCK)
        passes += 1
        if not predicate():
            time.sleep(pause)
    return passes


def socketpair_nonblocking() -> tuple[socket.socket, socket.socket]:
    """A connected ``AF_UNIX`` stream pair, both ends non-blocking."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def stop_listening(sock: socket.socket) -> None:
    """Close a listening socket that a thread may be blocked in ``accept()`` on.

    ``shutdown()`` first: it wakes the ``accept()`` (which then raises
    ``OSError``).  ``close()`` alone leaves the socket listening, its port
    taken and its thread alive for the rest of the process.
    """
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected (some kernels), or already shut
    sock.close()


def fill_socket(sock: socket.socket, chunk: int = 65536) -> int:
    """Write to a non-blocking socket until it would block; return the bytes written."""
    data = b"x" * chunk
    total = 0
    while True:
        try:
            total += sock.send(data)
        except BlockingIOError:
            return total


def drain_socket(sock: socket.socket, chunk: int = 65536) -> bytes:
    """Read from a non-blocking socket until it would block or ends; return what was read."""
    parts = []
    while True:
        try:
            data = sock.recv(chunk)
        except BlockingIOError:
            break
        if not data:
            break
        parts.append(data)
    return b"".join(parts)
