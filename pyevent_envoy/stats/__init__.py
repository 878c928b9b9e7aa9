"""Envoy's statistics: counters, gauges and histograms with Envoy's names, kept per worker, merged for the admin.

- :mod:`~pyevent_envoy.stats.scopes`: the per-thread scope objects the hot
  path increments (``HttpConnManagerStats``, ``ListenerStats``,
  ``ClusterTrafficStats``) and their threading contract;
- :mod:`~pyevent_envoy.stats.histogram`: the per-thread histogram
  recorders, the merged histograms and their precision;
- :mod:`~pyevent_envoy.stats.store`: :class:`StatsStore`, which the admin
  reads (summing the workers' scopes) and the stats flush merges;
- :mod:`~pyevent_envoy.stats.render`: Envoy's text, JSON and Prometheus
  renderings.

Which stats are kept, and how they compare with Envoy's, is in
``docs/stats.rst``.
"""

from pyevent_envoy.stats.histogram import HistogramRecorder, ParentHistogram
from pyevent_envoy.stats.render import StatsQueryError, render_json, render_prometheus, render_text, select
from pyevent_envoy.stats.scopes import (
    ClusterTrafficStats,
    ConnectionStats,
    HttpConnManagerStats,
    ListenerStats,
    MainThreadStats,
    ServerStats,
    SslStats,
    StatsScope,
    WorkerListenerStats,
)
from pyevent_envoy.stats.store import COUNTER, GAUGE, PerThreadScopes, Stat, StatsStore, listener_stat_prefix

__all__ = [
    "COUNTER",
    "ClusterTrafficStats",
    "ConnectionStats",
    "GAUGE",
    "HistogramRecorder",
    "HttpConnManagerStats",
    "ListenerStats",
    "MainThreadStats",
    "ParentHistogram",
    "PerThreadScopes",
    "ServerStats",
    "SslStats",
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
