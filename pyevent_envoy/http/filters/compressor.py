"""``envoy.filters.http.compressor`` with the gzip library (Envoy's ``compressor_filter.cc``).

The response is compressed when all of these hold, checked in Envoy's order
(the order decides which stats count):

1. compression is enabled and the response is long enough: its
   Content-Length, when it has one, is at least ``min_content_length``
   (else ``content_length_too_small``); without one it may be;
2. it is *compressible*: not an upgrade, its content type (before any
   ``;``) is one of ``content_type`` (Envoy's list by default; no
   Content-Type passes), no ``Cache-Control: no-transform``, no ETag when
   ``disable_on_etag_header`` (else ``not_compressed_etag``), no
   Content-Encoding yet;
3. it has a body (a HEAD answer, a 204 or a 304 has none);
4. the request's Accept-Encoding chooses gzip (:func:`choose_encoding`;
   without the header, ``no_accept_header``); only asked when 1 holds;
5. its Transfer-Encoding names no compression.

Then the strong ETag is dropped (a weak one stays), Content-Length goes
(the body is sent chunked), ``Content-Encoding: gzip`` is set, and each data
frame is compressed as it passes: flushed (``Z_SYNC_FLUSH``) so the client
can decode what it got, finished (``Z_FINISH``) with the last frame or
before the trailers.  A compressible response gets ``Vary:
Accept-Encoding`` even when not compressed.  Memory stays constant: the
compressor holds only zlib's window, whatever the body's size.

Stats go under ``http.<stat_prefix>.compressor.<library name>.gzip.``, the
direction counters under ``response.`` when ``response_direction_config``
is given, ``request.`` for requests (which are never compressed here, so
each counts ``request.not_compressed``).
"""

from __future__ import annotations

import enum
import re
import struct
import zlib
from typing import Any, Iterator, Optional

from pyevent_envoy.http.filter import (
    FilterDataStatus,
    FilterHeadersStatus,
    StreamDecoderFilter,
    StreamEncoderFilter,
)
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.stats import PerThreadScopes, StatsScope

__all__ = ["CompressorFilter", "CompressorFilterConfig", "CompressorStats", "EncodingDecision", "choose_encoding"]

#: Envoy 1.40's default ``content_type`` list.
DEFAULT_CONTENT_TYPES = (
    "text/html",
    "text/plain",
    "text/css",
    "application/javascript",
    "application/x-javascript",
    "text/javascript",
    "text/x-javascript",
    "text/ecmascript",
    "text/js",
    "text/jscript",
    "text/x-js",
    "application/ecmascript",
    "application/x-json",
    "application/xml",
    "application/json",
    "image/svg+xml",
    "text/xml",
    "application/xhtml+xml",
    "application/grpc-web",
    "application/grpc-web+proto",
)

#: Transfer codings that mean the body is already compressed (Envoy's list, plus the library's own).
_COMPRESSING_TRANSFER_CODINGS = frozenset({"gzip", "br", "deflate", "compress", "zstd"})

# What absl::SimpleAtof accepts (after trimming): a decimal or exponent
# form, or inf/infinity/nan; Python's float() also takes "1_0", which it does not.
_FLOAT_RE = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE)
_HTTP_WHITESPACE = " \t"


class EncodingDecision(enum.Enum):
    """Which ``header_*`` stat an Accept-Encoding decision counts (Envoy's ``HeaderStat``)."""

    NOT_VALID = "header_not_valid"
    IDENTITY = "header_identity"
    WILDCARD = "header_wildcard"
    VALID_COMPRESSOR = "header_compressor_used"


def _float32(text: str) -> Optional[float]:
    """``text`` as absl::SimpleAtof reads it into a C ``float``, or None when it is not a number."""
    text = text.strip()
    if not _FLOAT_RE.fullmatch(text):
        return None
    value = float(text)
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def choose_encoding(accept_encoding: str, content_type: Optional[str], compressors: tuple) -> tuple[str, EncodingDecision]:
    """The content coding Envoy's compressor filters choose for a response (Envoy's ``chooseEncoding``).

    Args:
        accept_encoding: the request's Accept-Encoding value.
        content_type: the response's Content-Type value, or None.
        compressors: the chain's compressor configs, in filter order; each
            has ``encoding`` (``"gzip"``), ``content_types`` (a frozenset
            of lowercase types, empty for any) and ``choose_first``.

    Returns:
        ``(encoding, decision)``: the coding (``"identity"`` for none) and
        the stat the decision counts.  As in Envoy: the tokens are split on
        ``,`` (empty ones skipped), a ``q`` parameter that is not a number
        drops its token, ``q=0`` forbids a coding, names are compared
        case-sensitively, the highest ``q`` wins (an equal one only for a
        ``choose_first`` compressor), and ``*`` picks the compressor
        registered first.
    """
    media_type = content_type.split(";", 1)[0].strip(_HTTP_WHITESPACE).lower() if content_type is not None else ""
    # encoding -> [registration order, choose_first]; Envoy's std::map (ordered by name).
    allowed: dict[str, list] = {}
    for config in compressors:
        if media_type and config.content_types and media_type not in config.content_types:
            continue
        if config.encoding not in allowed:
            allowed[config.encoding] = [len(allowed), config.choose_first]
    pairs: list[tuple[str, float]] = []
    for token in accept_encoding.split(","):
        if not token:
            continue
        name, semicolon, params = token.partition(";")
        name = name.strip(_HTTP_WHITESPACE)
        q = 1.0
        if semicolon:
            key, equals, value = params.partition("=")
            if equals and key.strip(_HTTP_WHITESPACE).lower() == "q":
                parsed = _float32(value.strip(_HTTP_WHITESPACE))
                if parsed is None:
                    continue
                q = parsed
        pairs.append((name, q))
        if not q:
            allowed.pop(name, None)
    if not pairs or not allowed:
        return "identity", EncodingDecision.NOT_VALID
    choice_name, choice_q = "identity", 0.0
    for name, q in pairs:
        if name in allowed or name == "identity" or name == "*":
            if q > choice_q:
                choice_name, choice_q = name, q
            elif q == choice_q and name in allowed and allowed[name][1]:
                choice_name, choice_q = name, q
    if not choice_q:
        return "identity", EncodingDecision.NOT_VALID
    if choice_name == "identity":
        return "identity", EncodingDecision.IDENTITY
    if choice_name == "*":
        first = min(sorted(allowed), key=lambda name: allowed[name][0])
        return first, EncodingDecision.WILDCARD
    return choice_name, EncodingDecision.VALID_COMPRESSOR


def _has_token(value: str, token: str) -> bool:
    """Whether comma-separated ``value`` holds ``token`` (case-insensitive, as Envoy's caseFindToken)."""
    return any(part.strip(_HTTP_WHITESPACE).lower() == token for part in value.split(","))


class CompressorStats(StatsScope):
    """One worker's ``compressor.<library name>.gzip.`` stats (names as Envoy 1.40 shows them).

    ``response_*`` counters are shown under ``response.`` when the filter
    has a ``response_direction_config`` (else at the top, as Envoy names
    them), ``request_*`` under ``request.``.
    """

    _DIRECTION = ("compressed", "not_compressed", "total_uncompressed_bytes", "total_compressed_bytes", "content_length_too_small")
    _RESPONSE_ONLY = (
        "no_accept_header",
        "header_identity",
        "header_compressor_used",
        "header_compressor_overshadowed",
        "header_wildcard",
        "header_not_valid",
        "not_compressed_etag",
    )
    COUNTERS = tuple("response_" + n for n in _DIRECTION) + tuple("request_" + n for n in _DIRECTION) + _RESPONSE_ONLY
    __slots__ = COUNTERS + ("_response_prefix",)

    def __init__(self, response_prefix: str) -> None:
        super().__init__()
        self._response_prefix = response_prefix

    def values(self) -> Iterator[tuple]:
        for name, kind, value in super().values():
            if name.startswith("response_"):
                name = self._response_prefix + name[len("response_") :]
            elif name.startswith("request_"):
                name = "request." + name[len("request_") :]
            yield name, kind, value


class CompressorFilterConfig:
    """One ``envoy.filters.http.compressor`` entry of ``http_filters`` (immutable, shared by workers).

    Built from :class:`pyevent_envoy.config.bootstrap.Compressor`; the
    server sets :attr:`chain` to every compressor config of the same chain
    (Envoy's per-stream compressor registry, which is the same for every
    stream of a chain).
    """

    encoding = "gzip"

    def __init__(self, model: Any, context: Any) -> None:
        gzip = model.gzip
        self.library_name: str = model.library_name
        self.stats_prefix = f"compressor.{model.library_name}.gzip."
        self._response_prefix = "response." if model.has_response_direction_config else ""
        self.enabled: bool = model.enabled
        self.min_content_length: int = model.min_content_length
        self.content_types = frozenset(t.lower() for t in (model.content_types or DEFAULT_CONTENT_TYPES))
        self.disable_on_etag_header: bool = model.disable_on_etag_header
        self.remove_accept_encoding_header: bool = model.remove_accept_encoding_header
        self.choose_first: bool = model.choose_first
        # zlib's parameters as Envoy's gzip compressor passes them: a gzip
        # wrapper (window bits + 16), its memory level and strategy.
        self.level: int = gzip.compression_level
        self.wbits: int = gzip.window_bits + 16
        self.mem_level: int = gzip.memory_level
        self.strategy: int = gzip.compression_strategy
        self.chain: tuple = (self,)
        #: Each worker's stats (``http.<stat_prefix>.compressor.<library>.gzip.``).
        self.stats = PerThreadScopes(context.stats_store, f"http.{context.stat_prefix}.{self.stats_prefix}", self.new_stats)

    def new_stats(self) -> CompressorStats:
        return CompressorStats(self._response_prefix)

    def new_compressor(self) -> Any:
        # Python's zlib module: the zlib API and DEFLATE/gzip format Envoy's
        # gzip compressor uses, with the same parameters and flush modes, so
        # what a client decodes is the same (compressed bytes may differ
        # between zlib builds; Envoy links zlib-ng's zlib-compatible build).
        return zlib.compressobj(self.level, zlib.DEFLATED, self.wbits, self.mem_level, self.strategy)

    def __call__(self, stream: Any) -> "CompressorFilter":
        return CompressorFilter(self, stream)


class CompressorFilter(StreamDecoderFilter, StreamEncoderFilter):
    """One stream's compressor: reads Accept-Encoding on the way in, compresses on the way out."""

    __slots__ = ("_config", "_stats", "_accept_encoding", "_compressor", "decoder_callbacks", "encoder_callbacks")

    def __init__(self, config: CompressorFilterConfig, stream: Any) -> None:
        self._config = config
        self._stats: CompressorStats = config.stats.get()
        self._accept_encoding: Optional[str] = None
        self._compressor: Any = None

    # decoding

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        config = self._config
        values = headers.get_all("accept-encoding")
        if values:
            # Envoy keeps Accept-Encoding inline: repeats are one value joined with ",".
            self._accept_encoding = ",".join(values)
            if config.enabled and config.remove_accept_encoding_header:
                headers.remove("accept-encoding")
        # Requests are never compressed here (request_direction_config is refused).
        self._stats.request_not_compressed += 1
        return FilterHeadersStatus.CONTINUE

    # encoding

    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        config = self._config
        stats = self._stats
        big_enough = config.enabled and self._is_minimum_content_length(headers)
        compressible = (
            big_enough
            and not _is_upgrade(headers)
            and self._is_content_type_allowed(headers)
            and not _has_token(headers._get("cache-control") or "", "no-transform")
            and self._is_etag_allowed(headers)
            and "content-encoding" not in headers._names
        )
        if not end_stream and self._is_accept_encoding_allowed(big_enough, headers) and compressible and _transfer_encoding_allowed(headers):
            etag = headers._get("etag")
            if etag is not None and len(etag) > 2 and not (etag[0] in "wW" and etag[1] == "/"):
                headers.remove("etag")  # a strong ETag no longer matches the bytes sent
            headers.remove("content-length")
            headers._set_trusted("content-encoding", config.encoding)
            stats.response_compressed += 1
            self._compressor = config.new_compressor()
        else:
            stats.response_not_compressed += 1
        if compressible:
            vary = headers._get("vary")
            if vary is None:
                headers._set_trusted("vary", "Accept-Encoding")
            elif not any(part.strip(_HTTP_WHITESPACE) == "Accept-Encoding" for part in vary.split(",")):
                headers._set_trusted("vary", f"{vary}, Accept-Encoding")
        return FilterHeadersStatus.CONTINUE

    def encode_data(self, data: bytes, end_stream: bool) -> FilterDataStatus:
        compressor = self._compressor
        if compressor is None:
            return FilterDataStatus.CONTINUE
        out = compressor.compress(data) + compressor.flush(zlib.Z_FINISH if end_stream else zlib.Z_SYNC_FLUSH)
        stats = self._stats
        stats.response_total_uncompressed_bytes += len(data)
        stats.response_total_compressed_bytes += len(out)
        if end_stream:
            self._compressor = None
        self.encoder_callbacks.inject_encoded_data_to_filter_chain(out, end_stream)
        return FilterDataStatus.STOP_ITERATION_NO_BUFFER

    def encode_trailers(self, trailers: HeaderMap) -> FilterHeadersStatus:
        compressor = self._compressor
        if compressor is not None:
            # Trailers end the body: the gzip stream is finished first.
            self._compressor = None
            out = compressor.flush(zlib.Z_FINISH)
            self._stats.response_total_compressed_bytes += len(out)
            self.encoder_callbacks.inject_encoded_data_to_filter_chain(out, False)
        return FilterHeadersStatus.CONTINUE

    def on_destroy(self) -> None:
        self._compressor = None

    # the decisions

    def _is_minimum_content_length(self, headers: HeaderMap) -> bool:
        length = headers._get("content-length")
        if length is None:
            return True
        if length.isdigit() and length.isascii() and int(length) >= self._config.min_content_length:
            return True
        self._stats.response_content_length_too_small += 1
        return False

    def _is_content_type_allowed(self, headers: HeaderMap) -> bool:
        content_type = headers._get("content-type")
        if content_type is None:
            return True
        return content_type.split(";", 1)[0].strip(_HTTP_WHITESPACE).lower() in self._config.content_types

    def _is_etag_allowed(self, headers: HeaderMap) -> bool:
        if self._config.disable_on_etag_header and "etag" in headers._names:
            self._stats.not_compressed_etag += 1
            return False
        return True

    def _is_accept_encoding_allowed(self, maybe_compress: bool, headers: HeaderMap) -> bool:
        if not maybe_compress:
            return False
        accept_encoding = self._accept_encoding
        if accept_encoding is None:
            self._stats.no_accept_header += 1
            return False
        encoding, decision = choose_encoding(accept_encoding, headers._get("content-type"), self._config.chain)
        chosen = encoding.lower() == self._config.encoding
        stats = self._stats
        if decision is EncodingDecision.VALID_COMPRESSOR:
            if chosen:
                stats.header_compressor_used += 1
            else:
                stats.header_compressor_overshadowed += 1
        else:
            setattr(stats, decision.value, getattr(stats, decision.value) + 1)
        return chosen


def _is_upgrade(headers: HeaderMap) -> bool:
    """Envoy's Utility::isUpgrade: an Upgrade header and ``upgrade`` among Connection's tokens."""
    return "upgrade" in headers._names and _has_token(headers._get("connection") or "", "upgrade")


def _transfer_encoding_allowed(headers: HeaderMap) -> bool:
    value = headers._get("transfer-encoding")
    if value is None:
        return True
    return not any(part.strip(_HTTP_WHITESPACE).lower() in _COMPRESSING_TRANSFER_CODINGS for part in value.split(","))
