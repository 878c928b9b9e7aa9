"""``FileEventImpl`` (Envoy's ``source/common/event/file_event_impl.cc``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyevent_envoy.errors import DispatcherClosedError, LibeventError
from pyevent_envoy.event.event_impl_base import ImplBase
from pyevent_envoy.event.file_event import FileEvent, FileReadyCb, FileReadyType, FileTriggerType
from pyevent_envoy.event.libevent import ffi, lib
from pyevent_envoy.event.schedulable_cb_impl import SchedulableCallbackImpl

if TYPE_CHECKING:
    from pyevent_envoy.event.libevent_scheduler import LibeventScheduler

__all__ = ["FileEventImpl", "fileno_of"]

_READ = int(FileReadyType.READ)
_WRITE = int(FileReadyType.WRITE)
_CLOSED = int(FileReadyType.CLOSED)
_ALL = _READ | _WRITE | _CLOSED

# Building an IntFlag costs about a microsecond; index prebuilt ones by mask.
# The scheduler hands over 4 bits (PE_RECORD_MASK); the timeout bit never
# reaches a file event, but the table covers it so no mask is needed.
READY_TYPES: tuple[FileReadyType, ...] = tuple(FileReadyType(m & _ALL) for m in range(16))


def _libevent_flags(events: int, trigger: FileTriggerType) -> int:
    flags = lib.EV_PERSIST
    if trigger is FileTriggerType.EDGE:
        flags |= lib.EV_ET
    if events & _READ:
        flags |= lib.EV_READ
    if events & _WRITE:
        flags |= lib.EV_WRITE
    if events & _CLOSED:
        flags |= lib.EV_CLOSED
    return flags


def fileno_of(fd: Any) -> int:
    """Return the descriptor number of an int or of an object with ``fileno()``."""
    number = fd if isinstance(fd, int) else fd.fileno()
    if number < 0:
        raise ValueError(f"invalid file descriptor {number}")
    return number


class FileEventImpl(ImplBase, FileEvent):
    """A :class:`~pyevent_envoy.event.FileEvent` on a persistent libevent event.

    Flags follow Envoy's ``assignEvents``: always ``EV_PERSIST``, ``EV_ET``
    for ``EDGE``, and ``EV_READ``/``EV_WRITE``/``EV_CLOSED`` from the mask.
    Injected activations ride on an internal schedulable callback, created on
    the first :meth:`activate`.
    """

    __slots__ = ("_fd", "_cb", "_trigger", "_events", "_injected", "_activation")

    def __init__(
        self,
        scheduler: LibeventScheduler,
        fd: Any,
        cb: FileReadyCb,
        trigger: FileTriggerType,
        events: FileReadyType,
    ) -> None:
        if not isinstance(trigger, FileTriggerType):
            raise TypeError(f"trigger must be a FileTriggerType, got {trigger!r}")
        number = fileno_of(fd)
        ImplBase.__init__(self, scheduler)
        self._raw = ffi.new("pe_event_t *")
        self._fd = number
        self._cb = cb
        self._trigger = trigger
        self._events = int(events) & _ALL
        self._injected = 0
        self._activation: SchedulableCallbackImpl | None = None
        try:
            self._register()
        except BaseException:
            self.close()  # counted as created: count it closed too, or events_live never returns to 0
            raise

    def _register(self) -> None:
        sched = self._scheduler
        if sched._loop is None:
            raise DispatcherClosedError("the dispatcher is closed")
        flags = _libevent_flags(self._events, self._trigger)
        if lib.pe_event_assign(self._raw, sched._loop, self._fd, flags) != 0:
            raise LibeventError("event_assign", f"cannot watch fd {self._fd}")
        if self._events:
            self._arm(-1.0)

    # FileEvent

    def activate(self, events: FileReadyType) -> None:
        if self._closed:
            self._check_open()
        pending = self._injected
        self._injected = pending | (int(events) & _ALL)
        if not pending:
            activation = self._activation
            if activation is None:
                activation = self._activation = SchedulableCallbackImpl(self._scheduler, self._on_activation)
            activation.schedule_callback_next_iteration()

    def set_enabled(self, events: FileReadyType) -> None:
        if self._closed:
            self._check_open()
        if self._injected:
            self._injected = 0
            self._activation.cancel()
        events = int(events) & _ALL
        if events == self._events and self._trigger is not FileTriggerType.EDGE:
            return
        self._events = events
        self._disarm()
        self._register()

    def close(self) -> None:
        if self._activation is not None:
            self._activation.close()
        ImplBase.close(self)

    # scheduler

    # _fire(ready) is a C method (csrc/event_module.c, installed by
    # libevent_scheduler): the events activate() injected since are added
    # (their activation cancelled), then the callback runs once with the
    # FileReadyType of them all.

    def _on_activation(self) -> None:
        injected = self._injected
        if injected:
            self._injected = 0
            self._cb(READY_TYPES[injected])
