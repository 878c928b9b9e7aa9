"""``SchedulableCallbackImpl`` (Envoy's ``source/common/event/schedulable_cb_impl.cc``).

Envoy schedules these through libevent: ``event_active`` for the current
iteration, a zero timeout for the next.  libevent 2.1 re-runs an event that
is re-activated while its active queue drains, so a callback re-scheduling
itself forever would starve I/O.  These callbacks therefore live in the
scheduler's two Python queues instead (see
:mod:`pyevent_envoy.event.libevent_scheduler`): the same-iteration queue is
re-drained at most ``MAX_SAME_ITERATION_ROUNDS`` times before the loop polls
again.  The observable order is Envoy's, and no C call is involved at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from pyevent_envoy.event.event_impl_base import ImplBase
from pyevent_envoy.event.schedulable_cb import SchedulableCallback

if TYPE_CHECKING:
    from pyevent_envoy.event.libevent_scheduler import LibeventScheduler

__all__ = ["SchedulableCallbackImpl"]

# _scheduled values
_IDLE = 0
_CURRENT = 1
_NEXT = 2


class SchedulableCallbackImpl(ImplBase, SchedulableCallback):
    """A :class:`~pyevent_envoy.event.SchedulableCallback` on the scheduler's queues.

    A queue entry is ``(callback, token)``; every schedule or cancel bumps
    the token, so entries left behind by an earlier call are skipped.
    """

    __slots__ = ("_cb", "_scheduled", "_token")

    def __init__(self, scheduler: LibeventScheduler, cb: Callable[[], None]) -> None:
        ImplBase.__init__(self, scheduler)
        self._cb = cb
        self._scheduled = _IDLE
        self._token = 0

    # SchedulableCallback

    # schedule_callback_current_iteration() and schedule_callback_next_iteration()
    # are C methods (csrc/event_module.c, installed by libevent_scheduler):
    # unless already queued there, each bumps the token, sets _scheduled and
    # appends (self, token) to the scheduler's _current or _next queue.

    def cancel(self) -> None:
        if self._scheduled:
            self._scheduled = _IDLE
            self._token += 1

    def enabled(self) -> bool:
        return self._scheduled != _IDLE

    def close(self) -> None:
        self.cancel()
        ImplBase.close(self)
