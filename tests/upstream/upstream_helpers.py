"""Helpers for the upstream tests: a stub resolver and ways to run code on workers."""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable, Sequence

from pyevent_envoy.event import DispatcherImpl, RunType
from pyevent_envoy.server import WorkerImpl


class StubResolver:
    """A deterministic ``resolve_fn``: answers from a table, callable from any thread.

    ``answers[name]`` is a list of addresses or an exception to raise.  Each
    call is recorded as ``(name, family)``.  ``gate`` (when set) is a
    ``threading.Event`` every lookup waits on, to hold answers back.
    """

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self.answers: dict[str, Any] = dict(answers or {})
        self.calls: list[tuple[str, int]] = []
        self.threads: set[str] = set()
        self.gate: threading.Event | None = None

    def set(self, name: str, answer: Any) -> None:
        with self._lock:
            self.answers[name] = answer

    def call_count(self, name: str | None = None) -> int:
        with self._lock:
            return sum(1 for called, _family in self.calls if name is None or called == name)

    def __call__(self, name: str, family: int) -> Sequence[str]:
        with self._lock:
            self.calls.append((name, family))
            self.threads.add(threading.current_thread().name)
            gate = self.gate
        if gate is not None:
            gate.wait(30)
        with self._lock:
            answer = self.answers.get(name)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)


def resolver_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("dns_resolver")]


def on_each_worker(workers: Sequence[WorkerImpl], fn: Callable[[], Any]) -> list[Any]:
    """Run ``fn()`` on every worker's thread (after everything already posted) and return the results."""
    results: list[Any] = [None] * len(workers)
    errors: list[BaseException] = []
    done = threading.Barrier(len(workers) + 1, timeout=30)

    def make(i: int) -> Callable[[], None]:
        def run() -> None:
            try:
                results[i] = fn()
            except BaseException as exc:  # reported on the test's thread
                errors.append(exc)
            finally:
                done.wait()

        return run

    for i, worker in enumerate(workers):
        worker.dispatcher.post(make(i))
    done.wait()
    if errors:
        raise errors[0]
    return results


def drain_main(main: DispatcherImpl) -> None:
    """Run what is already posted to the main dispatcher (late DNS answers), so close() finds nothing queued."""
    main.run(RunType.NON_BLOCK)
