"""Envoy's event layer on libevent.

Interfaces carry the contract (:class:`Dispatcher`, :class:`Timer`,
:class:`SchedulableCallback`, :class:`FileEvent`, :class:`SignalEvent`);
the ``*Impl`` classes implement it on libevent.  Create events only through
a dispatcher's factories.
"""

from pyevent_envoy.event.deferred_deletable import DeferredDeletable as DeferredDeletable
from pyevent_envoy.event.dispatcher import Dispatcher as Dispatcher
from pyevent_envoy.event.dispatcher import RunType as RunType
from pyevent_envoy.event.dispatcher_impl import DispatcherImpl as DispatcherImpl
from pyevent_envoy.event.dispatcher_impl import DispatcherStatistics as DispatcherStatistics
from pyevent_envoy.event.event_impl_base import ImplBase as ImplBase
from pyevent_envoy.event.file_event import FileEvent as FileEvent
from pyevent_envoy.event.file_event import FileReadyType as FileReadyType
from pyevent_envoy.event.file_event import FileTriggerType as FileTriggerType
from pyevent_envoy.event.file_event_impl import FileEventImpl as FileEventImpl
from pyevent_envoy.event.libevent import libevent_version as libevent_version
from pyevent_envoy.event.libevent_scheduler import LibeventScheduler as LibeventScheduler
from pyevent_envoy.event.schedulable_cb import SchedulableCallback as SchedulableCallback
from pyevent_envoy.event.schedulable_cb_impl import SchedulableCallbackImpl as SchedulableCallbackImpl
from pyevent_envoy.event.signal import SignalEvent as SignalEvent
from pyevent_envoy.event.signal_impl import SignalEventImpl as SignalEventImpl
from pyevent_envoy.event.timer import Timer as Timer
from pyevent_envoy.event.timer_impl import TimerImpl as TimerImpl

__all__ = [
    "DeferredDeletable",
    "Dispatcher",
    "DispatcherImpl",
    "DispatcherStatistics",
    "FileEvent",
    "FileEventImpl",
    "FileReadyType",
    "FileTriggerType",
    "ImplBase",
    "LibeventScheduler",
    "RunType",
    "SchedulableCallback",
    "SchedulableCallbackImpl",
    "SignalEvent",
    "SignalEventImpl",
    "Timer",
    "TimerImpl",
    "libevent_version",
]
