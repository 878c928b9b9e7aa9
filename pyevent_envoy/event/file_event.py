"""The file event interface (Envoy's ``envoy/event/file_event.h``)."""

from __future__ import annotations

import abc
import enum
from typing import Callable

__all__ = ["FileEvent", "FileReadyCb", "FileReadyType", "FileTriggerType"]


class FileReadyType(enum.IntFlag):
    """Readiness bits passed to a file event's callback.

    ``CLOSED`` is the peer's close (FIN), libevent's ``EV_CLOSED`` (epoll's
    ``EPOLLRDHUP``); it is reported only when asked for.
    """

    READ = 0x1
    WRITE = 0x2
    CLOSED = 0x4


class FileTriggerType(enum.Enum):
    """How readiness is reported.

    ``LEVEL``: the callback runs on every loop iteration while the condition
    holds.  ``EDGE``: it runs once per change; the consumer must read (or
    write) until ``EAGAIN`` before it can expect another call.  Listeners use
    ``LEVEL``; connections use ``EDGE``, as Envoy does on POSIX.
    """

    LEVEL = "level"
    EDGE = "edge"


FileReadyCb = Callable[[FileReadyType], None]


class FileEvent(abc.ABC):
    """Readiness notifications for one file descriptor.

    Created by :meth:`Dispatcher.create_file_event`, already enabled for the
    events it was created with.  All methods must be called on the
    dispatcher's thread.  The descriptor is not owned: the caller keeps it
    open until :meth:`close`, and closes it after.
    """

    __slots__ = ()

    @abc.abstractmethod
    def activate(self, events: FileReadyType) -> None:
        """Inject readiness whatever the descriptor's real state.

        The callback runs in the *next* loop iteration with ``events``; if the
        descriptor becomes ready first, both are merged into one call.
        """

    @abc.abstractmethod
    def set_enabled(self, events: FileReadyType) -> None:
        """Replace the interest mask with ``events`` (``0`` disables).

        Pending injected events are discarded.  With ``EDGE`` triggering the
        registration is always renewed, which makes the kernel report the
        current readiness again.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop watching the descriptor.  Idempotent; the callback never runs after it."""
