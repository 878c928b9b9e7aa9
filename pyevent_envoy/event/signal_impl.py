"""``SignalEventImpl`` (Envoy's ``source/common/event/posix/signal_impl.cc``)."""

from __future__ import annotations

import signal as _signal
from typing import TYPE_CHECKING, Callable

from pyevent_envoy.errors import DispatcherClosedError, LibeventError
from pyevent_envoy.event.event_impl_base import ImplBase
from pyevent_envoy.event.libevent import ffi, lib
from pyevent_envoy.event.signal import SignalEvent

if TYPE_CHECKING:
    from pyevent_envoy.event.libevent_scheduler import LibeventScheduler

__all__ = ["SignalEventImpl"]


class SignalEventImpl(ImplBase, SignalEvent):
    """A persistent libevent signal event (``evsignal_assign``).

    libevent installs its own handler with ``sigaction`` while the event is
    enabled and restores the previous one (Python's, usually) on close.  The
    callback runs on the dispatcher's thread, whichever thread the signal
    interrupted.
    """

    __slots__ = ("_signum", "_cb")

    def __init__(self, scheduler: LibeventScheduler, signum: int, cb: Callable[[], None]) -> None:
        signum = int(signum)
        if not 0 < signum < _signal.NSIG:
            raise ValueError(f"invalid signal number {signum}")
        if scheduler._loop is None:  # before ImplBase counts it as created
            raise DispatcherClosedError("the dispatcher is closed")
        ImplBase.__init__(self, scheduler)
        self._raw = ffi.new("pe_event_t *")
        self._signum = signum
        self._cb = cb
        flags = lib.EV_SIGNAL | lib.EV_PERSIST
        if lib.pe_event_assign(self._raw, scheduler._loop, signum, flags) != 0:
            raise LibeventError("evsignal_assign", f"cannot watch signal {signum}")
        self._arm(-1.0)

    @property
    def signum(self) -> int:
        return self._signum

    def _fire(self, ready: int) -> None:
        self._cb()
