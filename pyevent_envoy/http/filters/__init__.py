"""The HTTP filters of ``http_filters``, each in its own module, and how a chain is built.

:data:`FILTER_FACTORIES` maps each supported filter config type (the
model of its ``typed_config``) to what makes its factory, once per
connection manager on the main thread:
``make(http_filter, context) -> factory``, where ``factory(stream)``
returns the filter of one stream (on a worker).  A filter that is not
configured costs nothing per request.

A factory is immutable and shared by every worker.  A filter that keeps
stats holds them in a :class:`~pyevent_envoy.stats.PerThreadScopes` on its
factory: one scope per worker, registered with the context's stats store
(and shown, as zeros, from the start, as Envoy shows them).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from pyevent_envoy.config import bootstrap as b
from pyevent_envoy.http.filter import FilterFactoryContext
from pyevent_envoy.http.filters.buffer import BufferFilterConfig
from pyevent_envoy.http.filters.compressor import CompressorFilterConfig
from pyevent_envoy.http.filters.fault import FaultFilterConfig
from pyevent_envoy.http.filters.health_check import HealthCheckFilterFactory
from pyevent_envoy.http.filters.local_ratelimit import LocalRateLimitFilterFactory
from pyevent_envoy.http.router.router import RouterFilter

__all__ = ["FILTER_FACTORIES", "create_filter_factories"]


def _router(http_filter: Any, context: FilterFactoryContext) -> Callable[[Any], RouterFilter]:
    return RouterFilter


#: The factory maker of each supported HTTP filter, by the type of its config.
FILTER_FACTORIES: dict[type, Callable[[Any, FilterFactoryContext], Callable[[Any], Any]]] = {
    b.Router: _router,
    b.HealthCheckFilterConfig: HealthCheckFilterFactory,
    b.LocalRateLimit: LocalRateLimitFilterFactory,
    b.Compressor: lambda http_filter, context: CompressorFilterConfig(http_filter.typed_config, context),
    b.Buffer: lambda http_filter, context: BufferFilterConfig(http_filter.typed_config),
    b.HttpFault: lambda http_filter, context: FaultFilterConfig(http_filter.typed_config, context),
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
