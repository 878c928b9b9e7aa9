"""HTTP filters besides the router, each in its own module, with Envoy's names and behaviour.

A filter's *config* is built once, on the main thread, from its part of the
bootstrap; it is immutable and shared by every worker.  It is the factory
the connection manager calls for each stream (``config(stream) -> filter``)
and, when the filter keeps stats, it says where and how:

- ``stats_prefix``: the stats' prefix under the connection manager's
  ``http.<stat_prefix>.`` (``"fault."``);
- ``new_stats()``: a fresh :class:`~pyevent_envoy.stats.StatsScope`.

Each worker's listener makes one scope per config and registers it (so the
admin sums them, and shows them from the start, as Envoy does);
:func:`worker_stats` finds the stream's.
"""

from __future__ import annotations

from typing import Any

from pyevent_envoy.stats import StatsScope

__all__ = ["worker_stats"]


def worker_stats(stream: Any, config: Any) -> StatsScope:
    """This worker's stats scope of filter ``config``, for a filter of ``stream``.

    Made here when the worker's listener did not make it (a connection
    manager run without a stats store, as in tests and the admin).
    """
    scopes = stream.stats.filter_stats
    scope = scopes.get(config)
    if scope is None:
        scope = scopes[config] = config.new_stats()
    return scope
