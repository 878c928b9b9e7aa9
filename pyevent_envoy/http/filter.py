"""HTTP stream filter interfaces (Envoy's ``envoy/http/filter.h``).

A stream's decoder filters see the request in installation order; the last
one is the router, which sends it upstream.  Encoder filters see the
response in reverse order.  A filter returns STOP_ITERATION to hold the
message (the router does, until the upstream answers) and resumes the
chain with ``callbacks.continue_decoding()``.

Request bodies while the chain is held, as in Envoy's filter manager: the
filter that stopped the headers still sees each data frame.  It returns
STOP_ITERATION_AND_BUFFER to have the stream keep the bytes for the
filters after it, up to the stream's decoder buffer limit (beyond it the
stream answers 413); STOP_ITERATION_AND_WATERMARK to have them kept with
flow control instead (beyond the limit the client is no longer read until
the chain resumes); CONTINUE to resume the chain (what was kept goes on
first); STOP_ITERATION_NO_BUFFER to take the bytes itself.  A filter that
let the headers through may only take data (NO_BUFFER) or pass it on.
Trailers follow the same rule.  On resume the filters after the stopping
one get the headers (``end_stream`` false when a body or trailers follow),
then the kept body as one frame, then the trailers.

An encoder filter that changes a response body returns
STOP_ITERATION_NO_BUFFER from ``encode_data`` and hands its own bytes to
the filters after it with
``callbacks.inject_encoded_data_to_filter_chain(data, end_stream)``
(Envoy's ``injectEncodedDataToFilterChain``); from ``encode_trailers`` it
may first add a last frame the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Optional

from pyevent_envoy.http.header_map import HeaderMap

__all__ = [
    "FilterDataStatus",
    "FilterFactoryContext",
    "FilterHeadersStatus",
    "ServerState",
    "StreamDecoderFilter",
    "StreamEncoderFilter",
]


class ServerState:
    """What the HTTP layer reads of the server's state, on any thread (Envoy's ``healthCheckFailed()``).

    ``health_check_failed`` is set on the main thread (admin
    ``/healthcheck/fail``, a drain before exiting) and read by workers; while
    it is set the health check filter fails health checks.  The server
    passes its :class:`~pyevent_envoy.server.drain_manager.DrainManager`,
    which has the same attribute and also closes every connection after its
    response then (Envoy's drain close); this class is the stand-alone
    state for a filter chain run without a server.
    """

    __slots__ = ("health_check_failed",)

    def __init__(self) -> None:
        self.health_check_failed = False


@dataclass
class FilterFactoryContext:
    """What an HTTP filter factory gets when the configuration is loaded (Envoy's ``FactoryContext``).

    Built on the main thread for one connection manager; the factories it
    makes run on the workers, once per stream (``factory(stream) -> filter``).

    Attributes:
        stat_prefix: the connection manager's ``stat_prefix`` (its stats
            are ``http.<stat_prefix>.``).
        route_config: the connection manager's
            :class:`~pyevent_envoy.config.bootstrap.RouteConfiguration`
            (per-route filter configs live there).
        server_state: what says whether the server fails health checks: the
            server's drain manager, or a :class:`ServerState`.
        stats_store: where filters register their stats (``None``: kept,
            shown nowhere).
        local_cluster_name: the bootstrap's ``node.cluster``.
    """

    stat_prefix: str
    route_config: Any = None
    server_state: Any = field(default_factory=ServerState)
    stats_store: Optional[Any] = None
    local_cluster_name: str = ""


class FilterHeadersStatus(enum.Enum):
    CONTINUE = "continue"
    STOP_ITERATION = "stop_iteration"


class FilterDataStatus(enum.Enum):
    CONTINUE = "continue"
    STOP_ITERATION_AND_BUFFER = "stop_iteration_and_buffer"
    STOP_ITERATION_NO_BUFFER = "stop_iteration_no_buffer"
    STOP_ITERATION_AND_WATERMARK = "stop_iteration_and_watermark"


class StreamDecoderFilter:
    """Sees the request.  Override what you need; the defaults pass everything on."""

    def set_decoder_filter_callbacks(self, callbacks: Any) -> None:
        self.decoder_callbacks = callbacks

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        return FilterHeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> FilterDataStatus:
        return FilterDataStatus.CONTINUE

    def decode_trailers(self, trailers: HeaderMap) -> FilterHeadersStatus:
        return FilterHeadersStatus.CONTINUE

    def on_destroy(self) -> None:
        """The stream ended (completed or reset); release what the filter holds."""


class StreamEncoderFilter:
    """Sees the response.  Override what you need; the defaults pass everything on."""

    def set_encoder_filter_callbacks(self, callbacks: Any) -> None:
        self.encoder_callbacks = callbacks

    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        return FilterHeadersStatus.CONTINUE

    def encode_data(self, data: bytes, end_stream: bool) -> FilterDataStatus:
        return FilterDataStatus.CONTINUE

    def encode_trailers(self, trailers: HeaderMap) -> FilterHeadersStatus:
        return FilterHeadersStatus.CONTINUE

    def on_destroy(self) -> None:
        """The stream ended."""
