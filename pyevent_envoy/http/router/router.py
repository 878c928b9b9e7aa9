"""The router filter (Envoy's ``source/common/router/router.cc``): the last decoder filter.

For each request it takes the stream's route and either answers it (no
route: 404 NR; ``direct_response``; ``redirect``) or proxies it: the
cluster (``weighted_clusters`` by weight), a host from this worker's load
balancer, this worker's HTTP/1.1 pool for the host, then an
:class:`UpstreamRequest` that streams the body up and the response down
with flow control both ways.

Failures, as Envoy answers them: no host 503 (UH), circuit breaker 503
(UO), connect failure or timeout 503 (UF), the upstream resetting before
the response headers 503 (UC) -- retried once on a fresh connection when the
request went out on a reused keep-alive connection and had no body, since
the upstream most likely closed it idle -- a malformed or cut-short response
502 (UPE), no response within the route's timeout 504 (UT).  Once the
response has started going downstream, a failure resets the downstream
connection instead, with the same flag.

Retries, as Envoy 1.40 makes them: the route's (or its virtual host's)
``retry_policy`` and, on a trusted request, the ``x-envoy-*`` retry and
timeout headers decide, through a
:class:`~pyevent_envoy.http.router.retry_state_impl.RetryStateImpl`, whether
a failed attempt (a response, a reset, a connect failure, a per-try
timeout) is tried again after a back-off, on a host the load balancer picks
again.  Until the response starts going downstream:

- the request body is kept (up to the listener's buffer limit; past it,
  ``retry_or_shadow_abandoned`` and no more retries; a body outgrowing the
  limit during a back-off is answered 507) and sent again with each attempt;
- ``per_try_timeout`` bounds each attempt from the moment its connection is
  ready and the request is complete, to its response headers; the route
  ``timeout`` bounds them all, back-offs included;
- when no retry is left, the last failure goes downstream: the upstream's
  response, or the local reply for a reset or timeout (whose body then says
  ``retried and the latest reset reason``), with ``URX`` (or ``UO`` when the
  ``max_retries`` circuit breaker said no) before its own flag.

A downstream that goes away during a back-off cancels it.

Upgrades (WebSocket) that the connection manager allowed go up with their
``Connection: upgrade`` and ``Upgrade``; what the client sends after the
head is held until the upstream accepts.  Then, as Envoy 1.40 does:

- ``101`` with an ``Upgrade`` header: the tunnel is open.  The 101 goes
  down, the held bytes go up, and from then on bytes are copied both ways
  as they come, with the same flow control as bodies; the route timeout no
  longer applies (the stream idle timeout does).  Either side's close ends
  it: the other side gets what was in flight, then the close.  The upstream
  connection is never reused.
- 400 or above: an ordinary response, relayed; both connections close after it.
- any other status: relayed without its body (headers only, without
  ``content-length`` and ``content-type``), and both connections close.
- no response within the route timeout: 504, as for any request.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from pyevent_envoy._defaults import defaults_base
from pyevent_envoy.http.codec import STATUS_CODES
from pyevent_envoy.http.conn_pool import Http1ConnPool, PoolFailureReason, StreamResetReason
from pyevent_envoy.http.filter import FilterDataStatus, FilterHeadersStatus, StreamDecoderFilter
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.http.router.config_impl import FormatterContext, effective_per_try_timeout, whole_ms
from pyevent_envoy.http.router.retry_policy_impl import DEFAULT_RETRY_POLICY
from pyevent_envoy.http.router.retry_state_impl import RetryStateImpl, RetryStatus, parse_unsigned
from pyevent_envoy.http.stream_info import ResponseFlag

__all__ = ["RouterFilter", "UpstreamRequest"]

_log = logging.getLogger("pyevent_envoy.http")

#: Request body bytes held while no upstream connection is ready, before the
#: downstream stops being read (Envoy: the connection buffer limit).
BUFFER_LIMIT = 1024 * 1024

# Enum members the request path tests or returns, as module constants: on
# CPython 3.11 every ``Enum.MEMBER`` lookup goes through EnumType.__getattr__'s
# slow attribute hook (about 70 ns each, several per request).
_HEADERS_STOP = FilterHeadersStatus.STOP_ITERATION
# The method bound once (see conn_manager_impl's _status_code for why).
_status_code = STATUS_CODES.get

_RESET_BODY = "upstream connect error or disconnect/reset before headers. {}reset reason: {}"
_RETRIED = "retried and the latest "

# The request headers a trusted request may set to change the router's
# timeouts (Envoy's FilterUtility::finalTimeout); the router consumes them.
# Hedging and alternative stat names are not supported: their headers are
# consumed without effect.
_TIMEOUT_HEADERS = (
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-upstream-alt-stat-name",
)

_RETRY_FLAGS = {
    RetryStatus.NO_OVERFLOW: ResponseFlag.UPSTREAM_OVERFLOW,
    RetryStatus.NO_RETRY_LIMIT_EXCEEDED: ResponseFlag.UPSTREAM_RETRY_LIMIT_EXCEEDED,
}

# Envoy's words for why an upstream request ended without a response
# (Http::Utility::resetReasonToString): the 503/502 body says them, and the
# response code details spell them with underscores.
_RESET_REASON_TEXT = {
    PoolFailureReason.OVERFLOW: "overflow",
    PoolFailureReason.REMOTE_CONNECTION_FAILURE: "remote connection failure",
    PoolFailureReason.LOCAL_CONNECTION_FAILURE: "local connection failure",
    PoolFailureReason.TIMEOUT: "connection timeout",
    StreamResetReason.CONNECTION_TERMINATION: "connection termination",
    StreamResetReason.PROTOCOL_ERROR: "protocol error",
    StreamResetReason.LOCAL_RESET: "local reset",
}

# Envoy's StringUtil::replaceAllEmptySpace: every whitespace character becomes "_".
_UNDERSCORE_SPACES = str.maketrans(" \t\n\v\f\r", "______")


def _reset_details(reason: Any, transport_failure_reason: str, response_started: bool) -> str:
    """Envoy 1.40's response code details for an upstream request that failed.

    ``upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}``:
    the reason, then the connection's failure if there is one, with
    whitespace as underscores; ``..._after_response_started{...}`` once the
    response has gone downstream.
    """
    text = _RESET_REASON_TEXT[reason]
    if transport_failure_reason:
        text = f"{text}|{transport_failure_reason}"
    when = "after" if response_started else "before"
    return f"upstream_reset_{when}_response_started{{{text.translate(_UNDERSCORE_SPACES)}}}"

# RouterFilter._tunnel: where an upgrade request stands (0 for every other request).
_TUNNEL_PENDING = 1  # waiting for the upstream's answer; request bytes are held
_TUNNEL_OPEN = 2  # 101 received: raw bytes both ways
_TUNNEL_REFUSED = 3  # any other answer: relayed as a response; held bytes are dropped


# What every upstream request starts with (set in C at creation: see pyevent_envoy._defaults).
_UpstreamRequestFields = defaults_base(
    "pyevent_envoy.http.router.router._UpstreamRequestFields",
    #: This worker's counters of ``host`` (the pool's), for the per-host stats.
    host_stats=None,
    encoder=None,
    client=None,
    _pending=None,
    response_started=False,
    response_complete=False,
    _upstream_read_disabled=False,
)


class UpstreamRequest(_UpstreamRequestFields):
    """One attempt to get the response from one upstream host (Envoy's ``UpstreamRequest``)."""

    __slots__ = ("_router", "host")

    def __init__(self, router: "RouterFilter", host: Any) -> None:
        self._router = router
        self.host = host

    def start(self, pool: Http1ConnPool) -> None:
        self.host_stats = pool.host_stats
        self._pending = pool.new_stream(self, self)

    def charge_host(self, code: int, timeout: bool = False) -> None:
        """Charge response ``code`` (and a timeout) to the host's own stats, as Envoy's router does."""
        stats = self.host_stats
        if stats is not None:
            if timeout:
                stats.rq_timeout += 1
            stats.charge_response(code)

    # PoolCallbacks

    def on_pool_ready(self, encoder: Any, client: Any) -> None:
        self._pending = None
        self.encoder = encoder
        self.client = client
        self._router._on_upstream_ready(self)

    def on_pool_failure(self, reason: PoolFailureReason, transport_failure_reason: str) -> None:
        self._pending = None
        self._router._on_pool_failure(self, reason, transport_failure_reason)

    # ResponseDecoder (through the pool's CodecClient)

    def decode_1xx_headers(self, headers: HeaderMap) -> None:
        # Not relayed, as with Envoy's default (proxy_100_continue off): the
        # connection manager answered an ``Expect: 100-continue`` itself, and a
        # client that did not ask must not get one.
        self._router._on_upstream_1xx_headers(self)

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> None:
        self.response_started = True
        if end_stream:
            self.response_complete = True
        self._router._on_upstream_headers(self, headers, end_stream)

    def decode_data(self, data: bytes, end_stream: bool) -> None:
        if end_stream:
            self.response_complete = True
        self._router._on_upstream_data(self, data, end_stream)

    def decode_trailers(self, trailers: HeaderMap) -> None:
        self.response_complete = True
        self._router._on_upstream_trailers(self, trailers)

    # the client's stream owner callbacks

    def on_upstream_reset(self, reason: StreamResetReason) -> None:
        self._router._on_upstream_reset(self, reason)

    def on_upstream_above_write_buffer_high_watermark(self) -> None:
        self._router.stream.connection.read_disable(True)

    def on_upstream_below_write_buffer_low_watermark(self) -> None:
        self._router.stream.connection.read_disable(False)

    # flow control of the response

    def read_disable(self, disable: bool) -> None:
        if self.client is None or self.client.closed or disable == self._upstream_read_disabled:
            return
        self._upstream_read_disabled = disable
        self.client.connection.read_disable(disable)

    def end_tunnel(self) -> None:
        """The downstream closed the tunnel: the upstream gets the bytes in flight, then the close."""
        client = self.client
        self.client = None
        if client is not None:
            client.close_after_flush()

    def cancel(self) -> None:
        """The stream is gone: stop waiting, or drop the connection mid-exchange."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self.client is not None and not self.response_complete:
            self.client.detach_stream()
        self.client = None


# What every router filter starts with (set in C at creation: see pyevent_envoy._defaults).
_RouterFields = defaults_base(
    "pyevent_envoy.http.router.router._RouterFields",
    _route=None,
    _headers=None,
    _upstream=None,
    _body_bytes=0,
    _trailers=None,
    _request_complete=False,
    _request_complete_time=None,
    _timeout=0.0,
    _timeout_code=504,
    _timeout_overridden=False,
    _per_try_timeout=0.0,
    _per_try_timer=None,
    _retry_state=None,
    # What a retry sends again: the body so far (None when no retry can come).
    _retry_body=None,
    _retry_body_bytes=0,
    _is_retry=False,
    _upstream_request_started=False,
    _retried=False,
    _downstream_read_disabled=False,
    _downstream_started=False,
    _done=False,
    _cluster=None,
    _tunnel=0,
)


class RouterFilter(StreamDecoderFilter, _RouterFields):
    """``envoy.filters.http.router``."""

    __slots__ = ("stream", "decoder_callbacks", "_body")

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._body: list[Any] = []

    # StreamDecoderFilter

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        stream = self.stream
        route = stream.route
        self._headers = headers
        self._request_complete = end_stream
        stream.stats.rq_total += 1
        if route is None:
            stream.stats.no_route += 1
            stream.send_local_reply(404, "", details="route_not_found", flag=ResponseFlag.NO_ROUTE_FOUND)
            return FilterHeadersStatus.STOP_ITERATION
        self._route = route
        direct = route.direct_response
        if direct is not None:
            stream.stats.rq_direct_response += 1
            reply = HeaderMap()
            location = route.redirect_location(headers)
            if location is not None:
                reply.set("location", location)
            route.finalize_response_headers(reply, self._format_context)
            stream.send_local_reply(direct[0], direct[1], details="direct_response", headers=reply)
            return FilterHeadersStatus.STOP_ITERATION
        if route.redirect is not None:
            stream.stats.rq_direct_response += 1  # Envoy's redirects are direct responses
            reply = HeaderMap()
            status, location = route.redirect_response(headers)
            reply.set("location", location)
            route.finalize_response_headers(reply, self._format_context)
            stream.send_local_reply(status, "", details="direct_response", headers=reply)
            return FilterHeadersStatus.STOP_ITERATION
        cluster_name = route.cluster
        tlc = stream.cluster_manager.get_thread_local_cluster(cluster_name)
        if tlc is None:
            stream.send_local_reply(503, "", details="cluster_not_found", flag=ResponseFlag.NO_CLUSTER_FOUND)
            return FilterHeadersStatus.STOP_ITERATION
        self._cluster = tlc
        self._timeout = route.timeout
        per_try_timeout = route.per_try_timeout
        policy = route.retry_policy
        retry = None
        if stream.internal_request:
            per_try_timeout = self._consume_timeout_headers(headers, per_try_timeout)
            retry = RetryStateImpl.create(policy or DEFAULT_RETRY_POLICY, headers, tlc, stream.dispatcher, trusted=True)
        elif policy is not None and policy.retry_on:
            retry = RetryStateImpl.create(policy, headers, tlc, stream.dispatcher, trusted=False)
        if retry is not None:
            self._set_retry_state(retry)
        if stream.is_upgrade:
            # Its request never ends, so (as in Envoy) no per-try timeout starts:
            # the route timeout bounds the wait for the upgrade answer.
            self._tunnel = _TUNNEL_PENDING
        elif per_try_timeout:
            self._per_try_timeout = effective_per_try_timeout(self._timeout, per_try_timeout)
            self._timeout_overridden = True
        # The request of a tunnel never ends: Envoy times the wait for the
        # upgrade response from the headers instead.
        if end_stream or self._tunnel:
            self._start_response_timer()
        self._prepare_upstream_headers(headers)
        self._start_upstream()
        return _HEADERS_STOP

    def decode_data(self, data: bytes, end_stream: bool) -> FilterDataStatus:
        if self._tunnel:
            self._decode_tunnel_data(data, end_stream)
            return FilterDataStatus.STOP_ITERATION_NO_BUFFER
        if end_stream:
            self._request_complete = True
            self._start_response_timer()
        if self._retry_body is not None:
            limit = self.stream.connection.buffer_limit
            if limit and self._retry_body_bytes + len(data) > limit:
                # Envoy gives up on retrying rather than buffer past the limit.
                self._cluster.stats.retry_or_shadow_abandoned += 1
                self._set_retry_state(None)
                if self._upstream is None:
                    # A retry was waiting: there is nothing left to send this to.
                    self._abort(
                        507,
                        "exceeded request buffer limit while retrying upstream",
                        "request_payload_exceeded_retry_buffer_limit",
                    )
                    return FilterDataStatus.STOP_ITERATION_NO_BUFFER
            else:
                self._retry_body.append(data)
                self._retry_body_bytes += len(data)
                if self._upstream is None:
                    return FilterDataStatus.STOP_ITERATION_NO_BUFFER  # the retry sends it
        upstream = self._upstream
        if upstream is not None and upstream.encoder is not None:
            upstream.encoder.encode_data(data, end_stream)
        else:
            self._body.append(data)
            self._body_bytes += len(data)
            if self._body_bytes > BUFFER_LIMIT and not self._downstream_read_disabled:
                self._downstream_read_disabled = True
                self.stream.connection.read_disable(True)
        return FilterDataStatus.STOP_ITERATION_NO_BUFFER

    def _decode_tunnel_data(self, data: bytes, end_stream: bool) -> None:
        """Bytes from the client after an upgrade request's head (``end_stream``: it closed)."""
        if end_stream:
            self._request_complete = True
        upstream = self._upstream
        if self._tunnel == _TUNNEL_OPEN and upstream is not None and upstream.encoder is not None:
            upstream.encoder.encode_data(data, end_stream)
            if end_stream:
                upstream.end_tunnel()
        elif self._tunnel == _TUNNEL_PENDING and data:
            # Held until the upstream accepts the upgrade (Envoy 1.40 does not
            # send them to an upstream that may refuse it); past the buffer
            # limit the client is no longer read.
            self._body.append(data)
            self._body_bytes += len(data)
            if self._body_bytes > BUFFER_LIMIT and not self._downstream_read_disabled:
                self._downstream_read_disabled = True
                self.stream.connection.read_disable(True)

    def decode_trailers(self, trailers: HeaderMap) -> FilterHeadersStatus:
        self._request_complete = True
        self._trailers = trailers
        self._start_response_timer()
        upstream = self._upstream
        if upstream is not None and upstream.encoder is not None:
            upstream.encoder.encode_trailers(trailers)
        elif upstream is not None or self._retry_state is None:
            self._body.append(trailers)  # sent after the buffered body
        return FilterHeadersStatus.STOP_ITERATION

    # request preparation

    def _format_context(self) -> FormatterContext:
        """What header formatters read; passed uncalled, built only when a value has an operator."""
        stream = self.stream
        connection = stream.connection
        upstream = self._upstream
        return FormatterContext(
            downstream_remote_address=connection.remote_address,
            downstream_local_address=connection.local_address,
            protocol=stream.stream_info.protocol,
            upstream_host=upstream.host.address if upstream is not None else None,
            upstream_cluster=self._route.cluster or "" if self._route is not None else "",
            request_headers=self._headers,
        )

    def _consume_timeout_headers(self, headers: HeaderMap, per_try_timeout: float) -> float:
        """A trusted request's timeout headers, applied and removed (Envoy's ``finalTimeout``); returns the per-try timeout."""
        get = headers._get
        timeout_ms = parse_unsigned(get("x-envoy-upstream-rq-timeout-ms"))
        if timeout_ms is not None:
            self._timeout = timeout_ms / 1000
            self._timeout_overridden = True
        per_try_ms = parse_unsigned(get("x-envoy-upstream-rq-per-try-timeout-ms"))
        if per_try_ms is not None:
            per_try_timeout = per_try_ms / 1000
        if get("x-envoy-upstream-rq-timeout-alt-response") is not None:
            self._timeout_code = 204
        for name in _TIMEOUT_HEADERS:
            headers.remove(name)
        return per_try_timeout

    def _prepare_upstream_headers(self, headers: HeaderMap) -> None:
        route = self._route
        if route.changes_request:
            # Envoy's order: the route's header mutations, then its rewrites.
            route.finalize_request_headers(headers, self._format_context)
            route.apply_rewrites(headers)
        if self._timeout_overridden:
            self._set_expected_timeout(headers, 0.0)
        elif route.timeout:
            headers._set_trusted("x-envoy-expected-rq-timeout-ms", route.timeout_ms_text)

    def _set_expected_timeout(self, headers: HeaderMap, elapsed: float) -> None:
        """``x-envoy-expected-rq-timeout-ms`` for an attempt ``elapsed`` seconds after the request ended.

        The per-try timeout if there is one, else the route timeout, never
        more than what is left of the route timeout (1 ms when nothing is),
        as Envoy's ``setTimeoutHeaders`` writes it.
        """
        expected = whole_ms(self._per_try_timeout or self._timeout)
        if not expected:
            return
        if self._timeout:
            left = whole_ms(self._timeout) - int(elapsed * 1000)
            expected = min(expected, left) if left > 0 else 1
        headers._set_trusted("x-envoy-expected-rq-timeout-ms", str(expected))

    def _start_upstream(self) -> None:
        tlc = self._cluster
        host = tlc.choose_host()
        if host is None:
            tlc.stats.upstream_cx_none_healthy += 1
            self._charge_cluster(503, tlc.stats)
            self._abort(503, "no healthy upstream", "no_healthy_upstream", ResponseFlag.NO_HEALTHY_UPSTREAM)
            return
        self.stream.stream_info.upstream_host = host
        if self._route.auto_host_rewrite and host.hostname:
            self._headers.set(":authority", host.hostname)
        pool = tlc.conn_pools.get(host)
        if pool is None:
            pool = tlc.conn_pools[host] = Http1ConnPool(
                self.stream.dispatcher, host, tlc.info, tlc.host_stats.for_host(host), tlc.stats
            )
        upstream = self._upstream = UpstreamRequest(self, host)
        self.stream.stream_info.attempt_count += 1
        upstream.start(pool)

    # retries

    def _set_retry_state(self, state: Optional[RetryStateImpl]) -> None:
        """Replace the retry state; a request with one keeps its body for the retries."""
        if self._retry_state is not None:
            self._retry_state.close()
        self._retry_state = state
        if state is None:
            self._retry_body = None
            self._retry_body_bytes = 0
        elif self._retry_body is None:
            self._retry_body = []

    def _retry_flag(self, status: RetryStatus) -> None:
        flag = _RETRY_FLAGS.get(status)
        if flag is not None:
            self.stream.stream_info.set_response_flag(flag)

    def _maybe_retry_reset(self, reason: Any, upstream: UpstreamRequest) -> RetryStatus:
        """Ask the retry state about an attempt that ended without response headers (Envoy's ``maybeRetryReset``)."""
        retry = self._retry_state
        if retry is None or self._downstream_started:
            return RetryStatus.NO
        # Any attempt that sent a byte upstream makes the request started.
        self._upstream_request_started |= upstream.encoder is not None
        status = retry.should_retry_reset(reason, self._upstream_request_started, self._do_retry)
        self._retry_flag(status)
        return status

    def _do_retry(self) -> None:
        """The back-off is over: the next attempt, with the body (and trailers) so far."""
        if self._done:
            return
        self._is_retry = True
        if self._request_complete_time is not None:
            elapsed = self.stream.dispatcher.approximate_now - self._request_complete_time
        else:
            elapsed = 0.0
        self._set_expected_timeout(self._headers, elapsed)
        if not self._tunnel:
            # (An upgrade request's held bytes were never sent: they stay held.)
            body: list[Any] = list(self._retry_body or ())
            self._body_bytes = self._retry_body_bytes
            if self._trailers is not None:
                body.append(self._trailers)
            self._body = body
        self._start_upstream()

    def _start_per_try_timer(self) -> None:
        if not self._per_try_timeout or self._downstream_started:
            return
        timer = self._per_try_timer
        if timer is None:
            timer = self._per_try_timer = self.stream.dispatcher.create_timer(self._on_per_try_timeout)
        timer.enable_timer(self._per_try_timeout)

    def _stop_per_try_timer(self) -> None:
        if self._per_try_timer is not None:
            self._per_try_timer.disable_timer()

    def _on_per_try_timeout(self) -> None:
        upstream = self._upstream
        if upstream is None or self._done or self._downstream_started:
            return
        self._cluster.stats.upstream_rq_per_try_timeout += 1
        self._record_outcome(upstream, 504)
        if upstream.host_stats is not None:
            upstream.host_stats.rq_timeout += 1  # as Envoy: whether or not a retry follows
        self._upstream = None
        upstream.cancel()
        if self._maybe_retry_reset(StreamResetReason.LOCAL_RESET, upstream) is RetryStatus.YES:
            return
        self._charge_cluster(self._timeout_code)
        upstream.charge_host(self._timeout_code)
        self._abort_on_timeout("upstream_per_try_timeout")

    # upstream events

    def _on_upstream_ready(self, upstream: UpstreamRequest) -> None:
        if upstream is not self._upstream or self._done:
            upstream.cancel()
            return
        if self._is_retry:
            # The attempt that goes on is the one the log describes, not an earlier failed connect.
            self.stream.stream_info.upstream_transport_failure_reason = ""
        encoder = upstream.encoder
        if self._tunnel:
            # The held bytes wait for the upgrade response (_on_upgrade_response).
            encoder.encode_headers(self._headers, False)
            return
        body = self._body
        headers_only = self._request_complete and not body
        encoder.encode_headers(self._headers, headers_only)
        if body:
            self._body = []
            self._body_bytes = 0
            last = len(body) - 1
            for i, chunk in enumerate(body):
                if isinstance(chunk, HeaderMap):
                    encoder.encode_trailers(chunk)
                else:
                    encoder.encode_data(chunk, self._request_complete and i == last)
            if self._downstream_read_disabled:
                self._downstream_read_disabled = False
                self.stream.connection.read_disable(False)
        if self._per_try_timeout and self._request_complete and upstream is self._upstream:
            self._start_per_try_timer()

    def _on_pool_failure(
        self, upstream: UpstreamRequest, reason: PoolFailureReason, transport_failure_reason: str
    ) -> None:
        if upstream is not self._upstream or self._done:
            return
        self._upstream = None
        if reason is not PoolFailureReason.OVERFLOW:  # as Envoy: an overflow says nothing of the host
            self._record_outcome(upstream, 503)
        self.stream.stream_info.upstream_transport_failure_reason = transport_failure_reason
        if self._maybe_retry_reset(reason, upstream) is RetryStatus.YES:
            return
        self._charge_cluster(503)
        upstream.charge_host(503)
        retried = _RETRIED if self._is_retry else ""
        flag = ResponseFlag.UPSTREAM_OVERFLOW if reason is PoolFailureReason.OVERFLOW else ResponseFlag.UPSTREAM_CONNECTION_FAILURE
        self._abort(
            503,
            _RESET_BODY.format(retried, _RESET_REASON_TEXT[reason]),
            _reset_details(reason, transport_failure_reason, False),
            flag,
        )

    def _on_upstream_1xx_headers(self, upstream: UpstreamRequest) -> None:
        # As Envoy: once the upstream sent a 1xx, the request is not retried.
        if upstream is self._upstream and self._retry_state is not None:
            self._set_retry_state(None)

    def _on_upstream_headers(self, upstream: UpstreamRequest, headers: HeaderMap, end_stream: bool) -> None:
        if upstream is not self._upstream or self._done:
            return
        status = headers._get(":status")
        code = _status_code(status) or (int(status) if status and status.isdigit() else 0)
        outlier = self._cluster.outlier
        if outlier is not None:
            outlier.put_http_response_code(upstream.host, code)
        stats = self._cluster.stats
        retry = self._retry_state
        if retry is not None:
            decision = retry.should_retry_headers(headers, self._headers, self._do_retry)
            if decision is RetryStatus.YES:
                stats.charge_retried_response(code)
                upstream.charge_host(500)  # Envoy counts a retried response as a host error
                self._upstream = None
                self._stop_per_try_timer()
                if not (end_stream and self._request_complete):
                    upstream.cancel()  # the rest of this response is not wanted
                return
            self._retry_flag(decision)
            self._set_retry_state(None)
        if not self.stream.stream_info.health_check:
            stats.charge_response(code)  # Envoy's chargeUpstreamCode: only for a response that goes on
        upstream.charge_host(code)
        self._downstream_started = True
        if self._per_try_timer is not None:
            self._per_try_timer.disable_timer()  # Envoy ignores it once the response has started
        stream = self.stream
        stream.stream_info.response_code_details = "via_upstream"
        if self._request_complete_time is not None:
            # Envoy measures it only for a request received in full.
            elapsed = stream.dispatcher.approximate_now - self._request_complete_time
            ms = int(elapsed * 1000)  # (a test, not max(): the builtin's generic path costs more)
            headers._set_trusted("x-envoy-upstream-service-time", str(ms if ms > 0 else 0))
        if self._route.changes_response:
            self._route.finalize_response_headers(headers, self._format_context)
        if self._tunnel:
            end_stream = self._on_upgrade_response(headers, end_stream)
        if end_stream:
            self._on_upstream_complete()
        stream.encode_headers(headers, end_stream)
        if self._tunnel == _TUNNEL_OPEN and not self._done:
            self._send_held_tunnel_bytes(upstream)
        self._apply_downstream_backpressure()

    def _on_upgrade_response(self, headers: HeaderMap, end_stream: bool) -> bool:
        """Settle an upgrade request on its response; returns whether the response ends with ``headers``."""
        status = headers.get(":status") or ""
        if status == "101" and not end_stream:
            # (The codec delivers a 101 without Upgrade as a bodiless response, end_stream set.)
            self._tunnel = _TUNNEL_OPEN
            self._finish_timer()  # the route timeout covered only the wait for the upgrade
            return False
        self._tunnel = _TUNNEL_REFUSED
        self._body = []
        self._body_bytes = 0
        if end_stream or status >= "400":  # (three digits: text order is numeric order)
            return end_stream
        # Envoy 1.40 relays a 1xx/2xx/3xx refusal of an upgrade as headers only
        # (its body is never read), without the fields that describe that body
        # (only these two: it keeps content-encoding and the like); the
        # upstream connection is then dropped.
        headers.remove("content-length")
        headers.remove("content-type")
        return True

    def _send_held_tunnel_bytes(self, upstream: UpstreamRequest) -> None:
        """The tunnel is open: what the client sent while waiting goes up now."""
        body = self._body
        if body:
            self._body = []
            self._body_bytes = 0
            encoder = upstream.encoder
            for chunk in body:
                encoder.encode_data(chunk, False)
        if self._downstream_read_disabled:
            self._downstream_read_disabled = False
            self.stream.connection.read_disable(False)

    def _on_upstream_data(self, upstream: UpstreamRequest, data: bytes, end_stream: bool) -> None:
        if upstream is not self._upstream or self._done:
            return
        if end_stream:
            self._on_upstream_complete()
        self.stream.encode_data(data, end_stream)
        self._apply_downstream_backpressure()

    def _on_upstream_trailers(self, upstream: UpstreamRequest, trailers: HeaderMap) -> None:
        if upstream is not self._upstream or self._done:
            return
        self._on_upstream_complete()
        self.stream.encode_trailers(trailers)

    def _apply_downstream_backpressure(self) -> None:
        upstream = self._upstream
        if upstream is not None and not upstream.response_complete:
            upstream.read_disable(self.stream.connection.above_high_watermark())

    def on_above_write_buffer_high_watermark(self) -> None:
        if self._upstream is not None:
            self._upstream.read_disable(True)

    def on_below_write_buffer_low_watermark(self) -> None:
        if self._upstream is not None:
            self._upstream.read_disable(False)

    def _on_upstream_reset(self, upstream: UpstreamRequest, reason: StreamResetReason) -> None:
        if upstream is not self._upstream or self._done:
            return
        self._upstream = None
        self._record_outcome(upstream, 503)
        if reason is StreamResetReason.PROTOCOL_ERROR:
            code, flag = 502, ResponseFlag.UPSTREAM_PROTOCOL_ERROR
        else:
            code, flag = 503, ResponseFlag.UPSTREAM_CONNECTION_TERMINATION
        if upstream.response_started:
            # Too late for a local reply: the stream is reset instead (as Envoy's
            # sendLocalReply does once the response has started).
            self._abort(code, "", _reset_details(reason, "", True), flag)
            return
        self._stop_per_try_timer()
        status = self._maybe_retry_reset(reason, upstream)
        if status is RetryStatus.YES:
            return
        reused = upstream.client is not None and upstream.client.reused
        if (
            status is RetryStatus.NO
            and reason is StreamResetReason.CONNECTION_TERMINATION
            and reused
            and not self._retried
            and self._request_complete
            and not self._had_body()
        ):
            # The keep-alive connection was most likely closed by the upstream while idle.
            self._retried = True
            self._start_upstream()
            return
        retried = _RETRIED if self._is_retry else ""
        upstream.charge_host(code)
        self._charge_cluster(code)
        self._abort(code, _RESET_BODY.format(retried, _RESET_REASON_TEXT[reason]), _reset_details(reason, "", False), flag)

    def _record_outcome(self, upstream: UpstreamRequest, code: int) -> None:
        """Outlier detection: an attempt that got no response counts as ``code`` (503 failure, 504 timeout)."""
        outlier = self._cluster.outlier
        if outlier is not None:
            outlier.put_http_response_code(upstream.host, code)

    def _had_body(self) -> bool:
        method = self._headers.get(":method") if self._headers is not None else None
        return method not in ("GET", "HEAD", "OPTIONS", "DELETE", "TRACE") or bool(self._body)

    def _on_timeout(self) -> None:
        if self._done:
            return
        upstream = self._upstream
        self._upstream = None
        if upstream is not None and not upstream.response_started:
            # As Envoy: only an upstream request still awaiting its headers
            # counts (none does while a retry waits for its back-off).
            self._cluster.stats.upstream_rq_timeout += 1
            self._record_outcome(upstream, 504)
            self._charge_cluster(self._timeout_code)
            upstream.charge_host(self._timeout_code, timeout=True)
        if upstream is not None:
            upstream.cancel()
        self._abort_on_timeout("response_timeout")

    def _abort_on_timeout(self, details: str) -> None:
        body = "upstream request timeout" if self._timeout_code == 504 else ""
        self._abort(self._timeout_code, body, details, ResponseFlag.UPSTREAM_REQUEST_TIMEOUT)

    def _abort(self, status: int, body: str, details: str, flag: Optional[ResponseFlag] = None) -> None:
        """No response will come from upstream: answer locally (Envoy's ``onUpstreamAbort``)."""
        self._set_retry_state(None)
        self._stop_per_try_timer()
        self.stream.send_local_reply(status, body, details=details, flag=flag)

    def _start_response_timer(self) -> None:
        if self._request_complete and self._request_complete_time is None:
            self._request_complete_time = self.stream.dispatcher.approximate_now
            upstream = self._upstream
            if upstream is not None and upstream.encoder is not None:
                self._start_per_try_timer()
        # The route timeout counts from the end of the request, as in Envoy;
        # the stream's connection keeps the deadline (no timer per request).
        if self._timeout:
            self.stream.set_response_timeout(self._timeout, self._on_timeout)

    def _on_upstream_complete(self) -> None:
        """The upstream response ended (Envoy's ``onUpstreamComplete``): the route timeout is
        over, and ``upstream_rq_time`` records the time since the request ended, when it did."""
        self._finish_timer()
        if self._request_complete_time is not None and not self.stream.stream_info.health_check:
            elapsed = self.stream.dispatcher.approximate_now - self._request_complete_time
            # Envoy's isEnvoyInternalRequest: the request (as forwarded) says x-envoy-internal: true.
            internal = self._headers._get("x-envoy-internal") == "true"
            self._cluster.stats.charge_response_timing(elapsed, internal)

    def _charge_cluster(self, code: int, stats: Any = None) -> None:
        """Count the response ``code`` the router made in the cluster's stats (Envoy's
        ``chargeUpstreamCode``), except for a health check, which Envoy leaves out."""
        if not self.stream.stream_info.health_check:
            (stats if stats is not None else self._cluster.stats).charge_response(code)

    def _finish_timer(self) -> None:
        if self._timeout:
            self.stream.clear_response_timeout()

    def _release(self) -> Optional[UpstreamRequest]:
        """Drop the retry state, the per-try timer and the upstream exchange; returns the latter."""
        self._set_retry_state(None)
        if self._per_try_timer is not None:
            self._per_try_timer.close()
            self._per_try_timer = None
        upstream = self._upstream
        self._upstream = None
        return upstream

    def on_stream_reset(self) -> None:
        """The downstream went away or timed out: drop the upstream exchange and any pending retry."""
        upstream = self._release()
        if upstream is not None:
            upstream.cancel()

    def on_destroy(self) -> None:
        self._done = True
        if self._timeout:
            self.stream.clear_response_timeout()
        upstream = self._release()
        if upstream is not None:
            upstream.cancel()
