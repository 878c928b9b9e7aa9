"""``LibeventScheduler``: owns the ``event_base`` and runs one loop pass at a time.

One pass of :meth:`LibeventScheduler.run`, which is one iteration
of Envoy's loop:

1. ``event_base_loop(EVLOOP_ONCE)``, with ``EVLOOP_NONBLOCK`` whenever Python
   work is queued, so the poll never blocks while there is work to do.
   libevent polls, moves expired timers to its active queue and runs its
   callbacks, which are C and only append ``(arming id, ready bits)`` records
   (``csrc/shim.c``).
2. The approximate monotonic time is refreshed (in C, right after the poll).
3. The records run in libevent's order: file events, then expired timers.
   A record whose arming id is no longer armed is skipped (the event was
   disabled, re-armed or closed by an earlier callback of the same pass).
4. The next-iteration queue scheduled before this pass runs (zero-delay
   work: ``schedule_callback_next_iteration``, ``FileEvent.activate``).
5. The same-iteration queue runs (current-iteration callbacks, and through
   them the dispatcher's posts and deferred deletes) until it is empty, as
   Envoy's does: work it schedules for the current iteration runs in the same
   pass.  To keep a callback that re-schedules itself forever from starving
   I/O, the queue is re-drained at most :data:`MAX_SAME_ITERATION_ROUNDS`
   times; what is left then runs after the next, non-blocking, poll.

Each callback runs inside ``try``: an ``Exception`` goes to the error
handler and the pass goes on; a ``BaseException`` (``KeyboardInterrupt``,
``SystemExit``) propagates, and the records and queue entries not yet run are
kept for the next pass, so no edge-triggered readiness is lost.
"""

from __future__ import annotations

import abc
import itertools
import time
from typing import Any, Callable

from pyevent_envoy import _event
from pyevent_envoy.errors import DispatcherClosedError, LibeventError
from pyevent_envoy.event import schedulable_cb_impl
from pyevent_envoy.event.file_event import FileReadyCb, FileReadyType, FileTriggerType
from pyevent_envoy.event.file_event_impl import READY_TYPES, FileEventImpl
from pyevent_envoy.event.libevent import ffi, lib
from pyevent_envoy.event.schedulable_cb_impl import SchedulableCallbackImpl
from pyevent_envoy.event.signal_impl import SignalEventImpl
from pyevent_envoy.event.timer import TimerCb
from pyevent_envoy.event.timer_impl import TimerImpl

__all__ = ["LibeventScheduler", "RUN_BLOCK", "RUN_ONCE", "RUN_UNTIL_EXIT"]

_monotonic = time.monotonic
_ONCE = lib.EVLOOP_ONCE
_ONCE_NONBLOCK = lib.EVLOOP_ONCE | lib.EVLOOP_NONBLOCK
_ONCE_NO_EXIT_ON_EMPTY = lib.EVLOOP_ONCE | lib.EVLOOP_NO_EXIT_ON_EMPTY
_WAKE_ID = lib.PE_WAKE_ID
_SHIFT = lib.PE_RECORD_SHIFT
_MASK = lib.PE_RECORD_MASK
_RUN_MANY = lib.PE_RUN_MANY
_RUN_ERROR = lib.PE_RUN_ERROR
_RUN_OOM = lib.PE_RUN_OOM

#: How many times the same-iteration phase re-drains its queue (work it
#: scheduled itself) before the loop polls again.  Envoy (libevent) runs
#: such work in the same pass without limit; the bound is what keeps a
#: callback that re-schedules itself forever from starving I/O.
MAX_SAME_ITERATION_ROUNDS = 16

#: LibeventScheduler.run modes
RUN_ONCE = 0
RUN_BLOCK = 1
RUN_UNTIL_EXIT = 2


class _ClosedQueue(list):
    """The work queues of a closed scheduler: scheduling a callback onto them raises."""

    __slots__ = ()

    def append(self, item: Any) -> None:
        raise DispatcherClosedError("the dispatcher is closed")


class _WakeTarget:
    """Receives the record of the loop's wake-up event."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn = fn

    def _fire(self, ready: int) -> None:
        self._fn()


class LibeventScheduler:
    """The ``event_base`` plus the queues of Python-side work.

    Implements Envoy's ``Scheduler`` and ``CallbackScheduler`` (the timer and
    schedulable-callback factories).  Single-threaded except :meth:`wake`.

    Args:
        on_error: receives each ``Exception`` a callback raises.
        on_wake: runs (on the loop's thread) after :meth:`wake`.
        precise_timers: use ``CLOCK_MONOTONIC`` instead of the coarse clock
            for timer deadlines (``EVENT_BASE_FLAG_PRECISE_TIMER``); costs a
            ``timerfd`` update per poll on Linux.
    """

    __slots__ = (
        "_loop",
        "_armed",
        "_ids",
        "_current",
        "_next",
        "_leftover",
        "_on_error",
        "_internal",
        "events_created",
        "events_closed",
    )

    def __init__(
        self,
        on_error: Callable[[BaseException], None],
        on_wake: Callable[[], None],
        *,
        precise_timers: bool = False,
    ) -> None:
        loop = lib.pe_loop_new(1 if precise_timers else 0)
        if loop == ffi.NULL:
            raise LibeventError("event_base_new_with_config", "cannot create an event base")
        self._loop: Any = loop
        # arming id -> armed object (see event_impl_base); also the keep-alive set
        self._armed: dict[int, Any] = {_WAKE_ID: _WakeTarget(on_wake)}
        self._internal = 1  # armed entries that do not keep RunType.BLOCK running
        self._ids = itertools.count(_WAKE_ID + 1)
        self._current: list[tuple[SchedulableCallbackImpl, int]] = []
        self._next: list[tuple[SchedulableCallbackImpl, int]] = []
        self._leftover: list[int] = []
        self._on_error = on_error
        self.events_created = 0
        self.events_closed = 0

    # factories (Envoy's Scheduler / CallbackScheduler)

    def create_timer(self, cb: TimerCb) -> TimerImpl:
        return TimerImpl(self, cb)

    def create_schedulable_callback(self, cb: Callable[[], None]) -> SchedulableCallbackImpl:
        return SchedulableCallbackImpl(self, cb)

    def create_file_event(
        self, fd: Any, cb: FileReadyCb, trigger: FileTriggerType, events: FileReadyType
    ) -> FileEventImpl:
        return FileEventImpl(self, fd, cb, trigger, events)

    def create_signal_event(self, signum: int, cb: Callable[[], None]) -> SignalEventImpl:
        return SignalEventImpl(self, signum, cb)

    # state

    @property
    def now(self) -> float:
        """``time.monotonic()`` as of the last poll (kept in C by ``pe_loop_run``)."""
        loop = self._loop
        return _monotonic() if loop is None else loop.now

    @now.setter
    def now(self, value: float) -> None:
        if self._loop is not None:
            self._loop.now = value

    @property
    def closed(self) -> bool:
        return self._loop is None

    @property
    def method(self) -> str:
        """libevent's backend, e.g. ``epoll``."""
        return ffi.string(lib.event_base_get_method(self._loop.base)).decode()

    def num_armed(self) -> int:
        """Events registered with libevent on the caller's behalf (internal ones excluded)."""
        return len(self._armed) - self._internal

    def has_queued_work(self) -> bool:
        """True when Python work is waiting, so the next poll must not block."""
        return bool(self._current or self._next or self._leftover)

    def mark_internal(self, delta: int) -> None:
        """Count ``delta`` more armed events as internal (they do not keep BLOCK running)."""
        self._internal += delta

    # the loop

    def wake(self) -> None:
        """Wake the loop from any thread; ``on_wake`` then runs on the loop's thread.

        The caller guarantees the scheduler is not closed concurrently.
        """
        lib.pe_loop_wake(self._loop)

    def run(self, mode: int, dispatcher: Any) -> None:
        """Run loop passes (see the module docstring) until told to stop.

        Args:
            mode: :data:`RUN_ONCE` (one non-blocking pass), :data:`RUN_BLOCK`
                (until nothing is registered or queued) or
                :data:`RUN_UNTIL_EXIT`.
            dispatcher: read for ``_exit_requested`` (stop after the current
                pass) and ``_posts`` (queued posts keep BLOCK running);
                its ``approximate_now`` is set after each poll.

        This is the hot loop of the whole library, so it is one function with
        everything inlined; each step is commented with the phase it is.
        """
        loop = self._loop
        loop_run = lib.pe_loop_run
        armed = self._armed
        armed_get = armed.get
        on_error = self._on_error
        unpack = ffi.unpack
        until_exit = mode == RUN_UNTIL_EXIT
        blocking = mode != RUN_ONCE
        # module constants as locals: this loop runs once per event
        once, once_nonblock, once_no_exit = _ONCE, _ONCE_NONBLOCK, _ONCE_NO_EXIT_ON_EMPTY
        shift, mask, run_many = _SHIFT, _MASK, _RUN_MANY
        max_rounds = MAX_SAME_ITERATION_ROUNDS
        if self._leftover:  # records a BaseException interrupted last time (only it leaves run)
            records, self._leftover = self._leftover, []
            self._run_records(records)
        while True:
            # 1. poll: never block while Python work is queued or exit is pending
            if self._current or self._next or not blocking or dispatcher._exit_requested:
                flags = once_nonblock
            elif until_exit:
                flags = once_no_exit
            elif len(armed) > self._internal or dispatcher._posts:
                flags = once
            else:
                return  # BLOCK with nothing left to wait for
            r = loop_run(loop, flags)  # 2. also refreshes the approximate clock (loop.now)
            dispatcher.approximate_now = loop.now
            nxt = self._next
            if nxt:
                self._next = []
            else:
                nxt = ()  # never alias the live queue: what this pass schedules runs next pass
            # 3. file events, then expired timers, in libevent's order
            if r == 0:
                pass  # no record: nothing became ready (the common case of a busy loop)
            elif r > 0:  # exactly one record, encoded in r
                obj = armed_get(r >> shift)
                if obj is not None:
                    try:
                        try:
                            obj._fire(r & mask)
                        except Exception as exc:
                            on_error(exc)  # may re-raise
                    except BaseException:
                        self._next[:0] = nxt
                        raise
            elif r <= run_many:
                try:
                    self._run_records(unpack(loop.records, run_many - r))
                except BaseException:
                    self._next[:0] = nxt
                    raise
            elif r == _RUN_ERROR:
                raise LibeventError("event_base_loop")
            elif r == _RUN_OOM:
                raise MemoryError("libevent produced more events than could be recorded")
            # 4. next-iteration work scheduled before this pass
            if nxt:
                try:
                    for cb, token in nxt:
                        if cb._token == token:
                            cb._scheduled = 0
                            call = cb._cb  # (a slot read: see FileEventImpl._fire)
                            try:
                                call()
                            except Exception as exc:
                                on_error(exc)
                except BaseException:
                    self._next[:0] = nxt[nxt.index((cb, token)) + 1 :]
                    raise
            # 5. the same-iteration phase: until its queue is empty, but at
            #    most MAX_SAME_ITERATION_ROUNDS rounds before polling again
            current = self._current
            rounds = max_rounds
            while current and rounds:
                rounds -= 1
                self._current = []
                try:
                    for cb, token in current:
                        if cb._token == token:
                            cb._scheduled = 0
                            call = cb._cb  # (a slot read: see FileEventImpl._fire)
                            try:
                                call()
                            except Exception as exc:
                                on_error(exc)
                except BaseException:
                    self._current[:0] = current[current.index((cb, token)) + 1 :]
                    raise
                current = self._current
            if not blocking or dispatcher._exit_requested:
                return

    def _run_records(self, records: list[int]) -> None:
        """Run ``(arming id, ready)`` pairs; on a BaseException keep the rest for the next pass."""
        armed_get = self._armed.get
        on_error = self._on_error
        it = iter(records)
        try:
            for rid, ready in zip(it, it):
                obj = armed_get(rid)
                if obj is not None:
                    try:
                        obj._fire(ready)
                    except Exception as exc:
                        on_error(exc)
        except BaseException:
            rest = list(it)
            if rest:
                self._leftover = rest + self._leftover
            raise

    def close(self) -> list[Any]:
        """Close every armed event, free the base, and return what was closed.

        Internal entries (the wake target) are not returned.
        """
        if self._loop is None:
            return []
        leftovers = [obj for rid, obj in self._armed.items() if isinstance(obj, (TimerImpl, FileEventImpl, SignalEventImpl))]
        for obj in leftovers:
            obj.close()
        for _cb, _token in self._current + self._next:
            _cb.cancel()
        self._current = self._next = _ClosedQueue()
        self._leftover.clear()
        self._armed.clear()
        loop, self._loop = self._loop, None
        lib.pe_loop_free(loop)
        return leftovers


# The per-event methods, in C (csrc/event_module.c): the schedulable
# callbacks' two schedule calls and the file events' _fire.
_event.bind(
    SchedulableCallbackImpl,
    LibeventScheduler,
    FileEventImpl,
    READY_TYPES,
    (schedulable_cb_impl._IDLE, schedulable_cb_impl._CURRENT, schedulable_cb_impl._NEXT),
)
abc.update_abstractmethods(SchedulableCallbackImpl)  # the two schedule calls are SchedulableCallback's
