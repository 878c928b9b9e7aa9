"""``DispatcherImpl`` (Envoy's ``source/common/event/dispatcher_impl.cc``).

Owns a :class:`LibeventScheduler` (which owns the ``event_base``) and adds
what Envoy's dispatcher adds on top of the scheduler: cross-thread posts,
deferred deletion, thread affinity, the approximate clock, error routing and
the run modes.  The iteration order is in :mod:`pyevent_envoy.event.dispatcher`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import signal
import socket
import threading
import time
import warnings
from typing import Any, Callable

from pyevent_envoy.errors import DispatcherClosedError
from pyevent_envoy.event.dispatcher import Dispatcher, ErrorHandler, FileDescriptor, PostCb, RunType
from pyevent_envoy.event.file_event import FileReadyCb, FileReadyType, FileTriggerType
from pyevent_envoy.event.file_event_impl import FileEventImpl
from pyevent_envoy.event.libevent_scheduler import RUN_BLOCK, RUN_ONCE, RUN_UNTIL_EXIT, LibeventScheduler
from pyevent_envoy.event.schedulable_cb_impl import SchedulableCallbackImpl
from pyevent_envoy.event.signal_impl import SignalEventImpl
from pyevent_envoy.event.timer import TimerCb
from pyevent_envoy.event.timer_impl import TimerImpl

__all__ = ["DispatcherImpl", "DispatcherStatistics"]

_log = logging.getLogger("pyevent_envoy.event")
_get_ident = threading.get_ident


@dataclasses.dataclass(frozen=True)
class DispatcherStatistics:
    """A snapshot of a dispatcher's bookkeeping, for tests and leak checks.

    Internal events of the dispatcher itself are not counted.
    """

    #: events (timers, file, signal events, schedulable callbacks) created so far
    events_created: int
    #: of those, closed
    events_closed: int
    #: created and not closed: what a leak check expects to return to zero
    events_live: int
    #: registered with libevent right now (enabled file/signal events, armed timers)
    events_armed: int
    #: callbacks posted and not yet run
    posts_pending: int
    #: objects handed to deferred_delete() and not yet released
    deferred_deletes_pending: int


class DispatcherImpl(Dispatcher):
    """A :class:`~pyevent_envoy.event.Dispatcher` on libevent.

    Args:
        name: used in logs and thread names (Envoy: ``main_thread``, ``worker_0``).
        precise_timers: see :class:`LibeventScheduler`.

    Differences from Envoy that Python forces:

    - Dropping the last reference to an enabled event does not disable it:
      the dispatcher keeps it alive until it is disabled or closed.
    - :meth:`run` on the main thread also wakes up for Python's own signal
      handlers (``signal.set_wakeup_fd``), so Ctrl-C raises
      ``KeyboardInterrupt`` out of :meth:`run` even while the loop is waiting.
    """

    __slots__ = (
        "_name",
        "_scheduler",
        "_cloop",
        "approximate_now",
        "_post_lock",
        "_posts",
        "_wake_pending",
        "_closed",
        "_post_cb",
        "_deferred_delete_cb",
        "_to_delete_lists",
        "_current_to_delete",
        "_deleting",
        "_run_tid",
        "_running",
        "_exit_requested",
        "_error_handler",
        "_internal_created",
    )

    def __init__(self, name: str = "dispatcher", *, precise_timers: bool = False) -> None:
        self._name = name
        # Posts: a deque (append/popleft are atomic) and a flag saying a wake
        # is on its way, so only the first post after a drain pays for the
        # wake.  The lock only orders wake() against close().
        self._post_lock = threading.Lock()
        self._posts: collections.deque[PostCb] = collections.deque()
        self._wake_pending = False
        self._closed = False
        self._run_tid: int | None = None
        self._running = False
        self._exit_requested = False
        self._error_handler: ErrorHandler | None = None
        self._scheduler = LibeventScheduler(
            self._on_callback_error, self._on_wake, precise_timers=precise_timers
        )
        # The C loop, whose ``now`` the clock reads directly (None once closed).
        self._cloop = self._scheduler._loop
        self.approximate_now = self._scheduler.now  # the scheduler's run loop refreshes it after each poll
        self._post_cb = self._scheduler.create_schedulable_callback(self._run_post_callbacks)
        self._deferred_delete_cb = self._scheduler.create_schedulable_callback(self.clear_deferred_delete_list)
        self._internal_created = self._scheduler.events_created
        # Two lists alternate, so that objects deferred while one is being
        # released go to the other and get a purge of their own.
        self._to_delete_lists: tuple[list[Any], list[Any]] = ([], [])
        self._current_to_delete = self._to_delete_lists[0]
        self._deleting = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._running else "idle")
        return f"<DispatcherImpl {self._name!r} {state}>"

    # Dispatcher: identity and factories

    @property
    def name(self) -> str:
        return self._name

    @property
    def scheduler(self) -> LibeventScheduler:
        """The scheduler that owns the ``event_base``."""
        return self._scheduler

    def create_timer(self, cb: TimerCb) -> TimerImpl:
        assert self._run_tid is None or self._run_tid == _get_ident(), "create_timer() off the dispatcher's thread"
        return TimerImpl(self._scheduler, cb)

    def create_schedulable_callback(self, cb: Callable[[], None]) -> SchedulableCallbackImpl:
        assert self._run_tid is None or self._run_tid == _get_ident(), "create_schedulable_callback() off the dispatcher's thread"
        return SchedulableCallbackImpl(self._scheduler, cb)

    def create_file_event(
        self,
        fd: FileDescriptor,
        cb: FileReadyCb,
        trigger: FileTriggerType,
        events: FileReadyType,
    ) -> FileEventImpl:
        assert self._run_tid is None or self._run_tid == _get_ident(), "create_file_event() off the dispatcher's thread"
        return FileEventImpl(self._scheduler, fd, cb, trigger, events)

    def listen_for_signal(self, signum: int, cb: Callable[[], None]) -> SignalEventImpl:
        assert self._run_tid is None or self._run_tid == _get_ident(), "listen_for_signal() off the dispatcher's thread"
        return SignalEventImpl(self._scheduler, signum, cb)

    # Dispatcher: posts

    def post(self, cb: PostCb) -> None:
        if self._closed:
            raise DispatcherClosedError(f"dispatcher {self._name!r} is closed")
        self._posts.append(cb)
        if self._wake_pending:
            return  # the drain that is on its way runs cb too (appended before it clears the flag)
        self._wake_pending = True
        if self._running and _get_ident() == self._run_tid:
            self._post_cb.schedule_callback_current_iteration()
            return
        with self._post_lock:
            if not self._closed:
                self._scheduler.wake()

    def _on_wake(self) -> None:
        # Always drain: the drain is what clears _wake_pending.
        self._post_cb.schedule_callback_current_iteration()

    def _run_post_callbacks(self) -> None:
        # As Envoy: purge deferred deletes first, then run what is queued, FIFO.
        if self._current_to_delete and not self._deleting:  # (the common case skips the call)
            self.clear_deferred_delete_list()
        # Clear the flag before taking anything: a post that lands after this
        # point wakes the loop again; one before it is in this drain.
        self._wake_pending = False
        posts = self._posts
        popleft = posts.popleft
        try:
            for _ in range(len(posts)):
                cb = popleft()
                try:
                    cb()
                except Exception as exc:
                    self._on_callback_error(exc)
        except BaseException:
            if posts:  # what did not run stays queued and runs first next time
                self._wake_pending = True
                self._post_cb.schedule_callback_current_iteration()
            raise

    # Dispatcher: deferred deletion

    def deferred_delete(self, obj: Any) -> None:
        assert self._run_tid is None or self._run_tid == _get_ident(), "deferred_delete() off the dispatcher's thread"
        pending = getattr(obj, "delete_is_pending", None)
        if pending is not None:
            pending()
        current = self._current_to_delete
        current.append(obj)
        if len(current) == 1:
            self._deferred_delete_cb.schedule_callback_current_iteration()

    def clear_deferred_delete_list(self) -> None:
        to_delete = self._current_to_delete
        if self._deleting or not to_delete:
            return
        first, second = self._to_delete_lists
        self._current_to_delete = second if to_delete is first else first
        self._deleting = True
        it = iter(to_delete)
        try:
            for obj in it:
                self._release(obj)
        finally:
            rest = list(it)
            to_delete.clear()
            self._deleting = False
            if rest:  # a BaseException escaped: release the rest next time
                self._current_to_delete[:0] = rest
                self._deferred_delete_cb.schedule_callback_current_iteration()

    def _release(self, obj: Any) -> None:
        close = getattr(obj, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                self._on_callback_error(exc)

    # Dispatcher: running

    def run(self, run_type: RunType = RunType.BLOCK) -> None:
        if self._closed:
            raise DispatcherClosedError(f"dispatcher {self._name!r} is closed")
        if self._running:
            raise RuntimeError(f"dispatcher {self._name!r} is already running")
        if not isinstance(run_type, RunType):
            raise TypeError(f"run_type must be a RunType, got {run_type!r}")
        self._running = True
        self._run_tid = _get_ident()
        wakeup = None
        try:
            self._run_post_callbacks()  # startup posts run before any other event
            if run_type is RunType.NON_BLOCK:
                self._scheduler.run(RUN_ONCE, self)
                return
            wakeup = _SignalWakeup.install(self)
            self._scheduler.run(RUN_UNTIL_EXIT if run_type is RunType.RUN_UNTIL_EXIT else RUN_BLOCK, self)
        finally:
            self._exit_requested = False
            self._running = False
            if wakeup is not None:
                wakeup.remove()

    def exit(self) -> None:
        self._exit_requested = True
        if self._running and _get_ident() == self._run_tid:
            return  # checked after the current iteration; no need to wake
        with self._post_lock:
            if not self._closed:
                self._scheduler.wake()

    def is_thread_safe(self) -> bool:
        tid = self._run_tid
        return tid is None or tid == _get_ident()

    # Dispatcher: time and errors

    def approximate_monotonic_time(self) -> float:
        return self.approximate_now if self._cloop is not None else time.monotonic()

    def update_approximate_monotonic_time(self) -> None:
        self._scheduler.now = self.approximate_now = time.monotonic()

    def set_error_handler(self, fn: ErrorHandler | None) -> None:
        self._error_handler = fn

    def _on_callback_error(self, exc: BaseException) -> None:
        handler = self._error_handler
        if handler is None:
            _log.error("unhandled exception in a callback on dispatcher %r", self._name, exc_info=exc)
        else:
            handler(exc)

    # Dispatcher: lifetime

    @property
    def closed(self) -> bool:
        return self._closed

    def statistics(self) -> DispatcherStatistics:
        """Counts of events, posts and deferred deletes; see :class:`DispatcherStatistics`."""
        scheduler = self._scheduler
        created = scheduler.events_created - self._internal_created
        closed = scheduler.events_closed - (self._internal_created if self._closed else 0)
        return DispatcherStatistics(
            events_created=created,
            events_closed=closed,
            events_live=created - closed,
            events_armed=0 if self._closed else scheduler.num_armed(),
            posts_pending=len(self._posts),
            deferred_deletes_pending=len(self._current_to_delete),
        )

    def close(self) -> None:
        if self._closed:
            return
        if self._running:
            raise RuntimeError(f"dispatcher {self._name!r} cannot close while it runs")
        # Deferred objects may own events; release them (and what they defer) first.
        while self._current_to_delete:
            self.clear_deferred_delete_list()
        with self._post_lock:
            self._closed = True
            dropped = len(self._posts)
            self._posts.clear()
        if dropped:
            warnings.warn(
                f"dispatcher {self._name!r} closed with {dropped} posted callback(s) not run",
                ResourceWarning,
                stacklevel=2,
            )
        self._post_cb.close()
        self._deferred_delete_cb.close()
        self._cloop = None
        for obj in self._scheduler.close():
            warnings.warn(
                f"{type(obj).__name__} still enabled when dispatcher {self._name!r} closed; closed it",
                ResourceWarning,
                stacklevel=2,
            )


class _SignalWakeup:
    """Wakes a main-thread loop for Python-level signal handlers.

    Python runs signal handlers on the main thread between bytecodes; a loop
    waiting in ``epoll_wait`` would only see them at its next event.  While
    :meth:`DispatcherImpl.run` waits on the main thread, ``signal.set_wakeup_fd``
    points at a socket the loop watches, so Ctrl-C interrupts the wait and
    ``KeyboardInterrupt`` leaves ``run()``.  Not installed when another
    wakeup fd is set (asyncio sets its own) or off the main thread.
    """

    __slots__ = ("_dispatcher", "_reader", "_writer", "_event")

    @classmethod
    def install(cls, dispatcher: DispatcherImpl) -> "_SignalWakeup | None":
        if threading.current_thread() is not threading.main_thread():
            return None
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        try:
            previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:  # not the main interpreter
            reader.close()
            writer.close()
            return None
        if previous != -1:  # someone else owns it; leave it alone
            signal.set_wakeup_fd(previous)
            reader.close()
            writer.close()
            return None
        self = cls.__new__(cls)
        self._dispatcher = dispatcher
        self._reader = reader
        self._writer = writer
        self._event = dispatcher._scheduler.create_file_event(
            reader, self._drain, FileTriggerType.LEVEL, FileReadyType.READ
        )
        dispatcher._scheduler.mark_internal(1)
        dispatcher._internal_created += 1
        return self

    def _drain(self, _ready: FileReadyType) -> None:
        try:
            while self._reader.recv(4096):
                pass  # the bytes only woke the loop; Python's handlers run on return
        except OSError:
            pass  # drained (EAGAIN)

    def remove(self) -> None:
        current = signal.set_wakeup_fd(-1)
        if current != self._writer.fileno():  # replaced meanwhile: not ours to clear
            signal.set_wakeup_fd(current)
        self._event.close()
        scheduler = self._dispatcher._scheduler
        scheduler.mark_internal(-1)
        # Internal: uncount it entirely, so statistics() keeps showing user events only.
        self._dispatcher._internal_created -= 1
        scheduler.events_created -= 1
        scheduler.events_closed -= 1
        self._reader.close()
        self._writer.close()
