"""The HTTP filters of ``http_filters``, each in its own module, and how a chain is built.

:data:`FILTER_FACTORIES` maps each supported filter config type (the
model of its ``typed_config``) to what makes its factory, once per
connection manager on the main thread:
``make(http_filter, context) -> factory``, where ``factory(stream)``
returns the filter of one stream (on a worker).  A filter that is not
configured costs nothing per request.

A filter's *config* is built once, on the main thread, from its part of the
bootstrap; it is immutable and shared by every worker.  A config that keeps
per-worker stats says where and how:

- ``stats_prefix``: the stats' prefix under the connection manager's
  ``http.<stat_prefix>.`` (``"fault."``);
- ``new_stats()``: a fresh :class:`~pyevent_envoy.stats.StatsScope`.

Each worker's listener makes one scope per such config and registers it (so
the admin sums them, and shows them from the start, as Envoy does);
:func:`worker_stats` finds the stream's.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from pyevent_envoy.stats import StatsScope

__all__ = ["FILTER_FACTORIES", "create_filter_factories", "worker_stats"]


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


# The filter modules import worker_stats from here: import them after it.
from pyevent_envoy.config import bootstrap as b  # noqa: E402
from pyevent_envoy.http.filter import FilterFactoryContext  # noqa: E402
from pyevent_envoy.http.filters.buffer import BufferFilterConfig  # noqa: E402
from pyevent_envoy.http.filters.compressor import CompressorFilterConfig  # noqa: E402
from pyevent_envoy.http.filters.fault import FaultFilterConfig  # noqa: E402
from pyevent_envoy.http.filters.health_check import HealthCheckFilterFactory  # noqa: E402
from pyevent_envoy.http.filters.local_ratelimit import LocalRateLimitFilterFactory  # noqa: E402
from pyevent_envoy.http.router.router import RouterFilter  # noqa: E402


def _router(http_filter: Any, context: FilterFactoryContext) -> Callable[[Any], RouterFilter]:
    return RouterFilter


def _config_only(config_type: Callable[[Any], Any]) -> Callable[[Any, FilterFactoryContext], Any]:
    """For a filter whose config object is its factory and needs only the typed config."""
    return lambda http_filter, context: config_type(http_filter.typed_config)


#: The factory maker of each supported HTTP filter, by the type of its config.
FILTER_FACTORIES: dict[type, Callable[[Any, FilterFactoryContext], Callable[[Any], Any]]] = {
    b.Router: _router,
    b.HealthCheckFilterConfig: HealthCheckFilterFactory,
    b.LocalRateLimit: LocalRateLimitFilterFactory,
    b.Compressor: _config_only(CompressorFilterConfig),
    b.Buffer: _config_only(BufferFilterConfig),
    b.HttpFault: _config_only(FaultFilterConfig),
}


def create_filter_factories(http_filters: Iterable[Any], context: FilterFactoryContext) -> tuple:
    """The per-stream factories of ``http_filters`` (validated configs), in their order.

    Raises:
        TypeError: a filter config type has no entry in :data:`FILTER_FACTORIES`.
    """
    factories = []
    for http_filter in http_filters:
        make = FILTER_FACTORIES.get(type(http_filter.typed_config))
        if make is None:
            raise TypeError(f"HTTP filter {http_filter.name!r}: no factory for {type(http_filter.typed_config).__name__}")
        factories.append(make(http_filter, context))
    # Compressors decide together which one encodes a response (Envoy's per-stream registry).
    compressors = tuple(f for f in factories if isinstance(f, CompressorFilterConfig))
    for compressor in compressors:
        compressor.chain = compressors
    return tuple(factories)
