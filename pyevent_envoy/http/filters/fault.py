"""``envoy.filters.http.fault`` (Envoy's ``fault_filter.cc``): injected delays and aborts.

For each request, in Envoy's order: past ``max_active_faults`` active
faults nothing is injected (``faults_overflow``); a request whose route's
cluster is not ``upstream_cluster``, whose ``x-envoy-downstream-service-node``
is not one of ``downstream_nodes``, or that fails the ``headers`` matchers
passes untouched.  Then a delay, when its percentage draws it and it has a
duration (``fixed_delay``, or with ``header_delay`` the
``x-envoy-fault-delay-request`` header in milliseconds): the request waits
on a timer of the worker's dispatcher (never blocking it), flagged ``DI``;
its body, meanwhile, is kept with flow control (the client is no longer
read past the connection's buffer limit).  Then, at once or after the
delay, an abort, when its percentage draws it and it has a status
(``http_status``, or with ``header_abort`` the
``x-envoy-fault-abort-request`` header, 200 to 599): the local reply
``fault filter abort`` with that status, flagged ``FI``.  With
``header_abort``/``header_delay`` the
``x-envoy-fault-{abort,delay}-request-percentage`` header lowers the
configured percentage (its numerator, same denominator).

Stats under ``http.<stat_prefix>.fault.``: ``aborts_injected``,
``delays_injected``, ``faults_overflow``, ``response_rl_injected`` (never
counted: response rate limits are refused) and the ``active_faults`` gauge
(a stream with a fault counts once until it ends); with an
``x-envoy-downstream-service-cluster`` header, also
``fault.<that cluster>.aborts_injected`` / ``delays_injected`` unless
``disable_downstream_cluster_stats``.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from pyevent_envoy.http.filter import FilterDataStatus, FilterHeadersStatus, StreamDecoderFilter
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.http.router.config_impl import compile_header_matcher
from pyevent_envoy.http.stream_info import ResponseFlag
from pyevent_envoy.stats import PerThreadScopes, StatsScope
from pyevent_envoy.stats.scopes import COUNTER, GAUGE

__all__ = ["FaultFilter", "FaultFilterConfig", "FaultStats"]

_ABORT_HEADER = "x-envoy-fault-abort-request"
_ABORT_PERCENTAGE_HEADER = "x-envoy-fault-abort-request-percentage"
_DELAY_HEADER = "x-envoy-fault-delay-request"
_DELAY_PERCENTAGE_HEADER = "x-envoy-fault-delay-request-percentage"
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1


def _simple_atoi(text: Optional[str], maximum: int) -> Optional[int]:
    """``text`` as absl::SimpleAtoi reads an unsigned integer up to ``maximum``, or None."""
    if text is None:
        return None
    text = text.strip(" \t\n\v\f\r")
    if text.startswith("+"):
        text = text[1:]
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= maximum else None


class FaultStats(StatsScope):
    """One worker's ``fault.`` stats, with the per-downstream-cluster counters made on first use."""

    COUNTERS = ("aborts_injected", "delays_injected", "faults_overflow", "response_rl_injected")
    GAUGES = ("active_faults",)
    __slots__ = COUNTERS + GAUGES + ("downstream_clusters", "active_faults_used")

    def __init__(self) -> None:
        super().__init__()
        #: ``{cluster: [aborts_injected, delays_injected]}``
        self.downstream_clusters: dict[str, list[int]] = {}
        self.active_faults_used = False

    def values(self) -> Iterator[tuple]:
        for name in self.COUNTERS:
            yield name, COUNTER, getattr(self, name)
        # Envoy shows a gauge as used once it moved.
        yield "active_faults", GAUGE, self.active_faults, self.active_faults_used
        for cluster, (aborts, delays) in list(self.downstream_clusters.items()):
            if aborts:
                yield f"{cluster}.aborts_injected", COUNTER, aborts
            if delays:
                yield f"{cluster}.delays_injected", COUNTER, delays


class FaultFilterConfig:
    """One ``envoy.filters.http.fault`` entry of ``http_filters`` (shared by workers).

    Built from :class:`pyevent_envoy.config.bootstrap.HttpFault`.
    """

    stats_prefix = "fault."

    def __init__(self, model: Any, context: Any) -> None:
        abort, delay = model.abort, model.delay
        self.abort_status: Optional[int] = abort.http_status if abort is not None else None
        self.header_abort = abort is not None and abort.header_abort
        self.abort_percentage: Optional[tuple[int, int]] = abort.percentage if abort is not None else None
        self.fixed_delay_ms: Optional[int] = delay.fixed_delay_ms if delay is not None else None
        self.header_delay = delay is not None and delay.header_delay
        self.delay_percentage: Optional[tuple[int, int]] = delay.percentage if delay is not None else None
        self.upstream_cluster: str = model.upstream_cluster
        self.downstream_nodes = frozenset(model.downstream_nodes)
        self.header_matchers = tuple(compile_header_matcher(hm) for hm in model.headers)
        self.max_active_faults: Optional[int] = model.max_active_faults
        self.downstream_cluster_stats = not model.disable_downstream_cluster_stats
        # Every worker's scope: active_faults is one gauge over all workers,
        # which max_active_faults reads (as fuzzily as Envoy: no lock).
        self._scopes: list[FaultStats] = []
        #: Each worker's stats (``http.<stat_prefix>.fault.``).
        self.stats = PerThreadScopes(context.stats_store, f"http.{context.stat_prefix}.{self.stats_prefix}", self.new_stats)

    def new_stats(self) -> FaultStats:
        scope = FaultStats()
        self._scopes.append(scope)
        return scope

    def active_faults(self) -> int:
        return sum(scope.active_faults for scope in list(self._scopes))

    def __call__(self, stream: Any) -> "FaultFilter":
        return FaultFilter(self, stream)


class FaultFilter(StreamDecoderFilter):
    """One stream's fault injection."""

    __slots__ = ("_config", "_stream", "_stats", "_timer", "_active", "_downstream_cluster", "_headers", "decoder_callbacks")

    def __init__(self, config: FaultFilterConfig, stream: Any) -> None:
        self._config = config
        self._stream = stream
        self._stats: FaultStats = config.stats.get()
        self._timer: Any = None
        self._active = False
        self._downstream_cluster = ""
        self._headers: Optional[HeaderMap] = None

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        config = self._config
        if config.max_active_faults is not None and config.active_faults() >= config.max_active_faults:
            self._stats.faults_overflow += 1
            return FilterHeadersStatus.CONTINUE
        if config.upstream_cluster:
            route = self._stream.route
            if route is None or route.cluster != config.upstream_cluster:
                return FilterHeadersStatus.CONTINUE
        if config.downstream_nodes and headers._get("x-envoy-downstream-service-node") not in config.downstream_nodes:
            return FilterHeadersStatus.CONTINUE
        for matches in config.header_matchers:
            if not matches(headers):
                return FilterHeadersStatus.CONTINUE
        self._downstream_cluster = headers._get("x-envoy-downstream-service-cluster") or ""
        delay_ms = self._delay_ms(headers)
        if delay_ms:
            self._headers = headers
            self._timer = self._stream.dispatcher.create_timer(self._on_delay_done)
            self._timer.enable_timer(delay_ms / 1000.0)
            self._count_fault(1)
            self._stream.stream_info.set_response_flag(ResponseFlag.DELAY_INJECTED)
            return FilterHeadersStatus.STOP_ITERATION
        status = self._abort_status(headers)
        if status is not None and self._abort_enabled(headers):
            self._abort(status)
            return FilterHeadersStatus.STOP_ITERATION
        return FilterHeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> FilterDataStatus:
        if self._timer is None:
            return FilterDataStatus.CONTINUE
        # Delayed: the body waits too, and past the buffer limit the client is no longer read.
        return FilterDataStatus.STOP_ITERATION_AND_WATERMARK

    def decode_trailers(self, trailers: HeaderMap) -> FilterHeadersStatus:
        return FilterHeadersStatus.CONTINUE if self._timer is None else FilterHeadersStatus.STOP_ITERATION

    def _on_delay_done(self) -> None:
        self._close_timer()
        headers = self._headers
        self._headers = None
        status = self._abort_status(headers) if headers is not None else None
        if status is not None and self._abort_enabled(headers):
            self._abort(status)
        else:
            self._stream.continue_decoding()

    def on_destroy(self) -> None:
        self._close_timer()
        self._headers = None
        if self._active:
            self._active = False
            self._stats.active_faults -= 1

    # the decisions

    def _enabled(self, percentage: Optional[tuple[int, int]], header: Optional[str], headers: HeaderMap) -> bool:
        """Envoy's featureEnabled on the fault's percentage (twice with a downstream cluster, as Envoy's runtime keys do)."""
        if percentage is None:
            return False
        numerator, denominator = percentage
        if header is not None:
            # With header_abort / header_delay the request may lower the percentage.
            asked = _simple_atoi(headers._get(header), _UINT32_MAX)
            if asked is not None:
                numerator = min(asked, numerator)
        stream = self._stream
        enabled = stream.random() % denominator < numerator
        if self._downstream_cluster:
            enabled = enabled or stream.random() % denominator < numerator
        return enabled

    def _delay_ms(self, headers: HeaderMap) -> int:
        config = self._config
        if config.delay_percentage is None:
            return 0
        if not self._enabled(config.delay_percentage, _DELAY_PERCENTAGE_HEADER if config.header_delay else None, headers):
            return 0
        if config.header_delay:
            return _simple_atoi(headers._get(_DELAY_HEADER), _UINT64_MAX) or 0
        return config.fixed_delay_ms or 0

    def _abort_status(self, headers: HeaderMap) -> Optional[int]:
        config = self._config
        if config.header_abort:
            code = _simple_atoi(headers._get(_ABORT_HEADER), _UINT64_MAX)
            return code if code is not None and 200 <= code < 600 else None
        return config.abort_status

    def _abort_enabled(self, headers: HeaderMap) -> bool:
        config = self._config
        return self._enabled(config.abort_percentage, _ABORT_PERCENTAGE_HEADER if config.header_abort else None, headers)

    # injecting

    def _abort(self, status: int) -> None:
        # Counted first: the reply may end the stream (and so this filter) at once.
        self._count_fault(0)
        stream = self._stream
        stream.stream_info.set_response_flag(ResponseFlag.FAULT_INJECTED)
        stream.send_local_reply(status, "fault filter abort", details="fault_filter_abort")

    def _count_fault(self, which: int) -> None:
        """Count an abort (0) or a delay (1); the stream's first fault makes it an active one."""
        stats = self._stats
        if which == 0:
            stats.aborts_injected += 1
        else:
            stats.delays_injected += 1
        if self._downstream_cluster and self._config.downstream_cluster_stats:
            counts = stats.downstream_clusters.get(self._downstream_cluster)
            if counts is None:
                counts = stats.downstream_clusters[self._downstream_cluster] = [0, 0]
            counts[which] += 1
        if not self._active:
            self._active = True
            stats.active_faults += 1
            stats.active_faults_used = True

    def _close_timer(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None
