"""Thread-local slots: how immutable state reaches every worker without locks."""

from pyevent_envoy.thread_local.thread_local import Instance as Instance
from pyevent_envoy.thread_local.thread_local import Slot as Slot
from pyevent_envoy.thread_local.thread_local_impl import InstanceImpl as InstanceImpl
from pyevent_envoy.thread_local.thread_local_impl import SlotImpl as SlotImpl

__all__ = ["Instance", "InstanceImpl", "Slot", "SlotImpl"]
