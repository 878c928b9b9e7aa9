"""Testing support for code built on the event layer.

- :class:`ReferenceDispatcher`: the dispatcher contract in pure Python
  (``selectors`` + ``heapq``); the project's contract tests run against it
  and :class:`~pyevent_envoy.event.DispatcherImpl` alike.
- :class:`SimulatedClock`: time that moves only when a test says so, for the
  reference dispatcher's timers.
- :class:`Recorder`, :func:`run_nonblock`, :func:`run_until`,
  :func:`socketpair_nonblocking`, :func:`fill_socket`, :func:`drain_socket`:
  helpers that work with any dispatcher.
"""

from pyevent_envoy.testing.helpers import Recorder as Recorder
from pyevent_envoy.testing.helpers import drain_socket as drain_socket
from pyevent_envoy.testing.helpers import fill_socket as fill_socket
from pyevent_envoy.testing.helpers import run_nonblock as run_nonblock
from pyevent_envoy.testing.helpers import run_until as run_until
from pyevent_envoy.testing.helpers import socketpair_nonblocking as socketpair_nonblocking
from pyevent_envoy.testing.reference_dispatcher import ReferenceDispatcher as ReferenceDispatcher
from pyevent_envoy.testing.simulated_time import RealClock as RealClock
from pyevent_envoy.testing.simulated_time import SimulatedClock as SimulatedClock

__all__ = [
    "RealClock",
    "Recorder",
    "ReferenceDispatcher",
    "SimulatedClock",
    "drain_socket",
    "fill_socket",
    "run_nonblock",
    "run_until",
    "socketpair_nonblocking",
]
