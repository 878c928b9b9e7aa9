"""``TimerImpl``: a one-shot libevent timer (Envoy's ``source/common/event/timer_impl.cc``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyevent_envoy.errors import DispatcherClosedError, LibeventError
from pyevent_envoy.event.event_impl_base import ImplBase
from pyevent_envoy.event.libevent import ffi, lib
from pyevent_envoy.event.timer import _MAX_SECONDS, Duration, Timer, TimerCb, to_seconds

if TYPE_CHECKING:
    from pyevent_envoy.event.libevent_scheduler import LibeventScheduler

__all__ = ["TimerImpl"]


class TimerImpl(ImplBase, Timer):
    """A :class:`~pyevent_envoy.event.Timer` on a libevent ``evtimer``.

    The ``struct event`` is assigned on the first arming, so a timer that is
    never armed costs no C call.
    """

    __slots__ = ("_cb",)

    def __init__(self, scheduler: LibeventScheduler, cb: TimerCb) -> None:
        # ImplBase.__init__, inlined: timers are created on hot paths.
        self._raw = ffi.new("pe_event_t *")
        self._scheduler = scheduler
        self._id = 0
        self._closed = False
        scheduler.events_created += 1
        self._cb = cb

    # Timer

    def enable_timer(self, delay: Duration) -> None:
        if self._closed:
            self._check_open()
        # The fast path must not skip to_seconds()'s clipping: inf would overflow time_t.
        seconds = delay if type(delay) is float and 0.0 <= delay <= _MAX_SECONDS else to_seconds(delay)
        sched = self._scheduler
        loop = sched._loop
        if loop is None:
            raise DispatcherClosedError("the dispatcher is closed")
        armed = sched._armed
        if self._id:
            del armed[self._id]
        rid = next(sched._ids)
        if lib.pe_timer_add(self._raw, loop, rid, seconds) != 0:
            self._id = 0
            raise LibeventError("event_add")
        armed[rid] = self
        self._id = rid

    enable_hr_timer = enable_timer

    def disable_timer(self) -> None:
        self._disarm()

    def enabled(self) -> bool:
        return self._id != 0

    # scheduler

    def _fire(self, ready: int) -> None:
        del self._scheduler._armed[self._id]
        self._id = 0
        self._cb()
