"""The HTTP filters of ``http_filters``, and how a connection manager's filter chain is built.

:data:`FILTER_FACTORIES` maps each supported filter config type (the
model of its ``typed_config``) to what makes its factory, once per
connection manager on the main thread:
``make(http_filter, context) -> factory``, where ``factory(stream)``
returns the filter of one stream (on a worker).  A filter that is not
configured costs nothing per request.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from pyevent_envoy.config import bootstrap as b
from pyevent_envoy.http.filter import FilterFactoryContext
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
    return tuple(factories)
