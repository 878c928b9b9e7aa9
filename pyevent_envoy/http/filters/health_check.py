"""``envoy.filters.http.health_check`` (Envoy's ``source/extensions/filters/http/health_check``).

A request that every configured header matcher matches (every request when
there is none) is a health check: the stream is marked so (its response
codes stay out of the connection manager's and the cluster's stats, as in
Envoy), and:

- without ``pass_through_mode`` the filter answers it once the request has
  ended: 200, or 503 (response flag ``LH``) while the server fails health
  checks (admin ``/healthcheck/fail``, a drain before exiting) or while a
  cluster of ``cluster_min_healthy_percentages`` has fewer available
  (healthy or degraded) hosts than its percentage (cut to a whole number,
  as Envoy 1.40 does) -- read from the
  worker's own snapshot of the cluster, which reflects active health
  checks and outlier ejections;
- with ``pass_through_mode`` it goes on upstream, unless the server fails
  health checks (503) or ``cache_time`` holds an answer: the status (and
  ``x-envoy-degraded``) of the last health check response is kept and
  given back until the current ``cache_time`` period ends.

Every health check response carries ``x-envoy-upstream-healthchecked-cluster``
(the bootstrap's ``node.cluster``); while the server fails health checks,
every response carries ``x-envoy-immediate-health-check-fail: true``.

Stats, under ``http.<stat_prefix>.health_check.``: ``request_total``,
``ok`` and ``failed`` (answers the filter made), ``cached_response``,
``degraded``, ``failed_cluster_not_found``, ``failed_cluster_empty``,
``failed_cluster_unhealthy``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from pyevent_envoy.http.filter import (
    FilterDataStatus,
    FilterFactoryContext,
    FilterHeadersStatus,
    StreamDecoderFilter,
    StreamEncoderFilter,
)
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.http.router.config_impl import compile_header_matcher
from pyevent_envoy.http.stream_info import ResponseFlag
from pyevent_envoy.stats import PerThreadScopes, StatsScope

__all__ = ["HealthCheckCache", "HealthCheckFilter", "HealthCheckFilterFactory", "HealthCheckFilterStats"]


class HealthCheckFilterStats(StatsScope):
    """One thread's ``http.<stat_prefix>.health_check.`` counters (Envoy's ``HealthCheckFilterStats``)."""

    COUNTERS = (
        "cached_response",
        "degraded",
        "failed",
        "failed_cluster_empty",
        "failed_cluster_not_found",
        "failed_cluster_unhealthy",
        "ok",
        "request_total",
    )
    __slots__ = COUNTERS


class HealthCheckCache:
    """The last health check answer, valid until the current ``cache_time`` period ends.

    Envoy's ``HealthCheckCacheManager`` clears the answer with a timer every
    ``cache_time`` from its creation; here the period is worked out from the
    clock when the answer is read (no timer, nothing to run on the main
    thread), which gives the same periods.  Shared by every worker: the
    answer is one tuple, replaced whole.

    Args:
        cache_time: the period, in seconds (> 0).
        clock: the monotonic clock (a fake one in tests).
    """

    __slots__ = ("_cache_time", "_clock", "_start", "_answer")

    def __init__(self, cache_time: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cache_time = cache_time
        self._clock = clock
        self._start = clock()
        self._answer: Optional[tuple[int, int, bool]] = None  # (period, status, degraded)

    def _period(self) -> int:
        return int((self._clock() - self._start) // self._cache_time)

    def get(self) -> Optional[tuple[int, bool]]:
        """``(status, degraded)`` of the answer kept in this period, or ``None``."""
        answer = self._answer
        if answer is not None and answer[0] == self._period():
            return answer[1], answer[2]
        return None

    def set(self, status: int, degraded: bool) -> None:
        """Keep ``status`` (and whether it was degraded) for the rest of this period."""
        self._answer = (self._period(), status, degraded)


class HealthCheckFilterFactory:
    """One configured health check filter, shared by the workers; ``factory(stream)`` makes a filter.

    Args:
        http_filter: the ``http_filters`` entry
            (:class:`~pyevent_envoy.config.bootstrap.HttpFilter` with a
            :class:`~pyevent_envoy.config.bootstrap.HealthCheckFilterConfig`).
        context: the connection manager's
            :class:`~pyevent_envoy.http.filter.FilterFactoryContext`.
    """

    __slots__ = ("pass_through", "cache", "min_healthy", "server_state", "local_cluster_name", "stats", "_matchers")

    def __init__(self, http_filter: Any, context: FilterFactoryContext) -> None:
        config = http_filter.typed_config
        self.pass_through: bool = config.pass_through_mode
        self.cache = HealthCheckCache(config.cache_time) if config.pass_through_mode and config.cache_time > 0 else None
        # In cluster name order, as Envoy walks its std::map (the first failing cluster names the
        # reason); Envoy 1.40 cuts each percentage to a whole number (50.5 means 50).
        self.min_healthy = tuple(sorted((name, int(percent)) for name, percent in config.cluster_min_healthy_percentages.items()))
        self.server_state = context.server_state
        self.local_cluster_name = context.local_cluster_name
        self.stats = PerThreadScopes(
            context.stats_store, f"http.{context.stat_prefix}.health_check.", HealthCheckFilterStats
        )
        self._matchers = tuple(compile_header_matcher(h) for h in config.headers)

    def __call__(self, stream: Any) -> "HealthCheckFilter":
        return HealthCheckFilter(self, stream)

    def matches(self, headers: HeaderMap) -> bool:
        """Whether ``headers`` is a health check request (every matcher matches)."""
        for matcher in self._matchers:
            if not matcher(headers):
                return False
        return True


class HealthCheckFilter(StreamDecoderFilter, StreamEncoderFilter):
    """The filter of one stream (see the module docstring)."""

    __slots__ = ("_factory", "_stream", "_health_check", "_handling", "_cached")

    def __init__(self, factory: HealthCheckFilterFactory, stream: Any) -> None:
        self._factory = factory
        self._stream = stream
        self._health_check = False
        self._handling = False  # the filter answers this request itself
        self._cached: Optional[tuple[int, bool]] = None

    # StreamDecoderFilter

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        factory = self._factory
        if factory.matches(headers):
            self._health_check = True
            self._stream.stream_info.health_check = True
            if not factory.pass_through or factory.server_state.health_check_failed:
                self._handling = True
            elif factory.cache is not None:
                self._cached = factory.cache.get()
                self._handling = self._cached is not None
        if not self._handling:
            return FilterHeadersStatus.CONTINUE
        if end_stream:
            self._answer()
        return FilterHeadersStatus.STOP_ITERATION

    def decode_data(self, data: bytes, end_stream: bool) -> FilterDataStatus:
        if not self._handling:
            return FilterDataStatus.CONTINUE
        if end_stream:
            self._answer()
        return FilterDataStatus.STOP_ITERATION_NO_BUFFER

    def decode_trailers(self, trailers: HeaderMap) -> FilterHeadersStatus:
        if not self._handling:
            return FilterHeadersStatus.CONTINUE
        self._answer()
        return FilterHeadersStatus.STOP_ITERATION

    # StreamEncoderFilter

    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        factory = self._factory
        if self._health_check:
            if factory.cache is not None:
                status = headers.get(":status") or ""
                if status.isdigit():
                    factory.cache.set(int(status), "x-envoy-degraded" in headers)
            headers.set("x-envoy-upstream-healthchecked-cluster", factory.local_cluster_name)
        if factory.server_state.health_check_failed:
            # Envoy 1.40 marks every response then, health check answers included.
            headers.set("x-envoy-immediate-health-check-fail", "true")
        return FilterHeadersStatus.CONTINUE

    # the answer (Envoy's onComplete)

    def _answer(self) -> None:
        factory = self._factory
        stream = self._stream
        stats = factory.stats.get()
        stats.request_total += 1
        degraded = False
        if factory.server_state.health_check_failed:
            status, details = 503, "health_check_failed"
        elif self._cached is not None:
            (status, degraded), details = self._cached, "health_check_cached"
            stats.cached_response += 1
        elif factory.min_healthy:
            status, details = self._cluster_health(stats)
        else:
            status, details = 200, "health_check_ok"
        if 200 <= status < 300:
            stats.ok += 1
        else:
            stats.failed += 1
            stream.stream_info.set_response_flag(ResponseFlag.FAILED_LOCAL_HEALTH_CHECK)
        reply = HeaderMap()
        if degraded:
            stats.degraded += 1
            reply.set("x-envoy-degraded", "")
        stream.send_local_reply(status, "", details=details, headers=reply)

    def _cluster_health(self, stats: HealthCheckFilterStats) -> tuple[int, str]:
        """200 when every cluster of ``cluster_min_healthy_percentages`` has enough available hosts."""
        tlcm = self._stream.cluster_manager.thread_local_cluster_manager()
        for name, min_percent in self._factory.min_healthy:
            cluster = tlcm.get(name) if tlcm is not None else None
            if cluster is None:
                stats.failed_cluster_not_found += 1
                return 503, "health_check_failed_no_cluster_found"
            host_set = cluster.host_set
            total = len(host_set.hosts)
            if total == 0:
                if min_percent == 0:
                    continue
                stats.failed_cluster_empty += 1
                return 503, "health_check_failed_cluster_empty"
            # Available: healthy or degraded (healthy_hosts holds both).
            if 100 * len(host_set.healthy_hosts) < total * min_percent:
                stats.failed_cluster_unhealthy += 1
                return 503, "health_check_failed_cluster_unhealthy"
        return 200, "health_check_ok_cluster_healthy"
