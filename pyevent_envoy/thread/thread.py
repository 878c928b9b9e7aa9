"""Thread interfaces (Envoy's ``envoy/thread/thread.h``)."""

from __future__ import annotations

import abc
from typing import Callable

from pyevent_envoy.event.libevent import ffi, lib

__all__ = ["MAX_THREAD_NAME_LENGTH", "Thread", "ThreadFactory", "current_thread_name"]

#: The kernel keeps 15 bytes of a thread's name (16 with the NUL); longer names are cut.
MAX_THREAD_NAME_LENGTH = 15


def current_thread_name() -> str:
    """The calling thread's OS-visible name (what ``top -H`` and ``/proc`` show)."""
    buf = ffi.new("char[]", 64)
    if lib.pe_get_thread_name(buf, 64) != 0:
        return ""
    return ffi.string(buf).decode(errors="replace")


class Thread(abc.ABC):
    """A running thread, started by :meth:`ThreadFactory.create_thread`."""

    __slots__ = ()

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The name as the OS sees it (at most :data:`MAX_THREAD_NAME_LENGTH` bytes)."""

    @abc.abstractmethod
    def join(self) -> None:
        """Wait for the thread's routine to return.  Call it exactly once, from another thread.

        Raises:
            RuntimeError: joined twice, or from the thread itself.
        """


class ThreadFactory(abc.ABC):
    """Creates threads."""

    __slots__ = ()

    @abc.abstractmethod
    def create_thread(self, routine: Callable[[], None], *, name: str = "", priority: int | None = None) -> Thread:
        """Start a thread running ``routine()`` now.

        Args:
            routine: the thread's body; an exception leaving it is reported
                through :func:`threading.excepthook`.
            name: the OS thread name, cut to :data:`MAX_THREAD_NAME_LENGTH` bytes.
            priority: a nice value applied to the new thread (Linux only).
        """

    @abc.abstractmethod
    def current_thread_id(self) -> int:
        """The calling thread's OS id (``gettid()`` on Linux)."""
