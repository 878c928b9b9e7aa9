"""The HTTP connection manager (Envoy's ``source/common/http/conn_manager_impl.cc``).

One :class:`ConnectionManagerImpl` per downstream connection: a network read
filter that feeds the HTTP/1.1 server codec, and the codec's owner, which
turns each request into an :class:`ActiveStream`.  A stream runs its decoder
filters in order (the router last) and its encoder filters in reverse, adds
the headers Envoy's connection manager adds (``x-forwarded-for`` with
``use_remote_address``, ``x-forwarded-proto``, ``x-request-id``, ``server``,
``date``), answers locally when asked (404 without a route, 503 without an
upstream, 408 on the stream idle timeout...), and records what the access
log and stats need in its :class:`StreamInfo`.

An upgrade request (``Connection: upgrade``, WebSocket) goes on to the
router only when its route's or the HCM's ``upgrade_configs`` enable its
type (else 403); the router makes the tunnel.

Timeouts, with Envoy's defaults: ``stream_idle_timeout`` (5 min without
activity on a stream), ``request_timeout`` (off), the connection's
``common_http_protocol_options.idle_timeout`` (1 h without a stream), and
the response timeout a filter sets (the router's route ``timeout``).

One timer per connection serves the stream idle, connection idle and
response timeouts.  Envoy keeps one timer per timeout per stream; here a
deadline is a float on the stream or the connection, the timer is armed for
the earliest one only when that is earlier than what it is armed for, and
when it fires it handles what expired and re-arms for what is left.  A
keep-alive connection's requests then cost no timer system work at all (the
timer, armed for a deadline 15 s out, fires about once per 15 s), where a
timer per stream costs an allocation and two libevent heap operations per
timeout per request.
"""

from __future__ import annotations

import abc
import email.utils
import ipaddress
import logging
import math
import time
from typing import Any, Optional

from pyevent_envoy import _conn_manager
from pyevent_envoy._buffer import Buffer
from pyevent_envoy._defaults import defaults_base
from pyevent_envoy._headers import mutate_plain as _mutate_plain
from pyevent_envoy._headers import request_id as _format_request_id
from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.event.dispatcher_impl import DispatcherImpl
from pyevent_envoy.http.codec import STATUS_CODES, CodecProtocolError, Http1Settings, ResponseEncoder, reason_phrase
from pyevent_envoy.http.codec import ServerConnectionImpl as Http1ServerCodec
from pyevent_envoy.http.codec import http1 as _http1_codec
from pyevent_envoy.http.filter import FilterDataStatus, FilterHeadersStatus
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.http.stream_info import ResponseFlag, StreamInfo
from pyevent_envoy.network.connection_impl import ConnectionImpl
from pyevent_envoy.network.connection import ConnectionCallbacks, ConnectionCloseType, ConnectionEvent, ConnectionState
from pyevent_envoy.network.filter import FilterStatus, ReadFilter
from pyevent_envoy.network.utility import get_local_address
from pyevent_envoy.stats import HttpConnManagerStats

__all__ = ["ActiveStream", "ConnectionManagerConfig", "ConnectionManagerImpl"]

_log = logging.getLogger("pyevent_envoy.http")

_NEVER = math.inf

# Enum members the request path tests or returns, as module constants: on
# CPython 3.11 every ``Enum.MEMBER`` lookup goes through EnumType.__getattr__'s
# slow attribute hook (about 70 ns each, several per request).
_HEADERS_STOP = FilterHeadersStatus.STOP_ITERATION
_DATA_CONTINUE = FilterDataStatus.CONTINUE
_STOP_ITERATION = FilterStatus.STOP_ITERATION
_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED
# A response code from its :status text, with the method bound once: CPython
# 3.11 compiles ``NAME.method(...)`` for an imported NAME as an attribute load
# (taking NAME for a module), which cannot specialize on a dict and makes a
# bound method on every call.
_status_code = STATUS_CODES.get
# Whether a filter type is a decoder filter and an encoder filter (it has
# decode_headers, encode_headers), by type: the single-filter chain's two
# hasattr() calls per stream, made once.
_filter_kinds: dict = {}


class _DateCache:
    """The ``date`` header value, formatted at most once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = email.utils.formatdate(now, usegmt=True)
        return self._value


_date = _DateCache()


def _uuid4(rng: Any) -> str:
    """A random (version 4) UUID string, as Envoy generates ``x-request-id``.

    From the worker's PRNG instead of ``uuid.uuid4()``, which costs a
    ``getrandom`` system call per request; formatted in C
    (``pyevent_envoy._headers.request_id``).
    """
    return _format_request_id(rng.getrandbits(128))


class _NeverDrain:
    """The drain decision of a connection manager that no drain reaches (the admin's)."""

    __slots__ = ()
    active = False

    def drain_close(self) -> bool:
        return False


_NO_DRAIN = _NeverDrain()


class ConnectionManagerConfig:
    """What every connection of one HTTP connection manager shares (immutable).

    Built on the main thread from the HCM's config; ``filter_factories`` are
    callables ``factory(stream) -> filter`` run for each stream, the router's
    last.  ``upgrade_configs`` are the HCM's
    :class:`~pyevent_envoy.config.bootstrap.UpgradeConfig`; an upgrade
    request whose type they (or its route) do not enable is answered 403.
    ``internal_address_config`` is the HCM's
    :class:`~pyevent_envoy.config.bootstrap.InternalAddressConfig` (``None``:
    no client address is internal, Envoy 1.40's default).
    ``local_address`` is the host's own address (Envoy's ``LocalInfo``
    address), which ``x-forwarded-for`` gets instead of a loopback client's;
    by default :func:`~pyevent_envoy.network.utility.get_local_address`
    finds it (a system call: a server finds it once and passes it to each).
    ``drain_decision`` is the server's drain manager: ``active`` (an
    attribute: True while draining or health-check failed, the one thing
    read per response otherwise) and ``drain_close()`` (close this
    connection after the response now being sent?), both read from the
    workers; ``None``: never drained.
    """

    __slots__ = (
        "stat_prefix",
        "route_table",
        "filter_factories",
        "server_name",
        "use_remote_address",
        "xff_num_trusted_hops",
        "generate_request_id",
        "request_timeout",
        "stream_idle_timeout",
        "idle_timeout",
        "drain_timeout",
        "delayed_close_timeout",
        "codec_settings",
        "accept_http_10",
        "default_host_for_http_10",
        "access_logs",
        "upgrade_map",
        "internal_networks",
        "local_address",
        "drain_decision",
        "stats",
    )

    def __init__(
        self,
        *,
        stat_prefix: str,
        route_table: Any,
        filter_factories: tuple,
        server_name: str = "envoy",
        use_remote_address: bool = False,
        xff_num_trusted_hops: int = 0,
        generate_request_id: bool = True,
        request_timeout: float = 0.0,
        stream_idle_timeout: float = 300.0,
        idle_timeout: float = 3600.0,
        drain_timeout: float = 5.0,
        delayed_close_timeout: float = 1.0,
        max_request_headers_kb: int = 60,
        accept_http_10: bool = False,
        default_host_for_http_10: str = "",
        access_logs: tuple = (),
        upgrade_configs: tuple = (),
        internal_address_config: Any = None,
        local_address: Optional[str] = None,
        drain_decision: Any = None,
    ) -> None:
        self.stat_prefix = stat_prefix
        self.route_table = route_table
        self.filter_factories = filter_factories
        self.server_name = server_name
        self.use_remote_address = use_remote_address
        self.xff_num_trusted_hops = xff_num_trusted_hops
        self.generate_request_id = generate_request_id
        self.request_timeout = request_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.idle_timeout = idle_timeout
        self.drain_timeout = drain_timeout
        self.delayed_close_timeout = delayed_close_timeout
        self.codec_settings = Http1Settings(
            max_request_headers_kb=max_request_headers_kb, accept_http_10=accept_http_10, auto_resume=True
        )
        self.accept_http_10 = accept_http_10
        self.default_host_for_http_10 = default_host_for_http_10
        self.access_logs = access_logs
        # {lowercase upgrade type: enabled}; routes may override (RouteEntry.upgrade_map).
        self.upgrade_map = {u.upgrade_type.lower(): u.enabled for u in upgrade_configs}
        # A prefix_len beyond the address's bits means all of them, as in Envoy.
        self.internal_networks = tuple(
            ipaddress.ip_network(
                (r.address_prefix, min(r.prefix_len, ipaddress.ip_address(r.address_prefix).max_prefixlen)), strict=False
            )
            for r in (internal_address_config.cidr_ranges if internal_address_config is not None else ())
        )
        self.local_address = local_address if local_address is not None else get_local_address()
        self.drain_decision = drain_decision if drain_decision is not None else _NO_DRAIN
        self.stats = None


# What every stream starts with (set in C at creation: see pyevent_envoy._defaults).
_ActiveStreamFields = defaults_base(
    "pyevent_envoy.http.conn_manager_impl._ActiveStreamFields",
    request_headers=None,
    # Envoy's internal request: its x-envoy-* control headers are trusted (the router reads them).
    internal_request=False,
    route=None,
    request_complete=False,
    response_complete=False,
    _destroyed=False,
    _local_reply_sent=False,
    _reset=False,
    _decoder_index=0,
    # What the decoder chain holds while a filter stopped it (see
    # pyevent_envoy.http.filter): the index of the filter that kept a body or
    # trailers (-1: none), the kept frames and their size.
    _held_at=-1,
    _decoder_buffer=None,
    _decoder_buffered=0,
    #: How many body bytes the stream keeps for a stopped chain (0: the
    #: connection's per_connection_buffer_limit_bytes), as Envoy's
    #: setDecoderBufferLimit: the buffer filter sets its max_request_bytes.
    decoder_buffer_limit=0,
    _decoder_read_disabled=False,
    # Envoy's decoder_filters_streaming_: past the limit, pause the client
    # (True) or answer 413 (False, once a filter buffers).
    _decoder_streaming=True,
    _pending_trailers=None,
    _encoder_filter_index=0,
    # The route's response timeout (see set_response_timeout).
    _response_deadline=_NEVER,
    _response_timeout_cb=None,
    _request_timer=None,
)


class ActiveStream(_ActiveStreamFields):
    """One request/response exchange: the codec's decoder and the filters' callbacks."""

    __slots__ = (
        "_manager",
        "_encoder",
        "dispatcher",
        "connection",
        "config",
        "cluster_manager",
        "stats",
        "_decoder_filters",
        "_encoder_filters",
        "_last_activity",
        "is_upgrade",
        "stream_info",
    )

    def __init__(self, manager: "ConnectionManagerImpl", encoder: ResponseEncoder) -> None:
        self._manager = manager
        self._encoder = encoder
        # What filters read through their callbacks, as attributes (no property calls).
        self.dispatcher: Dispatcher = manager.dispatcher
        self.connection: Any = manager.connection
        self.config: ConnectionManagerConfig = manager.config
        self.cluster_manager: Any = manager.cluster_manager
        # The connection manager's http.<stat_prefix>. stats on this worker (filters count there too).
        self.stats: HttpConnManagerStats = manager.stats
        dispatcher = self.dispatcher
        self.stream_info = StreamInfo(
            dispatcher.approximate_now,
            encoder.protocol,
            manager._remote_address,
            manager._local_address,
            manager._connection_id,
        )
        #: The request asks for an upgrade (``Connection: upgrade``): a tunnel
        #: if it is allowed and the upstream agrees.  The codec knows from the
        #: head, before the stream exists.
        self.is_upgrade: bool = getattr(encoder, "upgrade", False)
        stats = self.stats
        stats.downstream_rq_total += 1
        stats.downstream_rq_http1_total += 1
        stats.downstream_rq_active += 1
        config = manager.config
        factories = config.filter_factories
        # The chains are tuples: made once per stream, only read after.
        if len(factories) == 1:
            # The common chain, the router alone: one filter, its kinds known by its type.
            flt = factories[0](self)
            kinds = _filter_kinds.get(type(flt))
            if kinds is None:
                kinds = _filter_kinds[type(flt)] = (hasattr(flt, "decode_headers"), hasattr(flt, "encode_headers"))
            self._decoder_filters = (flt,) if kinds[0] else ()
            self._encoder_filters = (flt,) if kinds[1] else ()
        else:
            filters = [factory(self) for factory in factories]
            self._decoder_filters = tuple(f for f in filters if hasattr(f, "decode_headers"))
            self._encoder_filters = tuple(f for f in reversed(filters) if hasattr(f, "encode_headers"))
        for f in self._decoder_filters:
            f.set_decoder_filter_callbacks(self)
        for f in self._encoder_filters:
            f.set_encoder_filter_callbacks(self)
        # The stream idle timeout's last activity: each activity only notes the
        # time here; the connection's timer, when it fires, re-arms for what is
        # left (no C call per activity).
        self._last_activity = self.stream_info.start_monotonic
        if config.stream_idle_timeout > 0:
            manager._arm_timer(self._last_activity + config.stream_idle_timeout)
        if config.request_timeout > 0:
            self._request_timer = dispatcher.create_timer(self._on_request_timeout)
            self._request_timer.enable_timer(config.request_timeout)

    # callbacks the filters use (besides the attributes dispatcher,
    # connection, config, cluster_manager and stats)

    def connection_filter_state(self) -> dict:
        """State filters keep for the downstream connection's lifetime (Envoy's connection-lifespan
        ``FilterState``), by a key each filter chooses; made on first use."""
        manager = self._manager
        state = manager.filter_state
        if state is None:
            state = manager.filter_state = {}
        return state

    def random(self) -> int:
        """A random 32-bit number from the worker's generator (Envoy's ``Random::RandomGenerator``)."""
        return self._manager.random()

    def set_response_timeout(self, seconds: float, callback: Any) -> None:
        """Call ``callback()`` once if the stream is still alive ``seconds`` from now.

        Replaces the response timeout set before, if any.  The router uses it
        for the route's ``timeout`` (Envoy's router creates its own timer for
        it; here the connection's one timer keeps the deadline).
        """
        self._response_timeout_cb = callback
        self._response_deadline = deadline = self.dispatcher.approximate_now + seconds
        self._manager._arm_timer(deadline)

    def clear_response_timeout(self) -> None:
        """Cancel the response timeout (the response has ended)."""
        self._response_deadline = _NEVER
        self._response_timeout_cb = None

    def _on_deadlines(self, now: float) -> None:
        """The connection's timer fired: run what expired (at most one timeout)."""
        if self._response_deadline <= now:
            callback = self._response_timeout_cb
            self.clear_response_timeout()
            if callback is not None:
                callback()
            return
        timeout = self._manager.config.stream_idle_timeout
        if timeout > 0 and now - self._last_activity >= timeout:
            self._on_idle_timeout()

    def _next_deadline(self) -> float:
        timeout = self._manager.config.stream_idle_timeout
        if timeout > 0:
            return min(self._last_activity + timeout, self._response_deadline)
        return self._response_deadline

    # RequestDecoder (called by the codec)

    # decode_headers(headers, end_stream) is C (see _conn_manager.bind at the
    # end of this module): the common configuration's request, mutated,
    # routed and given to the filters there.

    def _decode_headers_general(self, headers: HeaderMap, end_stream: bool) -> None:
        """decode_headers() for what its C method leaves: other configurations, Expect, upgrades."""
        manager = self._manager
        config = manager.config
        self.request_headers = headers
        self.stream_info.request_headers = headers
        self._last_activity = self.dispatcher.approximate_now  # the stream idle timer's activity
        if end_stream:
            self._on_request_complete()
        if (headers._get("expect") or "").lower() == "100-continue":
            # Envoy's default (proxy_100_continue off): answer it here, strip it upstream.
            headers.remove("expect")
            self._encoder.encode_100_continue()
        if ":authority" not in headers and config.default_host_for_http_10:
            headers.set(":authority", config.default_host_for_http_10)
        if config.use_remote_address or config.xff_num_trusted_hops:
            self._mutate_request_headers(headers)
        else:
            # The common configuration: the same steps in one C call (see
            # _mutate_request_headers and pyevent_envoy._headers.mutate_plain).
            request_id = _mutate_plain(
                headers, manager._scheme, _INTERNAL_ONLY_HEADERS, manager._rng if config.generate_request_id else None
            )
            self.stream_info.stream_id = request_id or ""
        route_table = config.route_table
        if route_table is not None:
            self.route = route_table.route(headers, manager.random() if route_table.uses_random else 0)
        else:
            self.route = None
        if self.route is not None:
            self.stream_info.route_name = self.route.route_name
        if self.is_upgrade and not self._upgrade_allowed(headers):
            self.send_local_reply(403, "", details="upgrade_failed")
            return
        self._decoder_index = 0
        self._run_decode_headers(end_stream)

    def _upgrade_allowed(self, headers: HeaderMap) -> bool:
        """Whether this upgrade request may go on (Envoy's ``createUpgradeFilterChain``).

        The route's ``upgrade_configs`` decide for the types they name; the
        connection manager's decide the rest; a type neither names is
        refused.  A request that matched no route is let through: the router
        answers it 404, as Envoy does.
        """
        route = self.route
        if route is None:
            return self._manager.config.route_table is not None
        upgrade_type = (headers.get("upgrade") or "").lower()
        route_map = route.upgrade_map
        if route_map is not None:
            enabled = route_map.get(upgrade_type)
            if enabled is not None:
                return enabled
        return self._manager.config.upgrade_map.get(upgrade_type, False)

    def _run_decode_headers(self, end_stream: bool) -> None:
        filters = self._decoder_filters
        while self._decoder_index < len(filters):
            flt = filters[self._decoder_index]
            self._decoder_index += 1
            if flt.decode_headers(self.request_headers, end_stream) is _HEADERS_STOP:
                return
            if self._destroyed or self._local_reply_sent:
                return

    def continue_decoding(self) -> None:
        """Resume the decoder filter chain after a filter stopped it (Envoy's ``continueDecoding``).

        The filters after the one holding the chain get what it held: the
        headers (when it stopped them), then the kept body as one frame,
        then the trailers.
        """
        if self._destroyed or self._local_reply_sent:
            return
        holder = self._held_at if self._held_at >= 0 else self._decoder_index - 1
        body, trailers = self._decoder_buffer, self._pending_trailers
        self._held_at = -1
        self._decoder_buffer = None
        self._decoder_buffered = 0
        self._pending_trailers = None
        if self._decoder_read_disabled:
            self._decoder_read_disabled = False
            self.connection.read_disable(False)
        if holder == self._decoder_index - 1 and self._decoder_index < len(self._decoder_filters):
            self._run_decode_headers(self.request_complete and body is None and trailers is None)
            if self._destroyed or self._local_reply_sent:
                return
        if body is not None:
            self._decode_data_from(holder + 1, b"".join(body), self.request_complete and trailers is None)
            if self._destroyed or self._local_reply_sent:
                return
        if trailers is not None:
            self._decode_trailers_from(holder + 1, trailers)

    def _holder(self) -> int:
        """The index of the filter holding the decoder chain, or the chain's length when none does."""
        if self._held_at >= 0:
            return self._held_at
        filters = len(self._decoder_filters)
        return self._decoder_index - 1 if self._decoder_index < filters else filters

    def decode_data(self, data: bytes, end_stream: bool) -> None:
        self.stream_info.bytes_received += len(data)
        self._last_activity = self.dispatcher.approximate_now  # the stream idle timer's activity
        if end_stream:
            self._on_request_complete()
        if self._local_reply_sent or self._destroyed:
            return
        if end_stream and data and (self._held_at >= 0 or self._decoder_index < len(self._decoder_filters)):
            # Envoy's HTTP/1 codec ends every body with an empty frame of its
            # own; a held chain sees that too (the buffer filter's limit
            # applies to the body's last bytes as to the others).
            self._decode_data_from(0, data, False)
            if self._local_reply_sent or self._destroyed:
                return
            data = b""
        self._decode_data_from(0, data, end_stream)

    def _decode_data_from(self, start: int, data: bytes, end_stream: bool) -> None:
        filters = self._decoder_filters
        count = len(filters)
        # _holder(), inlined: this runs for every request body frame.
        holder = self._held_at
        if holder < 0:
            holder = self._decoder_index - 1 if self._decoder_index < count else count
        # Up to the holder, which sees the frame too; without one, up to the router.
        end = holder + 1 if holder < count else self._decoder_index
        for index in range(start, end):
            status = filters[index].decode_data(data, end_stream)
            if self._destroyed or self._local_reply_sent:
                return
            if status is FilterDataStatus.CONTINUE:
                continue
            if status is not FilterDataStatus.STOP_ITERATION_NO_BUFFER:
                self._decoder_streaming = status is FilterDataStatus.STOP_ITERATION_AND_WATERMARK
                self._keep_request_data(index, data)
            return
        if holder < count and end > start:
            # The holder let the frame through: it goes on with what was kept (Envoy's commonContinue).
            self._keep_request_data(holder, data)
            if not self._destroyed and not self._local_reply_sent:
                self.continue_decoding()

    def _keep_request_data(self, holder: int, data: bytes) -> None:
        """Keep a body frame for the filters after ``holder``, within the decoder buffer limit.

        Past the limit, once a filter buffered (STOP_ITERATION_AND_BUFFER)
        the stream is answered 413 (Envoy's requestDataTooLarge); else the
        client's reads pause until the chain resumes.
        """
        if self._decoder_buffer is None:
            self._decoder_buffer = []
        self._decoder_buffer.append(data)
        self._decoder_buffered += len(data)
        self._held_at = holder
        limit = self.decoder_buffer_limit or self.connection.buffer_limit
        if limit and self._decoder_buffered > limit:
            if not self._decoder_streaming:
                self.stats.downstream_rq_too_large += 1
                self._decoder_buffer = None
                self._decoder_buffered = 0
                self.send_local_reply(413, reason_phrase(413), details="request_payload_too_large")
            elif not self._decoder_read_disabled:
                self._decoder_read_disabled = True
                self.connection.read_disable(True)

    def decode_trailers(self, trailers: HeaderMap) -> None:
        self._on_request_complete()
        if self._local_reply_sent or self._destroyed:
            return
        self._decode_trailers_from(0, trailers)

    def _decode_trailers_from(self, start: int, trailers: HeaderMap) -> None:
        filters = self._decoder_filters
        holder = self._holder()
        end = holder + 1 if holder < len(filters) else self._decoder_index
        for index in range(start, end):
            method = getattr(filters[index], "decode_trailers", None)
            if method is not None and method(trailers) is FilterHeadersStatus.STOP_ITERATION:
                if holder < len(filters) and not self._destroyed:
                    self._pending_trailers = trailers
                    self._held_at = max(self._held_at, index)
                return
            if self._destroyed or self._local_reply_sent:
                return
        if holder < len(filters) and end > start:
            self._pending_trailers = trailers
            self._held_at = holder
            self.continue_decoding()

    def _on_request_complete(self) -> None:
        self.request_complete = True
        if self._request_timer is not None:
            self._request_timer.close()
            self._request_timer = None
        if self.response_complete:
            self._manager._on_stream_done(self)

    def _mutate_request_headers(self, headers: HeaderMap) -> None:
        """Envoy's ConnectionManagerUtility::mutateRequestHeaders, for the supported options.

        A request is internal when ``use_remote_address`` is set, it came
        without ``x-forwarded-for`` and the client's address is in
        ``internal_address_config`` (so never without one, as in Envoy 1.40):
        it gets ``x-envoy-internal: true`` and its ``x-envoy-*`` control
        headers stay for the router.  Any other request loses them (and a
        client's ``x-envoy-internal``); with ``use_remote_address`` it is an
        edge request, which also gets ``x-envoy-external-address`` and a new
        ``x-request-id``, and loses the ``x-envoy-*`` headers that describe
        the proxy that sent it.
        """
        config = self._manager.config
        remote = self._manager._remote_address
        if "x-envoy-internal" in headers._names:
            headers.remove("x-envoy-internal")
        internal = edge = False
        client_ip = None
        # The values set here are the proxy's own or already-valid ones: no checks.
        if config.use_remote_address:
            existing = headers._get("x-forwarded-for")
            if remote is not None:
                client_ip = remote.ip
                # As Envoy: a loopback client (exactly 127.0.0.1 or ::1) is
                # recorded as this host's own address; the internal and
                # external-address decisions still use the client's.
                hop = config.local_address if client_ip == "127.0.0.1" or client_ip == "::1" else client_ip
                headers._set_trusted("x-forwarded-for", f"{existing},{hop}" if existing else hop)
                internal = existing is None and _is_internal(client_ip, config.internal_networks)
            edge = not internal
            proto = self._manager._scheme  # Envoy: https when the downstream connection is TLS
            headers._set_trusted("x-forwarded-proto", proto)
        else:
            proto = headers._get("x-forwarded-proto")
            if proto is None:
                proto = self._manager._scheme
                headers._set_trusted("x-forwarded-proto", proto)
        if config.xff_num_trusted_hops:
            # The client is the (hops + 1)-th address from the right of x-forwarded-for
            # (after our own append with use_remote_address), as Envoy reads it.
            chain = [a.strip() for a in (headers._get("x-forwarded-for") or "").split(",") if a.strip()]
            hops = config.xff_num_trusted_hops
            if hops < len(chain):
                self.stream_info.downstream_remote_address = _client_address(chain[len(chain) - 1 - hops])
                if config.use_remote_address:
                    client_ip = chain[len(chain) - 1 - hops]
        if internal:
            headers._set_trusted("x-envoy-internal", "true")
            self.internal_request = True
        else:
            internal_only = _EDGE_INTERNAL_ONLY_HEADERS if edge else _INTERNAL_ONLY_HEADERS
            if not internal_only.isdisjoint(headers._names):
                for name in internal_only:
                    headers.remove(name)
        if edge and client_ip is not None:
            headers._set_trusted("x-envoy-external-address", client_ip)
        # Envoy derives :scheme from x-forwarded-proto when it names one (redirects read it).
        proto = proto.lower()
        headers._set_trusted(":scheme", proto if proto == "http" or proto == "https" else "http")
        request_id = headers._get("x-request-id")
        if config.generate_request_id and (request_id is None or edge):
            # An edge request's own id is not trusted either (Envoy's preserve_external_request_id off).
            request_id = _uuid4(self._manager._rng)
            headers._set_trusted("x-request-id", request_id)
        self.stream_info.stream_id = request_id or ""

    # encoding (called by the router or by local replies)

    def encode_1xx_headers(self, headers: HeaderMap) -> None:
        if not self._destroyed:
            self._encoder.encode_1xx_headers(headers)

    def encode_100_continue(self) -> None:
        if not self._destroyed:
            self._encoder.encode_100_continue()

    @property
    def expect_continue(self) -> bool:
        return bool(getattr(self._encoder, "expect_continue", False))

    # encode_headers(headers, end_stream) is C (see _conn_manager.bind at
    # the end of this module): with no encoder filter and nothing draining.

    def _encode_headers_general(self, headers: HeaderMap, end_stream: bool) -> None:
        """encode_headers() for what its C method leaves: encoder filters, draining, early responses."""
        if self._destroyed:
            return
        for flt in self._encoder_filters:
            if flt.encode_headers(headers, end_stream) is _HEADERS_STOP:
                return
        manager = self._manager
        config = manager.config
        # (The proxy's own values, checked once: no per-response checks.)
        headers._set_trusted("date", _date.get())
        if config.server_name:
            headers._set_trusted("server", config.server_name)
        if not manager.draining and config.drain_decision.active and config.drain_decision.drain_close():
            # The server is draining, or failing health checks (Envoy's drain
            # manager says this connection goes).
            manager.stats.downstream_cx_drain_close += 1
            manager.draining = True
        if not self.request_complete:
            manager.stats.downstream_rq_response_before_rq_complete += 1
        if manager.draining or not self.request_complete:
            # Draining, or a response that overtakes its request's body: the
            # codec cannot find the next request after unread bytes.  Except
            # a 101 that switches protocols: its request is a tunnel that
            # ends with the connection anyway, and it keeps Connection: upgrade.
            if not (headers._get(":status") == "101" and "upgrade" in headers):
                headers._set_trusted("connection", "close")
                self._manager._close_after_response = True
        info = self.stream_info
        status = headers._get(":status")
        code = _status_code(status)
        if code is None and status and status.isdigit():
            code = int(status)
        info.response_code = code
        if not info.health_check:  # Envoy's chargeStats leaves health checks out
            self._manager.stats.charge_response(info.response_code)
        self.stream_info.response_headers = headers
        self._last_activity = self.dispatcher.approximate_now  # the stream idle timer's activity
        self._encoder.encode_headers(headers, end_stream)
        if end_stream:
            self._on_response_complete()

    # encode_data(data, end_stream) is C (see _conn_manager.bind at the end
    # of this module): through _encode_data_from when there are encoder
    # filters, else counted, encoded and, at the end, the stream done.

    def _encode_data_from(self, start: int, data: bytes, end_stream: bool) -> None:
        filters = self._encoder_filters
        for index in range(start, len(filters)):
            self._encoder_filter_index = index
            if filters[index].encode_data(data, end_stream) is not _DATA_CONTINUE or self._destroyed:
                return
        self.stream_info.bytes_sent += len(data)
        self._last_activity = self.dispatcher.approximate_now  # the stream idle timer's activity
        self._encoder.encode_data(data, end_stream)
        if end_stream:
            self._on_response_complete()

    def inject_encoded_data_to_filter_chain(self, data: bytes, end_stream: bool) -> None:
        """Hand ``data`` to the encoder filters after the one calling (from its encode_data or encode_trailers).

        Envoy's ``injectEncodedDataToFilterChain``: how a filter that
        changes the response body passes on its own bytes.
        """
        if not self._destroyed:
            self._encode_data_from(self._encoder_filter_index + 1, data, end_stream)

    def encode_trailers(self, trailers: HeaderMap) -> None:
        if self._destroyed:
            return
        filters = self._encoder_filters
        for index in range(len(filters)):
            self._encoder_filter_index = index
            method = getattr(filters[index], "encode_trailers", None)
            if method is not None and method(trailers) is FilterHeadersStatus.STOP_ITERATION or self._destroyed:
                return
        self._encoder.encode_trailers(trailers)
        self._on_response_complete()

    def send_local_reply(
        self,
        status: int,
        body: str,
        *,
        details: str = "",
        flag: Optional[ResponseFlag] = None,
        headers: Optional[HeaderMap] = None,
    ) -> None:
        """Answer from the proxy itself (Envoy's ``sendLocalReply``).

        When the response has already started, the stream is reset instead
        (the downstream connection closes).
        """
        if self._destroyed:
            return
        if flag is not None:
            self.stream_info.set_response_flag(flag)
        self.stream_info.response_code_details = details
        if self._encoder.started_response:
            self.reset_stream()
            return
        self._local_reply_sent = True
        payload = body.encode() if isinstance(body, str) else body
        reply = headers if headers is not None else HeaderMap()
        reply.set(":status", str(status))
        reply.set("content-length", str(len(payload)))  # before content-type, in Envoy's order
        if payload and "content-type" not in reply:
            reply.set("content-type", "text/plain")
        is_head = getattr(self._encoder, "is_head_request", False)
        self.encode_headers(reply, not payload or is_head)
        if payload and not is_head and not self._destroyed:
            self.encode_data(payload, True)

    def reset_stream(self) -> None:
        """Abort the stream: the downstream connection closes (HTTP/1.1 cannot reset one stream).

        What was already encoded is flushed first, so the client sees the
        response it was getting end early, as it does with Envoy.
        """
        if self._destroyed:
            return
        # As Envoy: no flag of its own (whoever resets says why); and the
        # close it causes is not a downstream disconnect for this stream.
        if not self._reset:
            self._reset = True
            self._manager.stats.downstream_rq_rx_reset += 1  # Envoy counts every reset there, its own included
        self._manager._close_after_response = True
        self._manager.connection.close(ConnectionCloseType.FLUSH_WRITE)

    def _on_response_complete(self) -> None:
        self.response_complete = True
        if self.request_complete:
            self._manager._on_stream_done(self)
        else:
            # HTTP/1.1 cannot find the next request after an unread body: close after flushing.
            self._manager._close_after_response = True
            self._manager._on_stream_done(self)

    # timeouts

    def _on_idle_timeout(self) -> None:
        self.stream_info.set_response_flag(ResponseFlag.STREAM_IDLE_TIMEOUT)
        self._manager.stats.downstream_rq_idle_timeout += 1
        self._reset_filters()
        # Envoy's maybeRequestTimeoutCode: 504 when the whole request was
        # received (the wait was for the upstream), else 408.  Once the
        # response has started, send_local_reply resets the stream instead
        # (keeping these details, as Envoy does).
        status = 504 if self.request_complete else 408
        self.send_local_reply(status, "stream timeout", details="stream_idle_timeout")

    def _on_request_timeout(self) -> None:
        self._manager.stats.downstream_rq_timeout += 1
        self._reset_filters()
        self.send_local_reply(408, "request timeout", details="request_overall_timeout")

    def _reset_filters(self) -> None:
        for flt in self._decoder_filters:
            on_reset = getattr(flt, "on_stream_reset", None)
            if on_reset is not None:
                on_reset()

    # teardown

    # destroy() is C (see _conn_manager.bind at the end of this module):
    # the gauges and the request time, access logs, timers, then each
    # filter's on_destroy(), once.


def _client_address(text: str) -> Any:
    """An ``x-forwarded-for`` entry as an address (port 0: the header carries none)."""
    from pyevent_envoy.network.address import Address

    return Address(text.strip("[]"), 0)


def _is_internal(ip: str, networks: tuple) -> bool:
    """Whether the client ``ip`` is in one of the ``internal_address_config`` ranges."""
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


# The x-envoy-* headers only an internal request may carry (Envoy's
# ConnectionManagerUtility::cleanInternalHeaders); an edge request also loses
# those that describe the Envoy it came through.
_INTERNAL_ONLY_HEADERS = frozenset(
    {
        "x-envoy-retriable-status-codes",
        "x-envoy-retriable-header-names",
        "x-envoy-retry-on",
        "x-envoy-retry-grpc-on",
        "x-envoy-max-retries",
        "x-envoy-upstream-alt-stat-name",
        "x-envoy-upstream-rq-timeout-ms",
        "x-envoy-upstream-rq-per-try-timeout-ms",
        "x-envoy-upstream-rq-timeout-alt-response",
        "x-envoy-expected-rq-timeout-ms",
        "x-envoy-force-trace",
        "x-envoy-ip-tags",
        "x-envoy-original-url",
        "x-envoy-hedge-on-per-try-timeout",
    }
)
_EDGE_INTERNAL_ONLY_HEADERS = _INTERNAL_ONLY_HEADERS | {
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
}


class ConnectionManagerImpl(ReadFilter, ConnectionCallbacks):
    """The ``envoy.filters.network.http_connection_manager`` filter of one connection."""

    __slots__ = (
        "config",
        "dispatcher",
        "cluster_manager",
        "connection",
        "codec",
        "streams",
        "draining",
        "_close_after_response",
        "_timer",
        "_timer_deadline",
        "_idle_since",
        "_drain_deadline",
        "_rng",
        "_read_paused",
        "stats",
        "filter_state",
        "_remote_address",
        "_local_address",
        "_connection_id",
        "_scheme",
        "_http1_counted",
        "_head_started",
    )

    def __init__(
        self, config: ConnectionManagerConfig, dispatcher: Dispatcher, cluster_manager: Any, rng: Any, stats: Any = None
    ) -> None:
        # This worker's http.<stat_prefix>. stats (the listener's); a private
        # set when the caller publishes none (the admin, tests).
        self.stats: HttpConnManagerStats = stats if stats is not None else HttpConnManagerStats()
        self.config = config
        self.dispatcher = dispatcher
        self.cluster_manager = cluster_manager
        self.connection: Any = None
        self.codec: Any = None
        self.streams: list[ActiveStream] = []
        self.draining = False
        self._close_after_response = False
        self._timer: Any = None
        self._timer_deadline = _NEVER
        self._idle_since = 0.0
        self._drain_deadline = _NEVER
        self._rng = rng
        self._read_paused = False
        self.filter_state: Optional[dict] = None  # see ActiveStream.connection_filter_state
        # The connection's fixed facts, copied once for every stream's StreamInfo.
        self._remote_address: Any = None
        self._local_address: Any = None
        self._connection_id = 0
        self._scheme = "http"
        # Counted as an HTTP/1 connection: from its first bytes, when Envoy makes its codec.
        self._http1_counted = False
        # When the first byte of a request head that has not ended yet came
        # (None: no head pending).  Envoy's stream begins there, so its
        # timeouts run from then, and the connection is no longer idle.
        self._head_started: Optional[float] = None

    def random(self) -> int:
        return self._rng.getrandbits(32)

    # ReadFilter

    def initialize_read_filter_callbacks(self, callbacks: Any) -> None:
        self.connection = connection = callbacks.connection
        self._remote_address = connection.remote_address
        self._local_address = connection.local_address
        self._connection_id = connection.id
        # Envoy's x-forwarded-proto for this connection: https when it is TLS.
        self._scheme = "https" if connection.is_tls else "http"
        connection.add_connection_callbacks(self)
        # As Envoy's: the downstream connection counts its bytes in http.<stat_prefix>.downstream_cx_*_bytes_*.
        self.connection.set_connection_stats(self.stats.connection_stats)
        self.connection.set_delayed_close_timeout(self.config.delayed_close_timeout)

    def on_new_connection(self) -> FilterStatus:
        # The codec writes to the connection directly (one call less per write).
        self.codec = Http1ServerCodec(self, self.connection.write, self.config.codec_settings)
        self._timer = self.dispatcher.create_timer(self._on_timer)
        self._idle_since = self.dispatcher.approximate_now
        if self.config.idle_timeout > 0:
            self._arm_timer(self._idle_since + self.config.idle_timeout)
        return _STOP_ITERATION

    # the connection's one timer

    def _arm_timer(self, deadline: float) -> None:
        """Make the timer fire no later than ``deadline`` (a monotonic time)."""
        if deadline < self._timer_deadline and self._timer is not None:
            self._timer_deadline = deadline
            now = self.dispatcher.approximate_now
            self._timer.enable_timer(deadline - now if deadline > now else 0.0)

    def _next_deadline(self) -> float:
        if self.streams:
            return min([stream._next_deadline() for stream in self.streams])
        if self._head_started is not None:
            return self._head_deadline()
        if self._drain_deadline < _NEVER:
            return self._drain_deadline
        if self.config.idle_timeout > 0:
            return self._idle_since + self.config.idle_timeout
        return _NEVER

    def _on_timer(self) -> None:
        self._timer_deadline = _NEVER
        now = self.dispatcher.approximate_now
        if self.streams:
            for stream in list(self.streams):
                if not stream._destroyed:
                    stream._on_deadlines(now)
        elif self._head_started is not None:
            if self._head_deadline() <= now:
                self._on_head_timeout(now)
        elif self._drain_deadline <= now:
            self._on_drain_timeout()
        elif self._drain_deadline == _NEVER and self.config.idle_timeout > 0 and now - self._idle_since >= self.config.idle_timeout:
            self._on_connection_idle(now)
        if self.connection.state is ConnectionState.OPEN:
            deadline = self._next_deadline()
            if deadline < _NEVER:
                self._arm_timer(deadline)

    # on_data(data, end_stream) is C (see _conn_manager.bind at the end of
    # this module): the read goes to the codec, reading pauses while the codec
    # holds pipelined bytes, and a head still arriving starts its timeouts.
    # What it leaves to Python follows.

    def _on_end_stream(self) -> None:
        """The client's input ended (on_data's end_stream)."""
        if self.connection.state is not _CLOSED and self.streams and self.streams[-1].is_upgrade:
            # Only a tunnel hears the end of the client's input.  Like Envoy,
            # the connection manager reads no other half-close: the close
            # that follows ends whatever request is still arriving (DC).
            self.codec.dispatch_eof()

    def _on_data_error(self, error: Exception) -> None:
        """on_data()'s handler: a bug in a filter must cost this connection, not the worker."""
        _log.error(
            "closing downstream connection %s after an internal error", self.connection.remote_address, exc_info=error
        )
        for stream in self.streams:
            stream._reset_filters()
        if self.connection.state is not _CLOSED:
            self.connection.close(ConnectionCloseType.NO_FLUSH)

    # codec ServerConnectionCallbacks

    # new_stream(encoder) is C (see _conn_manager.bind at the end of this
    # module): the common stream is made there as ActiveStream.__init__ makes it.

    def _new_stream_general(self, encoder: ResponseEncoder) -> ActiveStream:
        """new_stream() for what its C method leaves: several filters, a request timeout, a head pending."""
        stream = ActiveStream(self, encoder)
        if self._head_started is not None:
            self._begin_at_head(stream)
        self.streams.append(stream)
        return stream

    # a request head still arriving (Envoy's stream already exists then)

    def _on_head_started(self) -> None:
        self._head_started = self.dispatcher.approximate_now
        deadline = self._head_deadline()
        if deadline < _NEVER:
            self._arm_timer(deadline)

    def _head_deadline(self) -> float:
        """When the pending head's stream times out: the stream idle or the request timeout."""
        config = self.config
        start = self._head_started
        deadline = _NEVER
        if config.stream_idle_timeout > 0:
            deadline = start + config.stream_idle_timeout
        if config.request_timeout > 0:
            deadline = min(deadline, start + config.request_timeout)
        return deadline

    def _begin_at_head(self, stream: ActiveStream) -> None:
        """``stream`` is the pending head's: it began with the head's first byte."""
        start = self._head_started
        self._head_started = None
        stream.stream_info.start_monotonic = stream._last_activity = start
        if stream._request_timer is not None:
            # request_timeout counts from the head's first byte too.
            left = start + self.config.request_timeout - self.dispatcher.approximate_now
            stream._request_timer.enable_timer(max(0.0, left))

    def _on_head_timeout(self, now: float) -> None:
        """The head never ended in time: answer 408 as Envoy's stream would, and close."""
        stream = ActiveStream(self, self.codec.partial_head_encoder())
        start = self._head_started
        self._begin_at_head(stream)
        self.streams.append(stream)
        config = self.config
        request_deadline = start + config.request_timeout if config.request_timeout > 0 else _NEVER
        idle_deadline = start + config.stream_idle_timeout if config.stream_idle_timeout > 0 else _NEVER
        if request_deadline <= now and request_deadline <= idle_deadline:
            stream._on_request_timeout()
        else:
            stream._on_idle_timeout()
        # The rest of that head is not read: the connection closes after the answer.
        self.codec.close()

    def on_protocol_error(self, error: CodecProtocolError, encoder: Optional[ResponseEncoder]) -> None:
        if error.codec_error:
            self.stats.downstream_cx_protocol_error += 1
        stream = self.streams[-1] if self.streams else None
        if encoder is not None:
            if stream is None or stream._encoder is not encoder:
                stream = ActiveStream(self, encoder)
                if self._head_started is not None:
                    self._begin_at_head(stream)
                self.streams.append(stream)
            if not stream.request_complete and not stream._encoder.started_response:
                # The reply ends a stream whose request never did: Envoy counts
                # it so and resets the stream (its doEndStream).
                self.stats.downstream_rq_response_before_rq_complete += 1
                self.stats.downstream_rq_rx_reset += 1
            stream.request_complete = True
            if error.codec_error:
                stream.stream_info.set_response_flag(ResponseFlag.DOWNSTREAM_PROTOCOL_ERROR)
            stream._local_reply_sent = False
            status = error.status
            # Envoy's codec answers its errors with the status's reason phrase as the body.
            stream.send_local_reply(status, reason_phrase(status), details=error.details)
        self._close_after_response = True
        if self.connection.state is ConnectionState.OPEN:
            self.connection.close(ConnectionCloseType.FLUSH_WRITE_AND_DELAY)

    # stream lifecycle

    # _on_stream_done(stream) is C (see _conn_manager.bind at the end of this
    # module): destroy, then resume reading, close, or start the idle timeout.

    def _on_connection_idle(self, now: float) -> None:
        # Envoy's onIdleTimeout: start the drain sequence.  An HTTP/1.1 client
        # hears nothing until ``drain_timeout`` later, when the connection
        # closes; a request in between is answered with ``connection: close``.
        self.stats.downstream_cx_idle_timeout += 1  # counted here, as Envoy counts it
        self.draining = True
        self._drain_deadline = now + self.config.drain_timeout

    def _on_drain_timeout(self) -> None:
        self._drain_deadline = _NEVER
        if not self.streams and self.connection.state is ConnectionState.OPEN:
            self.connection.close(ConnectionCloseType.FLUSH_WRITE_AND_DELAY)

    def start_drain(self) -> None:
        """Ask the client to go away: ``connection: close`` on the next response, or close now if idle."""
        self.draining = True
        if not self.streams and self.connection.state is ConnectionState.OPEN:
            self.connection.close(ConnectionCloseType.FLUSH_WRITE_AND_DELAY)

    # network ConnectionCallbacks

    def on_event(self, event: ConnectionEvent) -> None:
        if event is ConnectionEvent.CONNECTED:
            return
        if not self.streams and self.codec is not None and self.codec.partial_head:
            # Envoy's stream starts with the request's first byte: a head cut
            # short is a request too, logged as a downstream disconnect.
            stream = ActiveStream(self, self.codec.partial_head_encoder())
            if self._head_started is not None:
                self._begin_at_head(stream)
            self.streams.append(stream)
        stats = self.stats
        if event is ConnectionEvent.REMOTE_CLOSE:
            stats.downstream_cx_destroy_remote += 1
        else:
            stats.downstream_cx_destroy_local += 1
        if self._http1_counted:
            self._http1_counted = False
            stats.downstream_cx_http1_active -= 1
        details = "downstream_remote_disconnect" if event is ConnectionEvent.REMOTE_CLOSE else "downstream_local_disconnect"
        active = False
        for stream in list(self.streams):
            if not stream.response_complete:
                if not stream._reset:
                    # Reset by the close (a stream that reset itself counted then).
                    active = True
                    stats.downstream_rq_rx_reset += 1
                    stream.stream_info.set_response_flag(ResponseFlag.DOWNSTREAM_CONNECTION_TERMINATION)
                    stream.stream_info.response_code_details = details
                stream._reset_filters()
            stream.destroy()
        if active:
            # As Envoy's: the connection manager closes with streams still
            # active only through this event, which Envoy counts as remote
            # whichever side closed (its onEvent, then doConnectionClose).
            stats.downstream_cx_destroy_active_rq += 1
            stats.downstream_cx_destroy_remote_active_rq += 1
        self.streams.clear()
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        if self.codec is not None:
            self.codec.close()

    def on_above_write_buffer_high_watermark(self) -> None:
        for stream in self.streams:
            for flt in stream._decoder_filters:
                method = getattr(flt, "on_above_write_buffer_high_watermark", None)
                if method is not None:
                    method()

    def on_below_write_buffer_low_watermark(self) -> None:
        for stream in self.streams:
            for flt in stream._decoder_filters:
                method = getattr(flt, "on_below_write_buffer_low_watermark", None)
                if method is not None:
                    method()


# The per-stream bookkeeping, in C (csrc/conn_manager_module.c):
# ConnectionManagerImpl's on_data, new_stream and _on_stream_done,
# ActiveStream's decode_headers, encode_headers, encode_data and destroy.
_conn_manager.bind(
    {
        "ConnectionManagerImpl": ConnectionManagerImpl,
        "ActiveStream": ActiveStream,
        "StreamInfo": StreamInfo,
        "ConnectionManagerConfig": ConnectionManagerConfig,
        "HttpConnManagerStats": HttpConnManagerStats,
        "DispatcherImpl": DispatcherImpl,
        "ConnectionImpl": ConnectionImpl,
        "ServerCodec": Http1ServerCodec,
        "HeaderMap": HeaderMap,
        "DateCache": _DateCache,
        "Buffer": Buffer,
    },
    {
        "filter_kinds": _filter_kinds,
        "time": time.time,
        "OPEN": ConnectionState.OPEN,
        "FLUSH_WRITE_AND_DELAY": ConnectionCloseType.FLUSH_WRITE_AND_DELAY,
        "date": _date,
        "STATUS_CODES": STATUS_CODES,
        "mutate_plain": _mutate_plain,
        "INTERNAL_ONLY_HEADERS": _INTERNAL_ONLY_HEADERS,
        "NO_DRAIN": _NO_DRAIN,
        "HEADERS_STOP": _HEADERS_STOP,
        "STOP_ITERATION": _STOP_ITERATION,
        "CODEC_HEAD": _http1_codec._HEAD,
    },
)
abc.update_abstractmethods(ConnectionManagerImpl)  # on_data is ReadFilter's
