"""``envoy.filters.http.local_ratelimit`` (Envoy's ``source/extensions/filters/http/local_ratelimit``).

Each request the filter is enabled for (``filter_enabled``, 0 % unless
set) takes one token from the token bucket.  Without one it is rate
limited: counted, and -- when enforced (``filter_enforced``, 0 % unless
set) -- answered with ``status`` (429 by default), the body
``local_rate_limited``, ``response_headers_to_add`` and the response flag
``RL``; when not enforced it goes on with
``request_headers_to_add_when_not_enforced``.  With
``enable_x_ratelimit_headers: DRAFT_VERSION_03`` every response of an
enabled request carries ``x-ratelimit-limit``, ``x-ratelimit-remaining``
and ``x-ratelimit-reset``.

The percentages are ``RuntimeFractionalPercent`` default values: there is
no runtime, so a ``runtime_key`` changes nothing (as in Envoy without a
runtime layer that sets it).

Buckets, as in Envoy: one per filter config (and per route or virtual host
override, in ``typed_per_filter_config`` under the filter's name; the
route's wins), shared by every worker; or, with
``local_rate_limit_per_downstream_connection``, one per downstream
connection (made from the first config that uses it on that connection,
as Envoy does).

Stats, under ``<stat_prefix>.http_local_rate_limit.``: ``enabled``,
``ok``, ``rate_limited``, ``enforced`` (and ``shadow_mode``, which stays 0:
descriptors are not supported).
"""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Any, Callable, Optional

from pyevent_envoy.http.filter import FilterFactoryContext, FilterHeadersStatus, StreamDecoderFilter, StreamEncoderFilter
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.http.router.config_impl import FormatterContext, HeaderParser
from pyevent_envoy.http.stream_info import ResponseFlag
from pyevent_envoy.stats import PerThreadScopes, StatsScope

__all__ = [
    "LocalRateLimitFilter",
    "LocalRateLimitFilterFactory",
    "LocalRateLimitStats",
    "RateLimitConfig",
    "TokenBucket",
]

#: The connection filter state key of the per-connection bucket (one per connection, as Envoy keys it).
_PER_CONNECTION_KEY = "per_connection_local_rate_limiter"


class TokenBucket:
    """Envoy's ``AtomicTokenBucketImpl``: tokens come back continuously, from the clock.

    The bucket holds ``max_tokens`` at most and gains ``tokens_per_fill``
    every ``fill_interval`` seconds, a fraction at a time (Envoy 1.40 fills
    at that rate, not in steps).  Its whole state is one time: the moment
    it would have been empty; the tokens at ``now`` are ``(now - that) *
    rate``, capped.  So there is no refill timer: taking a token reads the
    clock, and an idle bucket costs nothing.  It starts full.

    One bucket is shared by every worker (Envoy's is too); a lock makes
    taking a token atomic (about 0.1 µs uncontended).

    Args:
        max_tokens: the capacity (> 0).
        tokens_per_fill: tokens gained per ``fill_interval``.
        fill_interval: seconds (> 0).
        clock: the monotonic clock (a fake one in tests).
    """

    __slots__ = ("max_tokens", "fill_rate", "_clock", "_empty_at", "_lock")

    def __init__(
        self, max_tokens: int, tokens_per_fill: int, fill_interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_tokens <= 0 or tokens_per_fill <= 0 or fill_interval <= 0:
            raise ValueError("a token bucket needs max_tokens, tokens_per_fill and fill_interval above 0")
        self.max_tokens = max_tokens
        self.fill_rate = tokens_per_fill / fill_interval  # tokens per second
        self._clock = clock
        self._empty_at = clock() - max_tokens / self.fill_rate
        self._lock = threading.Lock()

    def _tokens(self, now: float) -> float:
        return min(self.max_tokens, (now - self._empty_at) * self.fill_rate)

    def consume(self) -> bool:
        """Take one token; False when there is none."""
        with self._lock:
            now = self._clock()
            tokens = self._tokens(now)
            if tokens < 1:
                return False
            self._empty_at = now - (tokens - 1) / self.fill_rate
            return True

    def remaining_tokens(self) -> int:
        """Whole tokens now (``x-ratelimit-remaining``)."""
        return max(0, math.floor(self._tokens(self._clock())))

    def reset_seconds(self) -> int:
        """Seconds until a token is there (``x-ratelimit-reset``): 0 with one, else the time one takes to
        come back, in whole seconds, as Envoy rounds it (milliseconds rounded up, then divided down)."""
        if self._tokens(self._clock()) >= 1:
            return 0
        return math.ceil(1000 / self.fill_rate) // 1000


class _AlwaysDeny:
    """A bucket with ``max_tokens: 0``: every request is rate limited (and no ``x-ratelimit-*`` headers)."""

    __slots__ = ()

    def consume(self) -> bool:
        return False


def _make_bucket(token_bucket: Any) -> Any:
    """The bucket for a ``TokenBucket`` config; ``None`` without one (nothing is limited, as in Envoy)."""
    if token_bucket is None:
        return None
    if token_bucket.max_tokens == 0:
        return _AlwaysDeny()
    return TokenBucket(token_bucket.max_tokens, token_bucket.tokens_per_fill, token_bucket.fill_interval)


class _Fraction:
    """A ``RuntimeFractionalPercent``'s default value, decided per request (Envoy's ``featureEnabled``)."""

    __slots__ = ("numerator", "denominator")

    def __init__(self, percent: Any) -> None:
        self.numerator = percent.numerator if percent is not None else 0
        self.denominator = percent.denominator if percent is not None else 100

    def hit(self) -> bool:
        if self.numerator >= self.denominator:
            return True
        if self.numerator == 0:
            return False
        return random.getrandbits(64) % self.denominator < self.numerator


class LocalRateLimitStats(StatsScope):
    """One thread's ``<stat_prefix>.http_local_rate_limit.`` counters (Envoy's ``LocalRateLimitStats``)."""

    COUNTERS = ("enabled", "enforced", "ok", "rate_limited", "shadow_mode")
    __slots__ = COUNTERS


class RateLimitConfig:
    """One ``LocalRateLimit`` config, compiled: the filter's own or a route's override.

    Holds the config's bucket (shared by the workers) and its stats.
    """

    __slots__ = (
        "status",
        "enabled",
        "enforced",
        "bucket",
        "token_bucket",
        "per_connection",
        "x_ratelimit_headers",
        "response_headers",
        "request_headers",
        "stats",
    )

    def __init__(self, config: Any, stats_store: Any) -> None:
        self.status: int = config.status
        self.enabled = _Fraction(config.filter_enabled)
        self.enforced = _Fraction(config.filter_enforced)
        self.token_bucket = config.token_bucket
        self.per_connection: bool = config.local_rate_limit_per_downstream_connection
        # A per-connection config makes its buckets per connection: no shared one.
        self.bucket = None if self.per_connection else _make_bucket(config.token_bucket)
        self.x_ratelimit_headers: bool = config.enable_x_ratelimit_headers
        self.response_headers = HeaderParser(config.response_headers_to_add, ())
        self.request_headers = HeaderParser(config.request_headers_to_add_when_not_enforced, ())
        self.stats = PerThreadScopes(stats_store, f"{config.stat_prefix}.http_local_rate_limit.", LocalRateLimitStats)


class _NoRoute:
    """What ``%ROUTE_NAME%`` reads for a request without a route."""

    route_name = ""


class LocalRateLimitFilterFactory:
    """One configured local rate limit filter, shared by the workers; ``factory(stream)`` makes a filter.

    Args:
        http_filter: the ``http_filters`` entry (its ``name`` is the key of
            the per-route overrides).
        context: the connection manager's
            :class:`~pyevent_envoy.http.filter.FilterFactoryContext`.
    """

    __slots__ = ("config", "_per_route", "_per_vhost")

    def __init__(self, http_filter: Any, context: FilterFactoryContext) -> None:
        store = context.stats_store
        self.config = RateLimitConfig(http_filter.typed_config, store)
        # Overrides by the identity of the route / virtual host config they are on
        # (the route table's entries point at those same objects).
        self._per_route: dict[int, RateLimitConfig] = {}
        self._per_vhost: dict[int, RateLimitConfig] = {}
        route_config = context.route_config
        name = http_filter.name
        for vhost in route_config.virtual_hosts if route_config is not None else ():
            override = vhost.typed_per_filter_config.get(name)
            if override is not None:
                self._per_vhost[id(vhost)] = RateLimitConfig(override, store)
            for route in vhost.routes:
                override = route.typed_per_filter_config.get(name)
                if override is not None:
                    self._per_route[id(route)] = RateLimitConfig(override, store)

    def __call__(self, stream: Any) -> "LocalRateLimitFilter":
        return LocalRateLimitFilter(self, stream)

    def config_for(self, route: Any) -> RateLimitConfig:
        """The most specific config for the request's route entry: the route's, its virtual host's, or the filter's."""
        if route is None or not (self._per_route or self._per_vhost):
            return self.config
        config = self._per_route.get(id(route.route))
        if config is None:
            config = self._per_vhost.get(id(route.virtual_host), self.config)
        return config


class LocalRateLimitFilter(StreamDecoderFilter, StreamEncoderFilter):
    """The filter of one stream (see the module docstring)."""

    __slots__ = ("_factory", "_stream", "_config", "_bucket")

    def __init__(self, factory: LocalRateLimitFilterFactory, stream: Any) -> None:
        self._factory = factory
        self._stream = stream
        self._config = factory.config
        self._bucket: Any = None  # the bucket the request used, for the x-ratelimit-* headers

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        stream = self._stream
        config = self._config = self._factory.config_for(stream.route)
        if not config.enabled.hit():
            return FilterHeadersStatus.CONTINUE
        stats = config.stats.get()
        stats.enabled += 1
        if config.per_connection:
            state = stream.connection_filter_state()
            if _PER_CONNECTION_KEY not in state:
                state[_PER_CONNECTION_KEY] = _make_bucket(config.token_bucket)
            bucket = state[_PER_CONNECTION_KEY]
        else:
            bucket = config.bucket
        if bucket is None or bucket.consume():
            self._bucket = bucket
            stats.ok += 1
            return FilterHeadersStatus.CONTINUE
        self._bucket = bucket
        stats.rate_limited += 1
        if not config.enforced.hit():
            if config.request_headers:
                config.request_headers.evaluate(headers, headers, None, self._format_context(headers), self._route())
            return FilterHeadersStatus.CONTINUE
        stats.enforced += 1
        reply = HeaderMap()
        if config.response_headers:
            config.response_headers.evaluate(reply, headers, reply, self._format_context(headers), self._route())
        stream.send_local_reply(
            config.status, "local_rate_limited", details="local_rate_limited", flag=ResponseFlag.RATE_LIMITED, headers=reply
        )
        return FilterHeadersStatus.STOP_ITERATION

    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        bucket = self._bucket
        if self._config.x_ratelimit_headers and isinstance(bucket, TokenBucket):
            headers.add("x-ratelimit-limit", str(bucket.max_tokens))
            headers.add("x-ratelimit-remaining", str(bucket.remaining_tokens()))
            headers.add("x-ratelimit-reset", str(bucket.reset_seconds()))
        return FilterHeadersStatus.CONTINUE

    def _route(self) -> Any:
        route = self._stream.route
        return route if route is not None else _NoRoute

    def _format_context(self, headers: HeaderMap) -> FormatterContext:
        """What the configured header values' operators read (only built when a request is rate limited)."""
        info = self._stream.stream_info
        return FormatterContext(
            downstream_remote_address=info.downstream_remote_address,
            downstream_direct_remote_address=info.downstream_direct_remote_address,
            downstream_local_address=info.downstream_local_address,
            protocol=info.protocol,
            request_headers=headers,
            # Envoy formats these before any response code is set: %RESPONSE_CODE% is 0.
            extra={"RESPONSE_CODE": "0"},
        )
