"""Threads named and managed like Envoy's (``source/common/common/posix/thread_impl``)."""

from pyevent_envoy.thread.posix.thread_impl import ThreadFactoryImplPosix as ThreadFactoryImplPosix
from pyevent_envoy.thread.posix.thread_impl import ThreadImplPosix as ThreadImplPosix
from pyevent_envoy.thread.thread import Thread as Thread
from pyevent_envoy.thread.thread import ThreadFactory as ThreadFactory
from pyevent_envoy.thread.thread import current_thread_name as current_thread_name

__all__ = ["Thread", "ThreadFactory", "ThreadFactoryImplPosix", "ThreadImplPosix", "current_thread_name"]
