"""Envoy's statistics: counters and gauges with Envoy's names, kept per worker, summed for the admin.

- :mod:`~pyevent_envoy.stats.scopes`: the per-thread scope objects the hot
  path increments (``HttpConnManagerStats``, ``ListenerStats``,
  ``ClusterTrafficStats``) and their threading contract;
- :mod:`~pyevent_envoy.stats.store`: :class:`StatsStore`, which the admin
  reads (summing the workers' scopes);
- :mod:`~pyevent_envoy.stats.render`: Envoy's text, JSON and Prometheus
  renderings.

Which stats are kept, and how they compare with Envoy's, is in
``docs/stats.rst``.
"""

from pyevent_envoy.stats.render import StatsQueryError, render_json, render_prometheus, render_text, select
from pyevent_envoy.stats.scopes import (
    ClusterTrafficStats,
    HttpConnManagerStats,
    ListenerStats,
    MainThreadStats,
    StatsScope,
    WorkerListenerStats,
)
from pyevent_envoy.stats.store import COUNTER, GAUGE, Stat, StatsStore, listener_stat_prefix

__all__ = [
    "COUNTER",
    "ClusterTrafficStats",
    "GAUGE",
    "HttpConnManagerStats",
    "ListenerStats",
    "MainThreadStats",
    "Stat",
    "StatsQueryError",
    "StatsScope",
    "StatsStore",
    "WorkerListenerStats",
    "listener_stat_prefix",
    "render_json",
    "render_prometheus",
    "render_text",
    "select",
]
