"""The per-worker HTTP/1.1 upstream connection pool (Envoy's ``source/common/http/http1/conn_pool.cc``).

One pool per (worker, host).  A pool keeps its clients in three states,
as Envoy's ``ConnPoolImplBase`` does: *connecting*, *ready* (idle,
keep-alive) and *busy* (one request, HTTP/1.1 does not pipeline upstream).
A request (``new_stream``) gets a ready client at once, or waits in the
pending queue while a client connects; it fails with a
:class:`PoolFailureReason` when the connect fails or times out, or at once
when the cluster's circuit breakers say no (``max_pending_requests``,
``max_requests``).  ``max_connections`` bounds new connections, except that
a pool with none may always open one (as Envoy: its pending requests would
otherwise wait for nothing).  The breakers count the cluster as a whole,
over every worker and host (``cluster_info.resource_manager``).

A :class:`CodecClient` is one upstream connection with its HTTP/1.1 client
codec.  After a response it goes back to *ready*, unless the codec says the
connection must close (``Connection: close``, HTTP/1.0, a body that did not
end cleanly, any response to an upgrade request).  A ready client whose
upstream closes is simply removed.  A client carrying an upgrade tunnel stays
*busy* until it closes.
"""

from __future__ import annotations

import abc
import collections
import enum
import logging
from typing import Any, Optional, Protocol

from pyevent_envoy import _conn_pool
from pyevent_envoy._buffer import Buffer
from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.http.codec import ClientConnectionImpl as Http1ClientCodec
from pyevent_envoy.http.codec import CodecProtocolError, CodecUsageError, RequestEncoder, ResponseDecoder
from pyevent_envoy.http.codec.http1 import RequestEncoderImpl
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.network.connection import ConnectionCallbacks, ConnectionCloseType, ConnectionEvent
from pyevent_envoy.network.connection_impl import ClientConnectionImpl
from pyevent_envoy.network.ssl_socket import client_connection
from pyevent_envoy.network.filter import FilterStatus, ReadFilter
from pyevent_envoy.stats import ClusterTrafficStats

__all__ = ["CodecClient", "Http1ConnPool", "PoolCallbacks", "PoolFailureReason", "StreamResetReason"]

_log = logging.getLogger("pyevent_envoy.http")

# Enum members the request path tests or returns, as module constants: on
# CPython 3.11 every ``Enum.MEMBER`` lookup goes through EnumType.__getattr__'s
# slow attribute hook (about 70 ns each, several per request).
_STOP_ITERATION = FilterStatus.STOP_ITERATION


class PoolFailureReason(enum.Enum):
    """Why a pool could not give a stream a connection (Envoy's ``ConnectionPool::PoolFailureReason``)."""

    OVERFLOW = "overflow"  # circuit breaker: 503 with UO
    LOCAL_CONNECTION_FAILURE = "local_connection_failure"
    REMOTE_CONNECTION_FAILURE = "remote_connection_failure"  # 503 with UF
    TIMEOUT = "timeout"  # connect timeout: 503 with UF


class StreamResetReason(enum.Enum):
    """Why an upstream stream ended early (Envoy's ``Http::StreamResetReason``)."""

    CONNECTION_TERMINATION = "connection_termination"  # 503 UC before headers
    PROTOCOL_ERROR = "protocol_error"  # 502 UPE
    LOCAL_RESET = "local_reset"


class PoolCallbacks(Protocol):
    def on_pool_ready(self, encoder: RequestEncoder, client: "CodecClient") -> None:
        """A connection is ready; encode the request on ``encoder``."""

    def on_pool_failure(self, reason: PoolFailureReason, transport_failure_reason: str) -> None:
        """No connection: answer locally (503).

        ``transport_failure_reason`` is the failed connection's
        ``failure_reason`` (Envoy's words: ``delayed connect error:
        Connection refused``), empty for an overflow or a connect timeout.
        """


class UpstreamStreamCallbacks(Protocol):
    """What the owner of an upstream stream (the router) hears besides the response."""

    def on_upstream_reset(self, reason: StreamResetReason) -> None: ...

    def on_upstream_above_write_buffer_high_watermark(self) -> None: ...

    def on_upstream_below_write_buffer_low_watermark(self) -> None: ...


class _Pending:
    __slots__ = ("decoder", "callbacks", "cancelled")

    def __init__(self, decoder: Any, callbacks: Any) -> None:
        self.decoder = decoder
        self.callbacks = callbacks
        self.cancelled = False

    def cancel(self) -> None:
        """Give up waiting for a connection (the downstream went away)."""
        self.cancelled = True


class CodecClient(ReadFilter, ConnectionCallbacks):
    """One upstream connection plus its HTTP/1.1 client codec (Envoy's ``CodecClient``)."""

    __slots__ = (
        "_pool",
        "connection",
        "codec",
        "_connect_timer",
        "_stream_decoder",
        "_stream_owner",
        "response_started",
        "requests",
        "connected",
        "closed",
        "created_at",
    )

    def __init__(self, pool: "Http1ConnPool") -> None:
        self._pool = pool
        #: When the connect began (the approximate monotonic clock): upstream_cx_connect_ms and _length_ms count from it.
        self.created_at = pool.dispatcher.approximate_now
        info = pool.cluster_info
        ssl_context = getattr(info, "ssl_context", None)
        if ssl_context is None:
            self.connection = ClientConnectionImpl(pool.dispatcher, pool.host.address)
        else:
            ssl_stats = pool.stats.ssl if pool.stats is not None else None
            self.connection = client_connection(pool.dispatcher, pool.host.address, ssl_context, ssl_stats, info.tls_sni)
        self.connection.set_buffer_limits(pool.cluster_info.per_connection_buffer_limit_bytes)
        if pool.stats is not None:  # None for a health check's client: it counts in no traffic stats
            self.connection.set_connection_stats(pool.stats.connection_stats)
        self.codec = Http1ClientCodec(self, self.connection.write)
        self._stream_decoder: Any = None
        self._stream_owner: Any = None
        self.response_started = False
        self.requests = 0
        self.connected = False
        self.closed = False
        self.connection.add_read_filter(self)
        self.connection.add_connection_callbacks(self)
        self._connect_timer = pool.dispatcher.create_timer(self._on_connect_timeout)
        self._connect_timer.enable_timer(pool.cluster_info.connect_timeout)
        self.connection.connect()

    @property
    def reused(self) -> bool:
        """True when this client carried a request before the current one."""
        return self.requests > 1

    # start_stream(decoder, owner) -> RequestEncoder is C (see
    # _conn_pool.bind at the end of this module), as are on_data,
    # decode_headers, decode_data and _on_response_complete: the request
    # starts on the codec, whose decoder is this client, and the response
    # goes to the stream's decoder, then the pool hears whether the
    # connection can be reused.

    def detach_stream(self) -> None:
        """The owner abandons the stream (downstream reset): the connection cannot be reused."""
        if self._stream_owner is not None:
            self._stream_owner = None
            self._stream_decoder = None
            self.close()

    def close_after_flush(self) -> None:
        """The owner is done with a tunnel: the bytes it wrote go out, then the connection closes.

        Like :meth:`detach_stream`, the connection is never reused; the pool
        forgets it when the close completes.
        """
        self._stream_owner = None
        self._stream_decoder = None
        self.connection.close(ConnectionCloseType.FLUSH_WRITE)

    def close(self) -> None:
        self.connection.close(ConnectionCloseType.NO_FLUSH)

    # ResponseDecoder: the client hands the response to the current stream's
    # decoder (none once the stream ended or was abandoned) and notes where
    # the response ends.

    def decode_1xx_headers(self, headers: HeaderMap) -> None:
        method = getattr(self._stream_decoder, "decode_1xx_headers", None)
        if method is not None:
            method(headers)

    def decode_trailers(self, trailers: HeaderMap) -> None:
        decoder = self._stream_decoder
        if decoder is not None:
            decoder.decode_trailers(trailers)
        self._on_response_complete()

    # ReadFilter

    def _on_data_error(self, error: Exception) -> None:
        """on_data()'s handler: a bug on the response path costs this upstream
        connection (its stream is reset: 503 or a truncated response), not the worker."""
        _log.error("closing upstream connection to %s after an internal error", self._pool.host.address, exc_info=error)
        self.close()

    # codec ConnectionCallbacks

    def on_protocol_error(self, error: CodecProtocolError) -> None:
        reason = (
            StreamResetReason.CONNECTION_TERMINATION if error.status == 503 else StreamResetReason.PROTOCOL_ERROR
        )
        self._reset_stream(reason)
        self.close()

    # network ConnectionCallbacks

    def on_event(self, event: ConnectionEvent) -> None:
        if event is ConnectionEvent.CONNECTED:
            self.connected = True
            self._connect_timer.disable_timer()
            pool = self._pool
            if pool.stats is not None:
                pool.stats.upstream_cx_connect_ms.record_duration(pool.dispatcher.approximate_now - self.created_at)
            self._pool._on_client_connected(self)
            return
        if self.closed:
            return
        self.closed = True
        self._connect_timer.close()
        if not self.connected:
            self._pool._on_connect_failure(self, self.connection.failure_reason)
        else:
            if self._stream_owner is not None and event is ConnectionEvent.REMOTE_CLOSE:
                # As Envoy: the upstream's close is the end of its input even
                # when no EOF was read (a reset): it ends a close-delimited
                # response, or tells a cut-short one (a protocol error) from
                # one that never started (a connection termination).
                try:
                    self.codec.dispatch_eof()
                except CodecUsageError:
                    pass  # closed from inside a codec callback: the reset below says it
            if self._stream_owner is not None:
                self._reset_stream(StreamResetReason.CONNECTION_TERMINATION)
            self._pool._on_client_closed(self)
        self._pool.dispatcher.deferred_delete(self.connection)

    def on_above_write_buffer_high_watermark(self) -> None:
        owner = self._stream_owner
        if owner is not None:
            owner.on_upstream_above_write_buffer_high_watermark()

    def on_below_write_buffer_low_watermark(self) -> None:
        owner = self._stream_owner
        if owner is not None:
            owner.on_upstream_below_write_buffer_low_watermark()

    # internals

    def _on_connect_timeout(self) -> None:
        if not self.connected and not self.closed:
            self.closed = True
            self._pool._on_connect_failure(self, "", timeout=True)
            self.connection.close(ConnectionCloseType.NO_FLUSH)
            self._connect_timer.close()
            self._pool.dispatcher.deferred_delete(self.connection)

    def _reset_stream(self, reason: StreamResetReason) -> None:
        owner = self._stream_owner
        self._stream_owner = None
        self._stream_decoder = None
        if owner is not None:
            owner.on_upstream_reset(reason)
            self._pool._on_stream_done(self, reusable=False)


class Http1ConnPool:
    """The HTTP/1.1 pool of one host on one worker.

    Args:
        dispatcher: the worker's dispatcher; every method runs on its thread.
        host: the upstream host (``host.address``).
        cluster_info: connect timeout, buffer limits and the circuit
            breakers' shared counters (``resource_manager``).
        host_stats: this worker's counters for the host (``rq_active`` feeds
            LEAST_REQUEST), or None.
        cluster_stats: this worker's ``cluster.<name>.`` traffic stats
            (:class:`~pyevent_envoy.stats.ClusterTrafficStats`, shared by the
            worker's pools of the cluster); a private one when None.
    """

    __slots__ = (
        "dispatcher",
        "host",
        "cluster_info",
        "host_stats",
        "_ready",
        "_busy",
        "_connecting",
        "_pending",
        "_draining",
        "_closed",
        "_connections",
        "_pending_requests",
        "_requests",
        "_connection_pools",
        "stats",
        "__weakref__",
    )

    def __init__(
        self, dispatcher: Dispatcher, host: Any, cluster_info: Any, host_stats: Any = None, cluster_stats: Any = None
    ) -> None:
        self.dispatcher = dispatcher
        self.host = host
        self.cluster_info = cluster_info
        self.host_stats = host_stats
        self._ready: list[CodecClient] = []
        self._busy: set[CodecClient] = set()
        self._connecting: set[CodecClient] = set()
        self._pending: collections.deque[_Pending] = collections.deque()
        self._draining = False
        self._closed = False
        resources = cluster_info.resource_manager
        self._connections = resources.connections
        self._pending_requests = resources.pending_requests
        self._requests = resources.requests
        self._connection_pools = resources.connection_pools
        self._connection_pools.inc()
        self.stats = cluster_stats if cluster_stats is not None else ClusterTrafficStats()

    def __repr__(self) -> str:
        return (
            f"<Http1ConnPool {self.host.address} ready={len(self._ready)} busy={len(self._busy)} "
            f"connecting={len(self._connecting)} pending={len(self._pending)}>"
        )

    def _num_clients(self) -> int:
        return len(self._ready) + len(self._busy) + len(self._connecting)

    # new_stream(decoder, callbacks) is C (see _conn_pool.bind at the end of
    # this module): callbacks.on_pool_ready(encoder, client) runs now when a
    # connection is idle, else later; callbacks.on_pool_failure(reason,
    # transport_failure_reason) when none can be had.  It returns a handle
    # whose cancel() gives up waiting, or None when the callback already ran.
    # It takes an idle connection itself and leaves the rest to this method.

    def _new_stream_general(self, decoder: ResponseDecoder, callbacks: Any) -> Optional[_Pending]:
        """new_stream() for what its C method leaves: no idle connection, or no room under max_requests."""
        while self._ready:
            client = self._ready.pop()
            if client.closed:
                continue
            if not self._attach(client, decoder, callbacks):
                self._ready.append(client)  # still idle: the request overflowed
            return None
        pending_requests = self._pending_requests
        if pending_requests.count >= pending_requests.max:
            self.stats.upstream_rq_pending_overflow += 1
            callbacks.on_pool_failure(PoolFailureReason.OVERFLOW, "")
            return None
        if self._pending and self._pending[0].cancelled:
            self._drop_cancelled()
        pending = _Pending(decoder, callbacks)
        self._pending.append(pending)
        pending_requests.inc()
        self.stats.upstream_rq_pending_total += 1
        self.stats.upstream_rq_pending_active += 1
        if self.host_stats is not None:
            self.host_stats.rq_pending_active += 1
        if len(self._connecting) < len(self._pending):
            can_create = self._connections.can_create()
            if not can_create:
                self.stats.upstream_cx_overflow += 1  # counted even when the rule below opens one
            if can_create or not self._num_clients():
                self._new_client()
        return pending

    def _new_client(self) -> None:
        self._connections.inc()
        self.stats.upstream_cx_total += 1
        self.stats.upstream_cx_active += 1
        if self.host_stats is not None:
            self.host_stats.cx_total += 1
            self.host_stats.cx_active += 1
        self._connecting.add(CodecClient(self))

    def _attach(self, client: CodecClient, decoder: Any, callbacks: Any) -> bool:
        """Start the request on ``client``; False (and the request failed) when the
        cluster's ``max_requests`` is reached, which Envoy checks here, once a
        connection is at hand (``upstream_rq_active_overflow``)."""
        requests = self._requests
        if requests.count >= requests.max:
            self.stats.upstream_rq_active_overflow += 1
            callbacks.on_pool_failure(PoolFailureReason.OVERFLOW, "")
            return False
        self._busy.add(client)
        requests.inc()
        self.stats.upstream_rq_total += 1
        self.stats.upstream_rq_active += 1
        if self.host_stats is not None:
            self.host_stats.rq_active += 1
            self.host_stats.rq_total += 1
        encoder = client.start_stream(decoder, callbacks)
        callbacks.on_pool_ready(encoder, client)
        return True

    def _next_pending(self) -> Optional[_Pending]:
        while self._pending:
            pending = self._pending.popleft()
            self._pending_requests.dec()
            self.stats.upstream_rq_pending_active -= 1
            if self.host_stats is not None:
                self.host_stats.rq_pending_active -= 1
            if not pending.cancelled:
                return pending
        return None

    def _drop_cancelled(self) -> None:
        live = collections.deque(p for p in self._pending if not p.cancelled)
        dropped = len(self._pending) - len(live)
        if dropped:
            self._pending = live
            for _ in range(dropped):
                self._pending_requests.dec()
            self.stats.upstream_rq_pending_active -= dropped
            if self.host_stats is not None:
                self.host_stats.rq_pending_active -= dropped

    def _on_client_connected(self, client: CodecClient) -> None:
        self._connecting.discard(client)
        self._on_client_idle(client)

    def _on_client_idle(self, client: CodecClient) -> None:
        while (pending := self._next_pending()) is not None:
            if self._attach(client, pending.decoder, pending.callbacks):
                return
            if client.closed:
                return
        if self._draining:
            client.close()
        else:
            self._ready.append(client)

    def _release_busy(self, client: CodecClient) -> None:
        if client in self._busy:
            self._busy.discard(client)
            self._requests.dec()
            self.stats.upstream_rq_active -= 1
            if self.host_stats is not None:
                self.host_stats.rq_active -= 1

    # _on_stream_done(client, reusable) is C (see _conn_pool.bind at the end
    # of this module): _release_busy, then _on_client_idle for a reusable
    # connection (its common case inline: nothing pending, not draining),
    # or close() for one that is not.

    def _on_client_closed(self, client: CodecClient) -> None:
        self._forget(client)
        # A busy client that closed may leave pending requests without a connection.
        if self._pending and len(self._connecting) < len(self._pending) and not self._draining:
            self._new_client()

    def _on_connect_failure(self, client: CodecClient, transport_failure_reason: str, timeout: bool = False) -> None:
        self._forget(client)
        # As Envoy: a connect timeout counts as a connect failure too.
        stats = self.stats
        stats.upstream_cx_connect_fail += 1
        if self.host_stats is not None:
            self.host_stats.cx_connect_fail += 1
        if timeout:
            stats.upstream_cx_connect_timeout += 1
        reason = PoolFailureReason.TIMEOUT if timeout else PoolFailureReason.REMOTE_CONNECTION_FAILURE
        # As Envoy: fail the pending requests that the connections still
        # connecting cannot serve (this one was made for at least one of them).
        # Requests whose downstream went away do not count.
        self._drop_cancelled()
        while self._pending and len(self._pending) > len(self._connecting):
            pending = self._next_pending()
            if pending is not None:
                stats.upstream_rq_pending_failure_eject += 1
                pending.callbacks.on_pool_failure(reason, transport_failure_reason)

    def _forget(self, client: CodecClient) -> None:
        self._connecting.discard(client)
        self._release_busy(client)
        try:
            self._ready.remove(client)
        except ValueError:
            pass  # it was connecting or busy, not idle
        self._connections.dec()
        stats = self.stats
        stats.upstream_cx_active -= 1
        stats.upstream_cx_destroy += 1
        # Connect failures and timeouts included, as in Envoy.
        stats.upstream_cx_length_ms.record_duration(self.dispatcher.approximate_now - client.created_at)
        if client.requests:
            # Envoy records nothing for a connection that carried no request (a failed connect).
            stats.upstream_rq_per_cx.record(client.requests)
        if self.host_stats is not None:
            self.host_stats.cx_active -= 1

    def drain(self) -> None:
        """Stop reusing connections: idle ones close now, busy ones after their response."""
        self._draining = True
        for client in list(self._ready):
            client.close()

    def close(self) -> None:
        """Close every connection now (worker shutdown); gives back the pool's circuit-breaker places."""
        self._draining = True
        for pending in list(self._pending):
            pending.cancel()
            self._pending_requests.dec()
        self.stats.upstream_rq_pending_active -= len(self._pending)
        self._pending.clear()
        if not self._closed:
            self._closed = True
            self._connection_pools.dec()
        for client in list(self._ready) + list(self._busy) + list(self._connecting):
            client.close()


# The per-request methods, in C (csrc/conn_pool_module.c).  (Imported here,
# not at the top: importing pyevent_envoy.upstream runs its health checker,
# which imports this module's classes above.)
from pyevent_envoy.upstream.host import HostStats  # noqa: E402
from pyevent_envoy.upstream.resource_manager import Resource  # noqa: E402

_conn_pool.bind(
    {
        "Http1ConnPool": Http1ConnPool,
        "CodecClient": CodecClient,
        "Resource": Resource,
        "ClusterTrafficStats": ClusterTrafficStats,
        "HostStats": HostStats,
        "ClientCodec": Http1ClientCodec,
        "RequestEncoder": RequestEncoderImpl,
        "Buffer": Buffer,
    },
    _STOP_ITERATION,
)
for _cls in (Http1ConnPool, CodecClient):
    abc.update_abstractmethods(_cls)  # CodecClient's on_data is ReadFilter's
del _cls
