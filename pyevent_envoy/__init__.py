"""pyevent-envoy: Envoy's event-driven architecture on libevent, for Python.

The layers, each importing only those listed before it:

- :mod:`pyevent_envoy.event`: dispatchers, timers, file and signal events.
- :mod:`pyevent_envoy.thread`: POSIX threads named like Envoy's.
- :mod:`pyevent_envoy.thread_local`: thread-local slots, how state reaches workers.
- :mod:`pyevent_envoy.server`: workers (a dispatcher on its own thread).
- :mod:`pyevent_envoy.testing`: a pure-Python reference dispatcher and test helpers.
"""

__version__ = "0.1.0"

from pyevent_envoy.errors import LibeventError as LibeventError
from pyevent_envoy.errors import PyEventEnvoyError as PyEventEnvoyError

__all__ = ["LibeventError", "PyEventEnvoyError", "__version__"]
