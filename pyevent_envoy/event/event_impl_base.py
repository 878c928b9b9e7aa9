"""``ImplBase``: the base of every event the scheduler can call back.

Envoy's ``ImplBase`` embeds a libevent ``struct event`` and calls
``event_del`` in its destructor.  Here the ``struct event`` lives in a
``pe_event_t`` that the Python object owns (``ffi.new``), and the rules are:

- An armed event is in the scheduler's ``_armed`` map under its current
  arming id, which keeps the Python object (and so its callback's owner)
  alive until it is disabled, fires (one-shot) or is closed.  Dropping the
  last user reference does not disarm it, unlike a C++ destructor.
- Every arming gets a fresh id; disarming forgets it.  A record libevent
  produced for an old id is skipped, so a callback never runs after
  ``disable``/``close``/re-arming, even when the event had already fired in
  the same loop pass.
- ``close()`` is idempotent and is the only way to release the event; there
  is no ``__del__``, so no C is ever called from the garbage collector.  The
  dispatcher closes what is still armed when it closes, so every
  ``struct event`` is deleted before ``event_base_free``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyevent_envoy.errors import DispatcherClosedError, LibeventError
from pyevent_envoy.event.libevent import lib

if TYPE_CHECKING:
    from pyevent_envoy.event.libevent_scheduler import LibeventScheduler

__all__ = ["ImplBase"]


class ImplBase:
    """Shared state and the close protocol of the event implementations.

    Not constructed directly: use the dispatcher's ``create_*`` factories.
    Subclasses that libevent drives allocate ``_raw`` and define
    ``_fire(ready)``, which the scheduler calls for each record of theirs.
    """

    __slots__ = ("_raw", "_scheduler", "_id", "_closed", "__weakref__")

    def __init__(self, scheduler: LibeventScheduler) -> None:
        self._raw = None  # the pe_event_t, for the subclasses libevent drives
        self._scheduler = scheduler
        self._id = 0
        self._closed = False
        scheduler.events_created += 1

    def _arm(self, timeout: float) -> None:
        """``event_add`` under a fresh arming id (``timeout < 0``: none)."""
        sched = self._scheduler
        if sched._loop is None:
            raise DispatcherClosedError("the dispatcher is closed")
        armed = sched._armed
        if self._id:
            del armed[self._id]
        rid = next(sched._ids)
        if lib.pe_event_add(self._raw, rid, timeout) != 0:
            self._id = 0
            raise LibeventError("event_add")
        armed[rid] = self
        self._id = rid

    def _disarm(self) -> None:
        rid = self._id
        if rid:
            self._id = 0
            del self._scheduler._armed[rid]
            if lib.pe_event_del(self._raw) != 0:
                raise LibeventError("event_del")

    def _check_open(self) -> None:
        if self._closed:
            raise DispatcherClosedError(f"{type(self).__name__} is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._scheduler.events_closed += 1
        self._disarm()
