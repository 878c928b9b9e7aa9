"""``envoy.filters.http.buffer`` (Envoy's ``buffer_filter.cc``): the whole request before the router.

A request with a body is held until its last byte (or its trailers); the
stream keeps the body, at most ``max_request_bytes`` of it.  Past that,
once a frame was held, the client is answered ``413 Payload Too Large``
(``downstream_rq_too_large`` counts it), as Envoy answers; a body that
arrives whole in its one last frame goes on, as in Envoy, whose limit
applies to what is held.  When the request had no Content-Length (chunked)
it gets one with the body's size.  Memory is bounded by the limit.
"""

from __future__ import annotations

from typing import Any, Optional

from pyevent_envoy.http.filter import FilterDataStatus, FilterHeadersStatus, StreamDecoderFilter
from pyevent_envoy.http.header_map import HeaderMap

__all__ = ["BufferFilter", "BufferFilterConfig"]


class BufferFilterConfig:
    """One ``envoy.filters.http.buffer`` entry of ``http_filters`` (immutable, shared by workers)."""

    def __init__(self, model: Any) -> None:
        self.max_request_bytes: int = model.max_request_bytes

    def __call__(self, stream: Any) -> "BufferFilter":
        return BufferFilter(self.max_request_bytes, stream)


class BufferFilter(StreamDecoderFilter):
    """Holds one request's body until it is complete."""

    __slots__ = ("_max_request_bytes", "_stream", "_headers", "_length", "decoder_callbacks")

    def __init__(self, max_request_bytes: int, stream: Any) -> None:
        self._max_request_bytes = max_request_bytes
        self._stream = stream
        self._headers: Optional[HeaderMap] = None
        self._length = 0

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        if end_stream:
            return FilterHeadersStatus.CONTINUE  # nothing to wait for
        self._stream.decoder_buffer_limit = self._max_request_bytes
        self._headers = headers
        return FilterHeadersStatus.STOP_ITERATION

    def decode_data(self, data: bytes, end_stream: bool) -> FilterDataStatus:
        self._length += len(data)
        if end_stream:
            self._add_content_length()
            return FilterDataStatus.CONTINUE
        return FilterDataStatus.STOP_ITERATION_AND_BUFFER

    def decode_trailers(self, trailers: HeaderMap) -> FilterHeadersStatus:
        self._add_content_length()
        return FilterHeadersStatus.CONTINUE

    def _add_content_length(self) -> None:
        headers = self._headers
        if headers is not None and "content-length" not in headers._names:
            headers._set_trusted("content-length", str(self._length))

    def on_destroy(self) -> None:
        self._headers = None
