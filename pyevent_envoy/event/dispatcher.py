"""The dispatcher interface (Envoy's ``envoy/event/dispatcher.h``).

A dispatcher is one event loop, owned by one thread.  Only :meth:`post`,
:meth:`exit` and :meth:`is_thread_safe` may be called from other threads;
everything else belongs to the thread that runs the loop.

One loop iteration, in order:

1. poll (blocking only when nothing is queued for Python);
2. file events that became ready, then expired timers (a zero delay expires
   after the poll that follows the call), then next-iteration callbacks and
   injected file activations;
3. the same-iteration phase: posts (as a group), deferred deletes (as a
   group) and current-iteration callbacks, in the order they were scheduled.

Ordering between different mechanisms is not guaranteed beyond these phases,
exactly as in Envoy (``source/common/event/libevent_scheduler.h``).  Work
the same-iteration phase schedules for "the current iteration" runs in the
same pass, as in Envoy, but the phase re-drains its queue at most
``MAX_SAME_ITERATION_ROUNDS`` (16) times; what is left then runs after the
next (non-blocking) poll, so nothing starves I/O.
"""

from __future__ import annotations

import abc
import enum
from typing import Any, Callable, Union

from pyevent_envoy.event.file_event import FileEvent, FileReadyCb, FileReadyType, FileTriggerType
from pyevent_envoy.event.schedulable_cb import SchedulableCallback
from pyevent_envoy.event.signal import SignalEvent
from pyevent_envoy.event.timer import Timer, TimerCb

__all__ = ["Dispatcher", "ErrorHandler", "FileDescriptor", "PostCb", "RunType"]

PostCb = Callable[[], None]
ErrorHandler = Callable[[BaseException], None]
FileDescriptor = Union[int, Any]  # an int, or an object with fileno()


class RunType(enum.Enum):
    """How :meth:`Dispatcher.run` runs the loop."""

    #: Until nothing is registered or queued (libevent flags 0), or :meth:`Dispatcher.exit`.
    BLOCK = "block"
    #: One iteration without waiting: run what is ready, then return (``EVLOOP_NONBLOCK``).
    NON_BLOCK = "non_block"
    #: Until :meth:`Dispatcher.exit`, even with nothing registered (``EVLOOP_NO_EXIT_ON_EMPTY``).
    RUN_UNTIL_EXIT = "run_until_exit"


class Dispatcher(abc.ABC):
    """An event loop with Envoy's semantics.  See the module docstring for one iteration."""

    __slots__ = ()

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The name given at construction, e.g. ``worker_0``."""

    @abc.abstractmethod
    def create_timer(self, cb: TimerCb) -> Timer:
        """Return a disabled one-shot :class:`Timer` that calls ``cb()``."""

    @abc.abstractmethod
    def create_schedulable_callback(self, cb: Callable[[], None]) -> SchedulableCallback:
        """Return an unscheduled :class:`SchedulableCallback` that calls ``cb()``."""

    @abc.abstractmethod
    def create_file_event(
        self,
        fd: FileDescriptor,
        cb: FileReadyCb,
        trigger: FileTriggerType,
        events: FileReadyType,
    ) -> FileEvent:
        """Watch ``fd`` for ``events``; ``cb(ready)`` gets the ready bits.

        Args:
            fd: a descriptor, or an object with ``fileno()``; it must stay open
                until the returned event is closed.
            cb: called with a :class:`FileReadyType` on the dispatcher's thread.
            trigger: ``LEVEL`` or ``EDGE``.
            events: the initial interest mask.

        Raises:
            ValueError: ``fd`` is negative.
            LibeventError: libevent refused the descriptor.
        """

    @abc.abstractmethod
    def listen_for_signal(self, signum: int, cb: Callable[[], None]) -> SignalEvent:
        """Call ``cb()`` on the dispatcher's thread each time ``signum`` arrives."""

    @abc.abstractmethod
    def post(self, cb: PostCb) -> None:
        """Run ``cb()`` on the dispatcher's thread.  Callable from any thread.

        Posts run FIFO (in the order the posting threads took the queue's
        lock) in the same-iteration phase, and wake a loop blocked in its
        poll.  Posts queued before :meth:`run` run first, before any other
        event.

        Raises:
            DispatcherClosedError: the dispatcher is closed.
        """

    @abc.abstractmethod
    def deferred_delete(self, obj: Any) -> None:
        """Release ``obj`` later in this iteration, after the current callback returns.

        ``obj.delete_is_pending()`` is called now and ``obj.close()`` later,
        each only if defined.  Objects are released FIFO.
        """

    @abc.abstractmethod
    def clear_deferred_delete_list(self) -> None:
        """Release everything deferred so far, now.  Re-entrant calls are no-ops."""

    @abc.abstractmethod
    def run(self, run_type: RunType = RunType.BLOCK) -> None:
        """Run the loop on the calling thread, which becomes the dispatcher's thread.

        Raises:
            RuntimeError: the loop is already running.
            BaseException: a ``KeyboardInterrupt`` or ``SystemExit`` raised in a
                callback (or by a signal) stops the loop and propagates; other
                exceptions go to the error handler.
        """

    @abc.abstractmethod
    def exit(self) -> None:
        """Make :meth:`run` return after the current iteration.  Callable from any thread.

        Called while the loop is not running, the next :meth:`run` returns
        after its first iteration.
        """

    @abc.abstractmethod
    def is_thread_safe(self) -> bool:
        """True on the thread running the loop (or on any thread before the first run)."""

    #: The value :meth:`approximate_monotonic_time` returns, as a plain
    #: attribute: read it on hot paths, where a call per read costs more than
    #: the read.  Updated by every poll and by
    #: :meth:`update_approximate_monotonic_time`; read only on the
    #: dispatcher's thread.
    approximate_now: float

    @abc.abstractmethod
    def approximate_monotonic_time(self) -> float:
        """``time.monotonic()`` as of the last poll: cheap, and at most one iteration old."""

    @abc.abstractmethod
    def update_approximate_monotonic_time(self) -> None:
        """Refresh the value :meth:`approximate_monotonic_time` returns."""

    @abc.abstractmethod
    def set_error_handler(self, fn: ErrorHandler | None) -> None:
        """Route exceptions raised by callbacks to ``fn(exc)``.

        The default (``None``) logs the traceback to the
        ``pyevent_envoy.event`` logger and keeps the loop running.  ``fn``
        may re-raise to stop :meth:`run`.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Free the loop.  Idempotent; also what leaving a ``with`` block does.

        Pending deferred deletes are released first; events still enabled are
        closed, each with a ``ResourceWarning``; posts still queued are
        dropped with one.  Must not be called while :meth:`run` is running.
        """

    def __enter__(self) -> "Dispatcher":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
