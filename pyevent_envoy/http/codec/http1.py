"""The HTTP/1.1 codec (Envoy's ``source/common/http/http1/codec_impl.cc``), sans I/O.

Rules, in the order the bytes meet them:

1. **Heads are found, then parsed whole.**  Input is scanned for the
   ``CRLF CRLF`` that ends a head (a start line plus header fields); until it
   arrives, at most the raw head limit is held (431/502 past it).  The whole
   head then goes to llhttp (through httptools) in one call, with a fresh
   parser each time, so llhttp's strict grammar checks the start line, the
   field syntax, Content-Length and Transfer-Encoding; one Python callback
   per field appends to a list, and one pass decodes the names and values.
   Since a head is never split, no header is ever accumulated piecemeal
   and the codec always knows where each message starts.
2. **Bodies are framed here**, not by llhttp: Content-Length counts bytes,
   chunked is decoded chunk by chunk (``find`` for the size line, zero-copy
   slices for the data; never a Python loop per byte), close-delimited
   responses end at ``dispatch_eof()``.  Trailers reuse llhttp's field
   grammar.  Body bytes found in one ``dispatch`` are joined and handed over
   once, as Envoy buffers the body of one dispatch.
3. **Strict, like Envoy and RFC 9112.**  Content-Length with
   Transfer-Encoding, duplicate or malformed Content-Length,
   Transfer-Encoding on HTTP/1.0, invalid names or values (CR, LF, NUL,
   CTLs), obs-fold, bare LF, a request line that is not ``method SP target
   SP HTTP/d.d``, several Host fields, a missing Host on HTTP/1.1, a
   fragment in the target: all 400, with Envoy's response code details.  A
   Transfer-Encoding other than a lone ``chunked`` (``gzip``, ``gzip,
   chunked``) is 501, and a request's HTTP version other than 1.1 is read as 1.0,
   as Envoy answers and reads them.  More
   header bytes than ``max_request_headers_kb`` or more fields than
   ``max_headers_count``: 431.  Upstream, any of these is 502, and so is
   a close inside a response; a close before its first byte is 503.
4. **One request at a time (Envoy's pipelining model).**  When a request
   ends, the server codec pauses: later input is held unparsed until the
   response ends, then parsing resumes (at once, or on :meth:`resume`).
   So responses are always written in request order.
5. **Hop-by-hop fields** (Connection, Keep-Alive, Proxy-Connection,
   Transfer-Encoding, TE, Trailer, and Upgrade unless upgrading) never reach
   a decoder; the encoders write their own.  Host becomes ``:authority``.
6. **Upgrade and CONNECT are tunnels**: after the head every byte is body,
   unparsed, until the peer closes.  Upstream, the tunnel opens on a 101
   with an ``Upgrade`` field; a 101 without one is a final response with no
   body, after which the connection closes.
7. **Errors are terminal.**  A :class:`CodecProtocolError` goes to
   ``on_protocol_error`` once (valid body bytes before it are delivered
   first); held input is dropped; ``dispatch`` then raises
   :class:`CodecUsageError`.  A callback, not an exception out of
   ``dispatch``, because a pipelined request is parsed when the response
   before it ends, inside the owner's ``encode_*`` call.  An exception from
   an owner callback propagates out of the codec call and also leaves the
   connection terminal.
8. **Read boundaries never matter**: the same bytes give the same events
   however they are split (only how body bytes are grouped differs); every
   limit is applied the same way to held and to complete input.

The state machine is a table: one handler per input state, each taking
``(buf, pos)`` and returning the next position, or ``~pos`` when it needs
more bytes than ``buf`` holds.

The interface is Envoy's (``dispatch`` in, decoder callbacks out, encoders
writing to a sink) rather than h11's pull of event objects: the connection
manager and router above are Envoy's, and callbacks save an object per
event on the hot path.
"""

from __future__ import annotations

import abc
import re
from typing import Any, Callable, List, Optional, Tuple

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, HttpResponseParser

from pyevent_envoy._defaults import defaults_base
from pyevent_envoy._inline_caches import own_copies
from pyevent_envoy.http.codec.codec import (
    ClientConnection,
    ConnectionCallbacks,
    Http1Settings,
    RequestDecoder,
    RequestEncoder,
    ResponseDecoder,
    ResponseEncoder,
    ServerConnection,
    ServerConnectionCallbacks,
    Sink,
)
from pyevent_envoy.http.codec.errors import CodecProtocolError, CodecUsageError
from pyevent_envoy import _http1
from pyevent_envoy.http.header_map import HeaderMap

__all__ = [
    "ClientConnectionImpl",
    "RequestEncoderImpl",
    "ResponseEncoderImpl",
    "ServerConnectionImpl",
    "reason_phrase",
]

# HeaderMap._trusted bound once: CPython 3.11 compiles ``NAME.method(...)``
# for an imported NAME as a plain attribute load, which cannot specialize on
# a class method and binds it anew on every call (twice per request here).
_trusted_headers = HeaderMap._trusted

# Size limits

# Beyond the counted header bytes (URL, names, values), a raw head may hold
# this much framing and optional whitespace: the request line's method,
# spaces and version, ": " and CRLF per field (4 bytes each, counted per
# allowed field on top of this), padding.  It bounds what is held while the
# end of a head has not arrived yet.
_HEAD_FRAMING_ALLOWANCE = 8 * 1024

# The longest chunk-size line (size plus extensions) held while incomplete:
# h11's default max_incomplete_event_size.
_MAX_CHUNK_LINE = 16 * 1024

# A chunk size above 2**60 bytes is an overflow, not a body (llhttp rejects
# sizes that overflow 64 bits; 15 significant hex digits stay below that).
_MAX_CHUNK_SIZE_DIGITS = 15

# Input states.  Everything at or above _STOP ends input processing.
_HEAD = 0  # awaiting a head (request, or response when a request is out)
_BODY = 1  # Content-Length body
_CHUNK_SIZE = 2
_CHUNK_DATA = 3
_CHUNK_CRLF = 4
_TRAILERS = 5
_TUNNEL = 6  # raw bytes until the peer closes (also close-delimited responses)
_IDLE = 7  # client: no request outstanding; any byte is an error
_STOP = 8
_CLOSED = 8  # no more input is read
_ERROR = 9

# Response framing modes of an encoder.
_MODE_NONE = 0  # no body may be sent (HEAD, 1xx, 204, 304): body bytes are dropped
_MODE_LENGTH = 1
_MODE_CHUNKED = 2
_MODE_RAW = 3  # close-delimited or tunnel: bytes as they are

_HTTP11 = "HTTP/1.1"
_HTTP10 = "HTTP/1.0"
# llhttp's method names, decoded once.
_METHODS = {
    m.encode(): m
    for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE")
}

# Fields the codec owns: never delivered to decoders, never copied by encoders.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
)
# What a request head needs looked at beyond the generic field decoding.
_REQUEST_SPECIAL = _HOP_BY_HOP | {"host", "content-length", "expect"}
_RESPONSE_SPECIAL = _HOP_BY_HOP | {"content-length"}
# Hop-by-hop fields with nothing to read in them: just removed.
_OTHER_HOP_BY_HOP = frozenset({"keep-alive", "proxy-connection", "te", "trailer"})
# Connection values that are one token (the common case: no split needed).
_SIMPLE_CONNECTION = frozenset({"keep-alive", "close", "upgrade"})
_REQUEST_ENCODE_SKIP = _HOP_BY_HOP | {"host"}
_INFORMATIONAL_SKIP = _HOP_BY_HOP | {"content-length"}
# Not allowed in a trailer section (RFC 9110 section 6.5.1: framing, routing).
_TRAILER_FORBIDDEN = _HOP_BY_HOP | {"content-length", "host"}

# RFC 9110 section 9.3: methods whose request without a body gets no
# Content-Length: 0 (Envoy's "bodiless" requests).
_BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

_HEXDIGITS = b"0123456789abcdefABCDEF"
_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# RFC 3986 authority characters (host, port, IP literal, percent-encoding; userinfo's '@').
_AUTHORITY_CHARS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%@"
)

# Chunk extensions, checked only when a size line has a ';' (RFC 9112 section 7.1.1;
# no whitespace between the size and the first ';', as llhttp requires).
_TCHAR_RE = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED_RE = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_EXT_RE = re.compile(
    rb"(?:;[ \t]*" + _TCHAR_RE + rb"(?:[ \t]*=[ \t]*(?:" + _TCHAR_RE + rb"|" + _QUOTED_RE + rb"))?[ \t]*)*\Z"
)

# llhttp's reason for stopping after the head of a 101 or a CONNECT.
_LLHTTP_UPGRADE_PAUSE = "Pause on CONNECT/Upgrade"

# Trailer sections have the grammar of header sections (RFC 9112 section 7.1.2);
# llhttp checks them as the fields of this fixed request line.
_TRAILER_PREFIX = b"POST / HTTP/1.1\r\n"


# The reason phrases Envoy 1.40's HTTP/1.1 codec writes (``CodeUtility::toString``):
# its own table, not the IANA registry nor Python's ``http.HTTPStatus`` (whose
# phrases change between Python versions).  Every other code is "Unknown" --
# 418 and 451 included -- and 599 has the name of Envoy's enum value.
_ENVOY_REASON_PHRASES = {
    100: "Continue", 101: "Switching Protocols",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
    204: "No Content", 205: "Reset Content", 206: "Partial Content", 207: "Multi-Status",
    208: "Already Reported", 226: "IM Used",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other",
    304: "Not Modified", 305: "Use Proxy", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
    411: "Length Required", 412: "Precondition Failed", 413: "Payload Too Large",
    414: "URI Too Long", 415: "Unsupported Media Type", 416: "Range Not Satisfiable",
    417: "Expectation Failed", 421: "Misdirected Request", 422: "Unprocessable Entity",
    423: "Locked", 424: "Failed Dependency", 425: "Too Early", 426: "Upgrade Required",
    428: "Precondition Required", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
    506: "Variant Also Negotiates", 507: "Insufficient Storage", 508: "Loop Detected",
    510: "Not Extended", 511: "Network Authentication Required",
    599: "Last Unassigned Server Error Code",
}


def reason_phrase(status: int) -> str:
    """The reason phrase Envoy 1.40 writes for ``status`` ("Unknown" when its table lacks it)."""
    return _ENVOY_REASON_PHRASES.get(status, "Unknown")


def _status_lines() -> dict:
    return {code: f"HTTP/1.1 {code} {reason_phrase(code)}\r\n" for code in range(100, 600)}


_STATUS_LINES = _status_lines()
# ":status" value -> (code, status line), so that a response needs one dict lookup.
_STATUS_BY_VALUE = {str(code): (code, line) for code, line in _STATUS_LINES.items()}
#: ``":status"`` value -> its code, for "100" to "599": the connection manager
#: and the router read every response's code with one dict lookup instead of
#: a digit check and ``int()``.
STATUS_CODES = {str(code): code for code in range(100, 600)}


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} {reason_phrase(status)}\r\n"


def _parse_status(value: Optional[str]) -> Tuple[int, str]:
    """``(code, status line)`` for a ``:status`` value outside the table (600-999)."""
    if value is None:
        raise CodecUsageError("response headers need :status")
    if not (len(value) == 3 and value.isascii() and value.isdigit()) or value[0] == "0":
        raise CodecUsageError(f"invalid :status {value!r}")
    code = int(value)
    return code, _status_line(code)


def _bare_cr_or_lf(seg: bytes) -> bool:
    """True if ``seg`` has a CR not followed by LF or an LF not preceded by CR.

    A CR at the very end is undecided (its LF may be in the next read).
    llhttp rejects both in a complete head; this finds them in a head that
    is still incomplete, so that it is refused at once instead of held.
    """
    if seg[-1:] == b"\r":
        seg = seg[:-1]
    pairs = seg.count(b"\r\n")
    return seg.count(b"\n") != pairs or seg.count(b"\r") != pairs


def _serialize_fields(names: List[str], values: List[str]) -> str:
    """``name: value CRLF`` for each field, built with slice assignments and one join."""
    n = len(names)
    if not n:
        return ""
    parts = [": "] * (4 * n)
    parts[0::4] = names
    parts[2::4] = values
    parts[3::4] = _CRLFS[n] if n < len(_CRLFS) else ["\r\n"] * n
    return "".join(parts)


_CRLFS = [["\r\n"] * n for n in range(128)]


def _tokens(values: List[str]) -> List[str]:
    """The lowercase, non-empty list elements of comma-separated field values."""
    out = []
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t").lower()
            if item:
                out.append(item)
    return out


# The scanner's special-field bits (csrc/http1_scan.c); with only these, the
# codec's common path handles the head.
_SPECIAL_HOST = _http1.SPECIAL_HOST
_SPECIAL_CONTENT_LENGTH = _http1.SPECIAL_CONTENT_LENGTH
_SPECIAL_CONNECTION = _http1.SPECIAL_CONNECTION
_FAST_REQUEST_SPECIAL = _SPECIAL_HOST | _SPECIAL_CONTENT_LENGTH | _SPECIAL_CONNECTION
_FAST_RESPONSE_SPECIAL = _SPECIAL_CONTENT_LENGTH | _SPECIAL_CONNECTION


def _pop_host(names: List[str], values: List[str]) -> str:
    """Remove the Host field and return its value: exactly one, a valid authority."""
    i = names.index("host")
    host = values[i]
    del names[i]
    del values[i]
    if "host" in names:
        raise CodecProtocolError("multiple Host fields", 400, "http1.invalid_host")
    if host.strip(_AUTHORITY_CHARS):
        raise CodecProtocolError(f"invalid Host {host!r}", 400, "http.invalid_authority")
    return host


def _missing_host_error() -> CodecProtocolError:
    # Envoy's connection manager, not its codec, refuses it: no DPE.
    return CodecProtocolError("HTTP/1.1 request without Host", 400, "missing_host_header", codec_error=False)


def _fragment_error() -> CodecProtocolError:
    # Envoy's connection manager refuses it while normalizing the path: no DPE.
    return CodecProtocolError("fragment in request target", 400, "path_normalization_failed", codec_error=False)


# A version Envoy's codec reads as HTTP/1.0 (any but 1.0 and 1.1), after the target's space.
_OTHER_VERSION = re.compile(rb" HTTP/[0-9]\.[0-9]")
# Control characters (tab, CR and LF aside) and DEL: Envoy refuses a head with
# one anywhere, start line included, as http1.invalid_characters.
_CONTROL_CHARACTER = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# What llhttp says about framing fields that Envoy's codec names itself.
_LLHTTP_FRAMING_ERRORS = (
    ("Request has invalid `Transfer-Encoding`", 501, "http1.invalid_transfer_encoding"),
    ("Invalid `Transfer-Encoding` header value", 501, "http1.invalid_transfer_encoding"),
    ("Transfer-Encoding can't be present with Content-Length", 400, "http1.content_length_and_chunked_not_allowed"),
    ("Content-Length can't be present with Transfer-Encoding", 400, "http1.content_length_and_chunked_not_allowed"),
)


def _refined_request_error(error: CodecProtocolError, head: bytes) -> CodecProtocolError:
    """The status and details Envoy 1.40 gives a request head llhttp (or the request-line check) refused.

    Envoy names a control character anywhere in the head
    (``http1.invalid_characters``), a Transfer-Encoding other than
    ``chunked`` (501, ``http1.invalid_transfer_encoding``) and chunked
    beside a Content-Length; it calls the rest ``http1.codec_error``.  Only
    refused heads get here: valid ones cost nothing.
    """
    if _CONTROL_CHARACTER.search(head):
        return CodecProtocolError(str(error), 400, "http1.invalid_characters")
    message = str(error)
    for words, status, details in _LLHTTP_FRAMING_ERRORS:
        if words in message:
            return CodecProtocolError(message, status, details)
    return error


def _pop_connection(names: List[str], values: List[str], http11: bool, keep_alive: bool) -> bool:
    """Remove the one Connection field; return the message's keep-alive after it."""
    i = names.index("connection")
    value = values[i].lower()
    del names[i]
    del values[i]
    tokens = (value,) if value in _SIMPLE_CONNECTION else _tokens([value])
    if "close" in tokens:
        return False
    if not http11 and "keep-alive" in tokens:
        return True
    return keep_alive


def _pop_all(names: List[str], values: List[str], name: str) -> List[str]:
    """Remove every ``name`` field; return their values in order."""
    out = []
    while name in names:
        i = names.index(name)
        out.append(values[i])
        del names[i]
        del values[i]
    return out


class _HeadCollector:
    """The httptools protocol object: collects one head's URL and fields, nothing else.

    A fresh parser is made for each head (about 0.25 us); this object is
    reused, reset by :meth:`parse`.
    """

    __slots__ = ("url", "names", "values", "complete")

    def __init__(self) -> None:
        self.url = b""
        self.names: List[bytes] = []
        self.values: List[bytes] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.names.append(name)
        self.values.append(value)

    def on_headers_complete(self) -> None:
        self.complete = True

    def parse(self, parser_type: type, head: bytes) -> "HttpRequestParser":
        """Run llhttp over one whole head; return the parser (for method, status).

        Raises:
            HttpParserError: llhttp rejected the head.
        """
        self.url = b""
        self.names = []
        self.values = []
        self.complete = False
        parser = parser_type(self)
        try:
            parser.feed_data(head)
        except HttpParserUpgrade:
            pass  # Upgrade and CONNECT are decided by the codec, from the fields.
        except HttpParserError as exc:
            # llhttp pauses after the head of every 101; httptools reports the
            # pause as an error when the response has no Upgrade field.  The
            # head was read whole all the same.
            if not (self.complete and str(exc) == _LLHTTP_UPGRADE_PAUSE):
                raise
        return parser


def _decode_fields(
    raw_names: List[bytes],
    raw_values: List[bytes],
    counted: int,
    max_bytes: int,
    max_count: int,
    status: int,
    what: str,
) -> Tuple[List[str], List[str]]:
    """Decode llhttp's raw fields into lowercase names and stripped latin-1 values.

    ``counted`` is what already counts against ``max_bytes`` (the URL).
    Envoy counts name and value bytes (values without surrounding whitespace);
    llhttp strips the leading whitespace, the trailing is stripped here.
    """
    count = len(raw_names)
    if count > max_count:
        raise CodecProtocolError(f"{what} count exceeds limit", status, "http1.too_many_headers")
    if not count:
        if counted > max_bytes:
            raise CodecProtocolError(f"{what} size exceeds limit", status, "http1.headers_too_large")
        return [], []
    # One join, one decode, one split for all names, and the same for values.
    # NUL never occurs in a field (llhttp rejects it), so it is a safe separator.
    joined_names = b"\0".join(raw_names).decode("latin-1")
    joined_values = b"\0".join(raw_values).decode("latin-1")
    size = counted + len(joined_names) + len(joined_values) - 2 * (count - 1)
    # (str searches: several times faster than the same search in bytes.)
    if " \0" in joined_values or "\t\0" in joined_values or joined_values.endswith((" ", "\t")):
        values = [v.rstrip(" \t") for v in joined_values.split("\0")]
        size = counted + len(joined_names) - (count - 1) + sum(map(len, values))
    else:
        values = joined_values.split("\0")
    if size > max_bytes:
        raise CodecProtocolError(f"{what} size exceeds limit", status, "http1.headers_too_large")
    return joined_names.lower().split("\0"), values


class _ConnectionBase:
    """What the server and client codecs share: input buffering and body framing.

    Subclasses provide ``_on_head(head)``, the delivery hooks
    ``_deliver_data`` and ``_deliver_trailers``, ``_message_complete_begin``
    and ``_message_complete_end`` (around a message's last event), and
    ``_fail``.
    """

    # paused and should_close are the ServerConnection and Connection
    # interfaces' read-only properties, kept here as plain attributes: the
    # connection manager and the pool read them on every request, and a slot
    # read is one specialized instruction where a property is a call.
    __slots__ = (
        "_sink",
        "_settings",
        "_state",
        "_pending",
        "_scan_from",
        "_processing",
        "paused",
        "should_close",
        "_remaining",
        "_body_parts",
        "_max_head_bytes",
        "_max_head_count",
        "_raw_head_limit",
        "_too_large_status",
        "_bad_status",
        "_collector",
        "_scanned_status",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The server and client sides share these methods and run both per
        # request: each gets its own copies, so CPython's inline caches see one
        # type, and a state table that calls its own copies.
        super().__init_subclass__(**kwargs)
        own_copies(cls, (_ConnectionBase,))
        cls._HANDLERS = tuple(vars(cls).get(handler.__name__, handler) for handler in _ConnectionBase._HANDLERS)

    def __init__(self, sink: Sink, settings: Optional[Http1Settings], server: bool) -> None:
        if not callable(sink):
            raise TypeError("sink must be callable")
        settings = settings if settings is not None else Http1Settings()
        self._sink = sink
        self._settings = settings
        self._state = _HEAD if server else _IDLE
        self._pending = bytearray()
        self._scan_from = 0
        self._processing = False
        self.paused = False
        self.should_close = False
        self._remaining = 0
        self._body_parts: List[bytes] = []
        if server:
            kb, count, status = settings.max_request_headers_kb, settings.max_headers_count, 431
            self._bad_status = 400
        else:
            kb, count, status = settings.max_response_headers_kb, settings.max_response_headers_count, 502
            self._bad_status = 502
        self._max_head_bytes = kb * 1024
        self._max_head_count = count
        self._raw_head_limit = kb * 1024 + 4 * count + _HEAD_FRAMING_ALLOWANCE
        self._too_large_status = status
        self._collector = _HeadCollector()
        self._scanned_status = 0

    def _parse_with_llhttp(self, parser_type: type, head: bytes, what: str) -> Any:
        """Run llhttp over a whole head into ``self._collector``; its refusal is this side's 400/502."""
        collector = self._collector
        try:
            parser = collector.parse(parser_type, head)
        except HttpParserError as exc:
            raise CodecProtocolError(f"http/1.1 protocol error: {exc}", self._bad_status) from None
        if not collector.complete:
            raise CodecProtocolError(f"malformed {what} head", self._bad_status)
        return parser

    def _scan_head(self, head: bytes, response: int) -> Optional[Tuple[List[str], bool, int]]:
        """Scan a head in C (``csrc/http1_scan.c``): its pieces, whether it is HTTP/1.1, its special fields.

        The pieces are the start line's (method and target of a request)
        then each field's lowercase name and value; the special fields are
        ``_http1.SPECIAL_*`` bits (Host, Content-Length, Connection...).  None when the scanner
        declines the head: the caller parses it with llhttp, which decides
        on everything unusual.  The field limits are applied here as
        :func:`_decode_fields` applies them.  A response's status is
        ``self._scanned_status`` afterwards.
        """
        scanned = _http1.scan_head(head, response)
        if scanned is None:
            return None
        pieces, http11, special, status, count, size = scanned
        if count > self._max_head_count:
            raise CodecProtocolError(
                "headers count exceeds limit", self._too_large_status, "http1.too_many_headers"
            )
        if size > self._max_head_bytes:
            raise CodecProtocolError(
                "headers size exceeds limit", self._too_large_status, "http1.headers_too_large"
            )
        self._scanned_status = status
        return pieces, http11, special

    # Input

    def _dispatch(self, data: bytes) -> None:
        """``dispatch()``'s general path: any bytes, in any state."""
        state = self._state
        if state >= _STOP:
            if state == _ERROR:
                raise CodecUsageError("dispatch() after a protocol error: the connection is done")
            return  # closed: nothing more is read
        if self._processing:
            raise CodecUsageError("dispatch() called from inside a codec callback")
        if type(data) is not bytes:
            data = bytes(data)
        if not data:
            return
        pending = self._pending
        if pending or self.paused:
            pending += data
            if self.paused:
                return
            if (state == _HEAD or state == _TRAILERS) and len(pending) <= self._raw_head_limit:
                # Still waiting for the end of a head?  Look only at the new bytes.
                old = len(pending) - len(data)
                if old and pending[old - 1] == 13:  # CR: its LF may be the first new byte
                    old -= 1
                if (
                    pending.find(b"\r\n\r\n", self._scan_from) < 0
                    and not (state == _TRAILERS and (pending[:2] == b"\r\n" or pending[:1] == b"\n"))
                    and not _bare_cr_or_lf(bytes(pending[old:]))
                ):
                    self._scan_from = max(0, len(pending) - 3)
                    return
            data = bytes(pending)
            pending.clear()
        self._scan_from = 0
        # _run(data), inline: this runs for every read.
        self._processing = True
        try:
            self._process(data)
        finally:
            self._processing = False

    def _run(self, buf: bytes) -> None:
        self._processing = True
        try:
            self._process(buf)
        finally:
            self._processing = False

    def _run_guarded(self, fn: Callable[[], None]) -> None:
        self._processing = True
        try:
            try:
                fn()
            except CodecProtocolError as err:
                self._fail(err)
        finally:
            self._processing = False

    def _head_too_large(self) -> None:
        raise CodecProtocolError(
            "headers size exceeds limit", self._too_large_status, "http1.headers_too_large"
        )

    def _process(self, buf: bytes) -> None:
        """Parse ``buf``; the server and client add what follows a pass (their EOF and head rules)."""
        self._parse(buf)

    def _parse(self, buf: bytes) -> None:
        # (Called as self._parse, not _ConnectionBase._parse: each side runs
        # its own copy, see __init_subclass__.)
        pos = 0
        n = len(buf)
        handlers = self._HANDLERS
        try:
            while pos < n and self._state < _STOP and not self.paused:
                new = handlers[self._state](self, buf, pos)
                if new < 0:
                    pos = ~new
                    break
                pos = new
            if self._body_parts:
                self._flush_body(False)
        except CodecProtocolError as err:
            # Body bytes before the error are valid: deliver them first, so
            # that what the owner sees does not depend on read boundaries.
            if self._body_parts and self._state < _STOP:
                self._flush_body(False)
            self._fail(err)
            return
        except BaseException:
            # An owner callback raised: nothing can say where parsing stood.
            self._state = _ERROR
            self._pending.clear()
            self._body_parts.clear()
            raise
        if pos < n and self._state < _STOP:
            self._pending[:] = buf[pos:] if pos else buf
            if self._state == _HEAD or self._state == _TRAILERS:
                self._scan_from = max(0, len(self._pending) - 3)

    # Body framing (shared table entries)

    def _read_head(self, buf: bytes, pos: int) -> int:
        n = len(buf)
        # RFC 9112 section 2.2: ignore empty lines before a start line.
        while buf.startswith(b"\r\n", pos):
            pos += 2
        if pos >= n:
            return n
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            limit = self._raw_head_limit
            if _bare_cr_or_lf(buf[pos : pos + limit + 1]):
                raise CodecProtocolError("bare CR or LF in head", self._bad_status)
            if n - pos > limit:
                self._head_too_large()
            return ~pos
        end += 4
        if end - pos > self._raw_head_limit:
            self._head_too_large()
        self._on_head(buf[pos:end] if (pos or end != n) else buf)
        return end

    def _read_body(self, buf: bytes, pos: int) -> int:
        n = len(buf)
        remaining = self._remaining
        end = pos + remaining
        if end >= n:
            self._body_parts.append(buf if not pos else buf[pos:])
            self._remaining = remaining - (n - pos)
            if end > n:
                return n
            end = n
        else:
            self._body_parts.append(buf[pos:end])
            self._remaining = 0
        self._end_message(None)
        return end

    def _read_chunk_size(self, buf: bytes, pos: int) -> int:
        # Whole chunks already in ``buf`` are taken in this one loop: per chunk
        # a find, a few checks and a zero-copy slice (joined once at flush).
        n = len(buf)
        view = None
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if n - pos > _MAX_CHUNK_LINE:
                    raise CodecProtocolError("chunk size line too long", self._bad_status)
                self._state = _CHUNK_SIZE
                return ~pos
            if nl - pos > _MAX_CHUNK_LINE:  # the same verdict however the line was read
                raise CodecProtocolError("chunk size line too long", self._bad_status)
            if nl == pos or buf[nl - 1] != 13:  # 13 is CR
                raise CodecProtocolError("missing CR before LF after chunk size", self._bad_status)
            line = buf[pos : nl - 1]
            semi = line.find(b";")
            size = line if semi < 0 else line[:semi]
            if not size or size.strip(_HEXDIGITS):
                raise CodecProtocolError("invalid chunk size", self._bad_status)
            if len(size) > _MAX_CHUNK_SIZE_DIGITS and len(size.lstrip(b"0")) > _MAX_CHUNK_SIZE_DIGITS:
                raise CodecProtocolError("chunk size overflow", self._bad_status)
            if semi >= 0 and _CHUNK_EXT_RE.match(line, semi) is None:
                raise CodecProtocolError("invalid chunk extension", self._bad_status)
            chunk = int(size, 16)
            start = nl + 1
            if not chunk:
                self._state = _TRAILERS
                return start
            end = start + chunk
            if end + 2 > n:
                # The chunk goes on in a later read.
                self._remaining = chunk
                self._state = _CHUNK_DATA
                return start
            if view is None:
                view = memoryview(buf)
            self._body_parts.append(view[start:end])
            if not buf.startswith(b"\r\n", end):
                raise CodecProtocolError("missing CRLF after chunk data", self._bad_status)
            pos = end + 2
            if pos >= n:
                self._state = _CHUNK_SIZE
                return n

    def _read_chunk_data(self, buf: bytes, pos: int) -> int:
        n = len(buf)
        end = pos + self._remaining
        if end >= n:
            self._body_parts.append(buf if not pos else buf[pos:])
            self._remaining = end - n
            if end == n:
                self._state = _CHUNK_CRLF
            return n
        self._body_parts.append(buf[pos:end])
        self._remaining = 0
        self._state = _CHUNK_CRLF
        return end

    def _read_chunk_crlf(self, buf: bytes, pos: int) -> int:
        if buf.startswith(b"\r\n", pos):
            self._state = _CHUNK_SIZE
            return pos + 2
        if len(buf) - pos == 1 and buf[pos] == 13:
            return ~pos
        raise CodecProtocolError("missing CRLF after chunk data", self._bad_status)

    def _read_trailers(self, buf: bytes, pos: int) -> int:
        if buf.startswith(b"\r\n", pos):
            self._end_message(None)
            return pos + 2
        n = len(buf)
        first = buf[pos]
        if first == 10:  # LF
            raise CodecProtocolError("bare LF in trailer section", self._bad_status)
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            if _bare_cr_or_lf(buf[pos : pos + self._raw_head_limit + 1]):
                raise CodecProtocolError("bare CR or LF in trailer section", self._bad_status)
            if n - pos > self._raw_head_limit:
                raise CodecProtocolError(
                    "trailers size exceeds limit", self._too_large_status, "http1.headers_too_large"
                )
            return ~pos
        end += 4
        if end - pos > self._raw_head_limit:
            raise CodecProtocolError(
                "trailers size exceeds limit", self._too_large_status, "http1.headers_too_large"
            )
        collector = self._collector
        try:
            collector.parse(HttpRequestParser, _TRAILER_PREFIX + buf[pos:end])
        except HttpParserError as exc:
            raise CodecProtocolError(
                f"http/1.1 protocol error in trailers: {exc}", self._bad_status
            ) from None
        if not collector.complete:
            raise CodecProtocolError("malformed trailer section", self._bad_status)
        names, values = _decode_fields(
            collector.names,
            collector.values,
            0,
            self._max_head_bytes,
            self._max_head_count,
            self._too_large_status,
            "trailers",
        )
        if not _TRAILER_FORBIDDEN.isdisjoint(names):
            for name in _TRAILER_FORBIDDEN.intersection(names):
                _pop_all(names, values, name)
        if names and self._settings.enable_trailers:
            self._end_message(_trusted_headers(names, values))
        else:
            self._end_message(None)
        return end

    def _read_tunnel(self, buf: bytes, pos: int) -> int:
        self._body_parts.append(buf if not pos else buf[pos:])
        return len(buf)

    def _read_idle(self, buf: bytes, pos: int) -> int:
        raise CodecProtocolError(
            "response bytes with no request outstanding", 503, "upstream_unsolicited_response"
        )

    _HANDLERS = (
        _read_head,
        _read_body,
        _read_chunk_size,
        _read_chunk_data,
        _read_chunk_crlf,
        _read_trailers,
        _read_tunnel,
        _read_idle,
    )

    # Delivery

    def _flush_body(self, end_stream: bool) -> None:
        parts = self._body_parts
        if parts:
            # Parts are bytes or memoryview slices of the input: one copy at most.
            if len(parts) == 1:
                data = parts[0]
                if type(data) is not bytes:
                    data = bytes(data)
            else:
                data = b"".join(parts)
            parts.clear()
            self._deliver_data(data, end_stream)
        elif end_stream:
            self._deliver_data(b"", True)

    def _end_message(self, trailers: Optional[HeaderMap]) -> None:
        """The message's last byte was read: deliver what is left, then the end."""
        self._state = _HEAD
        self._message_complete_begin()
        if trailers is None:
            self._flush_body(True)
        else:
            if self._body_parts:
                self._flush_body(False)
            self._deliver_trailers(trailers)
        self._message_complete_end()

    # Common properties

    # Hooks

    def _on_head(self, head: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _deliver_data(self, data: bytes, end_stream: bool) -> None:  # pragma: no cover
        raise NotImplementedError

    def _deliver_trailers(self, trailers: HeaderMap) -> None:  # pragma: no cover
        raise NotImplementedError

    def _message_complete_begin(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def _message_complete_end(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def _fail(self, err: CodecProtocolError) -> None:  # pragma: no cover
        raise NotImplementedError


# Encoders


# What every encoder starts with (set in C at creation: see pyevent_envoy._defaults).
_EncoderFields = defaults_base(
    "pyevent_envoy.http.codec.http1._EncoderFields",
    _mode=_MODE_NONE,
    _remaining=0,
    _started=False,
    _complete=False,
    _close=False,
)


class _StreamEncoderBase(_EncoderFields):
    """Body framing for one outgoing message (Envoy's ``StreamEncoderImpl``)."""

    __slots__ = ("_conn", "_sink")


    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The response and request encoders share these methods and both run
        # per request: each gets its own copies (see _ConnectionBase).
        super().__init_subclass__(**kwargs)
        own_copies(cls, (_StreamEncoderBase,))

    def _init_encoder(self, conn: "_ConnectionBase") -> None:
        self._conn = conn
        self._sink = conn._sink

    # encode_data() is C (see bind_codec at the end of this module): it sends
    # what a Content-Length allows, and raw bodies, and leaves the rest here.

    def _encode_data_general(self, data: bytes, end_stream: bool) -> None:
        """encode_data() for what its C method leaves: chunked framing, bodies with no room, errors."""
        if not self._started:
            raise CodecUsageError("encode_data() before encode_headers()")
        if self._complete:
            raise CodecUsageError("encode_data() after the end of the message")
        mode = self._mode
        n = len(data)
        if mode == _MODE_CHUNKED:
            if n:
                self._sink(
                    b"".join((b"%x\r\n" % n, data, b"\r\n0\r\n\r\n" if end_stream else b"\r\n"))
                )
            elif end_stream:
                self._sink(b"0\r\n\r\n")
        elif mode == _MODE_LENGTH:
            remaining = self._remaining
            if n > remaining:
                self._close = True
                self._conn.should_close = True
                raise CodecUsageError(
                    f"body longer than its Content-Length ({n} bytes, {remaining} left)"
                )
            self._remaining = remaining = remaining - n
            if n:
                self._sink(data if type(data) is bytes else bytes(data))
            if end_stream and remaining:
                self._close = True
                self._conn.should_close = True
                self._complete = True
                self._on_encode_complete()
                raise CodecUsageError(f"body ended {remaining} bytes short of its Content-Length")
        elif mode == _MODE_RAW:
            if n:
                self._sink(data if type(data) is bytes else bytes(data))
        # _MODE_NONE: a message that cannot have a body; its bytes are dropped.
        if end_stream:
            self._complete = True
            self._on_encode_complete()

    def encode_trailers(self, trailers: HeaderMap) -> None:
        if not self._started:
            raise CodecUsageError("encode_trailers() before encode_headers()")
        if self._complete:
            raise CodecUsageError("encode_trailers() after the end of the message")
        if self._mode == _MODE_CHUNKED:
            parts = ["0\r\n"]
            if self._conn._settings.enable_trailers:
                for name, value in trailers:
                    if name[0] != ":" and name not in _TRAILER_FORBIDDEN:
                        parts.append(f"{name}: {value}\r\n")
            parts.append("\r\n")
            self._sink("".join(parts).encode("latin-1"))
        elif self._mode == _MODE_LENGTH and self._remaining:
            self._close = True
            self._conn.should_close = True
            self._complete = True
            self._on_encode_complete()
            raise CodecUsageError(
                f"body ended {self._remaining} bytes short of its Content-Length"
            )
        self._complete = True
        self._on_encode_complete()

    def _on_encode_complete(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _checked_length(names: List[str], values: List[str]) -> int:
    """The Content-Length the owner's fields announce (``"content-length" in names``).

    Raises:
        CodecUsageError: not a decimal number, or repeated with another value.
    """
    value = values[names.index("content-length")]
    if names.count("content-length") > 1:
        others = {v for k, v in zip(names, values) if k == "content-length"}
        if len(others) > 1:
            raise CodecUsageError(f"conflicting Content-Length values {sorted(others)}")
    if not (value.isascii() and value.isdigit()):
        raise CodecUsageError(f"invalid Content-Length {value!r}")
    return int(value)


class ResponseEncoderImpl(_StreamEncoderBase, ResponseEncoder):
    """The response side of one server stream; created by :class:`ServerConnectionImpl`."""

    __slots__ = (
        "protocol",
        "keep_alive",
        "upgrade",
        "is_head_request",
        "is_connect_request",
        "expect_continue",
        "_request_complete",
        "_sent_100",
        "_special",
    )

    def __init__(
        self,
        conn: "ServerConnectionImpl",
        protocol: str,
        keep_alive: bool,
        upgrade: bool = False,
        is_head_request: bool = False,
        is_connect_request: bool = False,
        expect_continue: bool = False,
    ) -> None:
        self._conn = conn
        self._sink = conn._sink
        self.protocol = protocol
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.is_head_request = is_head_request
        self.is_connect_request = is_connect_request
        self.expect_continue = expect_continue
        self._request_complete = False
        self._close = not keep_alive
        self._sent_100 = False
        # Anything that takes the response off the common path.
        self._special = upgrade or is_head_request or is_connect_request

    @property
    def started_response(self) -> bool:
        return self._started

    # encode_headers() is C (see bind_codec at the end of this module): the
    # common response, whole, through _http1.encode_response.

    def _encode_headers_general(self, headers: HeaderMap, end_stream: bool) -> None:
        """encode_headers() for what its C method leaves: 1xx/101, 204, 304, HEAD, tunnels, hop-by-hop fields."""
        if self._started:
            raise CodecUsageError("encode_headers() called twice")
        names = headers._names
        values = headers._values
        # The codec and HeaderMap.add() put pseudo-headers first.
        if names and names[0] == ":status":
            status, line = _STATUS_BY_VALUE.get(values[0]) or _parse_status(values[0])
        else:
            value = headers._get(":status")
            status, line = _STATUS_BY_VALUE.get(value) or _parse_status(value)
        n = len(names)
        start = 0
        while start < n and names[start][0] == ":":
            start += 1
        self._encode_other_headers(status, line, names[start:], values[start:], end_stream)
        if end_stream:
            self._complete = True
            self._conn._on_response_complete(self)

    def _encode_other_headers(
        self, status: int, line: str, names: List[str], values: List[str], end_stream: bool
    ) -> None:
        """Everything C does not take: 1xx/101, 204, 304, HEAD, tunnels, hop-by-hop fields..."""
        if status < 200 and not (status == 101 and self.upgrade):
            raise CodecUsageError("send informational responses with encode_1xx_headers()")
        self._started = True
        close = self._close
        kept_names = []
        kept_values = []
        connection = []
        upgrade = None
        for name, value in zip(names, values):
            if name not in _HOP_BY_HOP:
                kept_names.append(name)
                kept_values.append(value)
            elif name == "connection":
                connection.append(value)
            elif name == "upgrade" and upgrade is None:
                upgrade = value
        if "close" in _tokens(connection):
            close = True
        # A 101 switches only to a protocol it names; one without Upgrade ends here.
        switching = status == 101 and upgrade is not None
        length = _checked_length(kept_names, kept_values) if "content-length" in kept_names else None
        if status == 204 and length is not None:
            # RFC 9110 section 8.6: no Content-Length in a 204.
            _pop_all(kept_names, kept_values, "content-length")
        parts = [line, _serialize_fields(kept_names, kept_values)]
        if switching or (self.is_connect_request and 200 <= status < 300):
            # A tunnel: raw bytes both ways until one side closes.
            self._mode = _MODE_RAW
            close = True
            if switching:
                parts.append("connection: upgrade\r\n")
                if upgrade is not None:
                    parts.append(f"upgrade: {upgrade}\r\n")
        else:
            if self.upgrade or self.is_connect_request:
                # The request side was a tunnel that was not accepted: its bytes
                # cannot be told apart from a next request.
                close = True
            chunked = False
            if self.is_head_request or status == 304 or status == 204 or status < 200:
                self._mode = _MODE_NONE
            elif length is not None:
                self._mode = _MODE_LENGTH
                self._remaining = length
            elif end_stream:
                parts.append("content-length: 0\r\n")
                self._mode = _MODE_LENGTH
            elif self.protocol == _HTTP11:
                chunked = True
                self._mode = _MODE_CHUNKED
            else:
                self._mode = _MODE_RAW
                close = True
            if close:
                parts.append("connection: close\r\n")
            elif self.protocol == _HTTP10:
                parts.append("connection: keep-alive\r\n")
            if chunked:
                # Last, after ``connection``, as Envoy's codec writes it.
                parts.append("transfer-encoding: chunked\r\n")
        self._close = close
        parts.append("\r\n")
        self._sink("".join(parts).encode("latin-1"))

    def encode_1xx_headers(self, headers: HeaderMap) -> None:
        if self._started:
            raise CodecUsageError("encode_1xx_headers() after the response started")
        status = headers._get(":status")
        if status is None or not (
            len(status) == 3 and status.isascii() and status.isdigit() and status[0] == "1"
        ) or status == "101":
            raise CodecUsageError(f"encode_1xx_headers() needs a 1xx :status but 101, got {status!r}")
        if self.protocol == _HTTP10:
            return
        block = "".join(
            f"{name}: {value}\r\n"
            for name, value in headers
            if name[0] != ":" and name not in _INFORMATIONAL_SKIP
        )
        self._sink((_status_line(int(status)) + block + "\r\n").encode("latin-1"))
        if status == "100":
            self._sent_100 = True

    def encode_100_continue(self) -> None:
        if self._started or self._sent_100 or self.protocol == _HTTP10:
            return
        self._sent_100 = True
        self._sink(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _on_encode_complete(self) -> None:
        self._conn._on_response_complete(self)

    def __repr__(self) -> str:
        return (
            f"<ResponseEncoderImpl {self.protocol} started={self._started} "
            f"complete={self._complete} close={self._close}>"
        )


class RequestEncoderImpl(_StreamEncoderBase, RequestEncoder):
    """The request side of one client stream; created by :meth:`ClientConnectionImpl.new_stream`."""

    __slots__ = ("method", "is_head_request", "is_connect_request", "upgrade")

    def __init__(self, conn: "ClientConnectionImpl") -> None:
        self._init_encoder(conn)
        self.method = ""
        self.is_head_request = False
        self.is_connect_request = False
        self.upgrade = False

    # encode_headers() is C (see bind_codec at the end of this module): the
    # common request, whole, through _http1.encode_request.

    def _encode_headers_general(self, headers: HeaderMap, end_stream: bool) -> None:
        """encode_headers() for what its C method leaves: CONNECT, hop-by-hop fields, unusual pseudo-headers."""
        if self._started:
            raise CodecUsageError("encode_headers() called twice")
        method = headers._get(":method")
        if not method or method.strip(_TCHAR):
            raise CodecUsageError(f"request headers need a valid :method, got {method!r}")
        authority = headers._get(":authority")
        if authority is None:
            authority = headers._get("host")
        is_connect = method == "CONNECT"
        target = authority if is_connect else headers._get(":path")
        # The request target goes in the request line: visible ASCII only.
        if not target or not target.isascii() or not target.isprintable() or " " in target:
            raise CodecUsageError(f"request headers need a valid :path, got {target!r}")
        if authority is None:
            raise CodecUsageError("HTTP/1.1 requests need :authority (the Host field)")
        if authority.strip(_AUTHORITY_CHARS):
            raise CodecUsageError(f"invalid :authority {authority!r}")
        self._started = True
        self.method = method
        self.is_head_request = method == "HEAD"
        self.is_connect_request = is_connect
        names = headers._names
        values = headers._values
        n = len(names)
        start = 0
        while start < n and names[start][0] == ":":
            start += 1
        line = f"{method} {target} HTTP/1.1\r\nhost: {authority}\r\n"
        upgrade_value = None
        if not _REQUEST_ENCODE_SKIP.isdisjoint(names):
            kept_names = []
            kept_values = []
            connection = []
            for name, value in zip(names[start:], values[start:]):
                if name not in _REQUEST_ENCODE_SKIP:
                    kept_names.append(name)
                    kept_values.append(value)
                elif name == "connection":
                    connection.append(value)
                elif name == "upgrade" and upgrade_value is None:
                    upgrade_value = value
            names, values, start = kept_names, kept_values, 0
            tokens = _tokens(connection)
            self._close = "close" in tokens
            if upgrade_value is not None and "upgrade" in tokens:
                self.upgrade = True
        # (The pseudo-headers before ``start`` cannot match a field name.)
        tail = ""
        if self.upgrade or is_connect:
            # The body, if any, is a tunnel: raw bytes.
            self._mode = _MODE_RAW
            if self.upgrade:
                tail = f"connection: upgrade\r\nupgrade: {upgrade_value}\r\n"
        elif "content-length" in names:
            self._mode = _MODE_LENGTH
            self._remaining = _checked_length(names, values)
        elif end_stream:
            self._mode = _MODE_LENGTH
            if method not in _BODILESS_METHODS:
                tail = "content-length: 0\r\n"
        else:
            self._mode = _MODE_CHUNKED
            tail = "transfer-encoding: chunked\r\n"
        if self._close:
            tail += "connection: close\r\n"
        self._sink((line + _serialize_fields(names[start:], values[start:]) + tail + "\r\n").encode("latin-1"))
        if end_stream:
            self._complete = True
            self._conn._on_request_complete(self)

    def _on_encode_complete(self) -> None:
        self._conn._on_request_complete(self)

    def __repr__(self) -> str:
        return f"<RequestEncoderImpl {self.method} started={self._started} complete={self._complete}>"


# Connections


class ServerConnectionImpl(_ConnectionBase, ServerConnection):
    """The downstream HTTP/1.1 codec.

    Args:
        callbacks: the owner (:class:`ServerConnectionCallbacks`):
            ``new_stream(encoder)`` and ``on_protocol_error(error, encoder)``.
        sink: called with every serialized response piece.
        settings: limits and switches; Envoy's defaults when None.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_callbacks", "_stream", "_decoder", "_eof")

    def __init__(
        self,
        callbacks: ServerConnectionCallbacks,
        sink: Sink,
        settings: Optional[Http1Settings] = None,
    ) -> None:
        _ConnectionBase.__init__(self, sink, settings, server=True)
        self._callbacks = callbacks
        self._stream: Optional[ResponseEncoderImpl] = None
        self._decoder: Optional[RequestDecoder] = None
        self._eof = False

    # ServerConnection

    @property
    def stream(self) -> Optional[ResponseEncoderImpl]:
        """The current request's encoder, from its headers until its response ends."""
        return self._stream

    @property
    def partial_head(self) -> bool:
        # (Empty lines before a request line are not a request: RFC 9112 section 2.2.)
        return self._state == _HEAD and not self.paused and bool(self._pending.lstrip(b"\r\n"))

    def partial_head_encoder(self) -> ResponseEncoderImpl:
        return ResponseEncoderImpl(self, _HTTP11, keep_alive=False)

    def resume(self) -> None:
        if self.paused or self._processing or self._state >= _STOP:
            return
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            self._scan_from = 0
            self._run(data)

    def dispatch_eof(self) -> None:
        if self._state >= _STOP or self._eof:
            return
        if self._processing:
            raise CodecUsageError("dispatch_eof() called from inside a codec callback")
        self._eof = True
        state = self._state
        if state == _TUNNEL:
            self._run_guarded(self._end_tunnel)
        elif state == _HEAD:
            if not self.paused:
                # Between requests: nothing more will come (a partial head is dropped).
                self._closed_after_eof()
            # Else a response is pending: pipelined requests already received
            # are still answered, then the connection closes.
        else:
            self._run_guarded(self._incomplete_request)

    def _closed_after_eof(self) -> None:
        self._pending.clear()
        self.should_close = True
        if self._state < _STOP:
            self._state = _CLOSED

    def _process(self, buf: bytes) -> None:
        self._parse(buf)
        if self._eof and self._state == _HEAD and not self.paused and self._stream is None:
            self._closed_after_eof()

    def _end_tunnel(self) -> None:
        self._end_message(None)

    def _incomplete_request(self) -> None:
        raise CodecProtocolError("connection closed before the request ended", 400, "http1.premature_eof")

    def close(self) -> None:
        if self._state < _STOP:
            self._state = _CLOSED
        self._pending.clear()
        self._body_parts.clear()
        self.paused = False
        self._decoder = None

    # Input

    # dispatch() is C (see bind_codec at the end of this module): a read that
    # is one whole bodiless request the scanner takes opens its stream there,
    # through _start_stream; every other read goes to _dispatch, the parse loop.

    def _on_head(self, head: bytes) -> None:
        common = _http1.parse_request(head, self._max_head_count, self._max_head_bytes)
        if common is not None:
            # The common request, whole in C (csrc/http1_module.c): HTTP/1.1,
            # origin form, one valid Host, nothing special but a Content-Length
            # and a simple Connection.
            names, values, keep_alive, length = common
            self._start_stream(
                _trusted_headers(names, values), values[0], True, keep_alive, False, False, False, False, length
            )
            return
        scanned = self._scan_head(head, 0)
        if scanned is not None:
            parts, http11, special = scanned
            method = parts[0]
            target = parts[1]
            names = parts[2::2]
            values = parts[3::2]
        else:
            method, target, http11, names, values = self._parse_request_head(head)
            special = -1  # not known: look
        if not http11 and not self._settings.accept_http_10:
            # Envoy refuses it here, in the codec: a protocol error answered by
            # a fresh HTTP/1.1 encoder, before the method (HEAD?) counts.
            raise CodecProtocolError("Upgrade required for HTTP/1.0 or HTTP/0.9", 426, "low_version")

        host = None
        length = 0
        chunked = False
        keep_alive = http11
        upgrade = False
        expect_continue = False
        if special >= 0 and not special & ~_FAST_REQUEST_SPECIAL:
            # The scanner says: at most one Host, one Content-Length and one
            # Connection, nothing else the codec handles (the common request).
            if special & _SPECIAL_HOST:
                host = _pop_host(names, values)
            if special & _SPECIAL_CONTENT_LENGTH:
                length = int(values[names.index("content-length")])  # digits only: scanned
            if special & _SPECIAL_CONNECTION:
                keep_alive = _pop_connection(names, values, http11, keep_alive)
        elif special and not _REQUEST_SPECIAL.isdisjoint(names):
            if "host" in names:
                host = _pop_host(names, values)
            if "transfer-encoding" in names:
                codings = _tokens(_pop_all(names, values, "transfer-encoding"))
                if not http11:
                    # RFC 9112 section 6.1: an HTTP/1.0 message with
                    # Transfer-Encoding has faulty framing.
                    raise CodecProtocolError(
                        "Transfer-Encoding in an HTTP/1.0 request", 400, "http1.invalid_transfer_encoding"
                    )
                if not codings or codings[-1] != "chunked":
                    raise CodecProtocolError(
                        "Transfer-Encoding must end with chunked", 400, "http1.invalid_transfer_encoding"
                    )
                if len(codings) > 1:
                    raise CodecProtocolError(
                        f"unsupported transfer coding {', '.join(codings)!r}",
                        501,
                        "http1.invalid_transfer_encoding",
                    )
                if "content-length" in names:
                    raise CodecProtocolError(
                        "both Content-Length and Transfer-Encoding", 400, "http1.content_length_and_chunked_not_allowed"
                    )
                chunked = True
            elif "content-length" in names:
                # llhttp checked it: digits, no overflow, no second one.
                length = int(values[names.index("content-length")])
            connection: Tuple[str, ...] = ()
            if "connection" in names:
                i = names.index("connection")
                value = values[i].lower()
                del names[i]
                del values[i]
                if "connection" in names:
                    value = ",".join([value] + [v.lower() for v in _pop_all(names, values, "connection")])
                connection = (value,) if value in _SIMPLE_CONNECTION else tuple(_tokens([value]))
                if "close" in connection:
                    keep_alive = False
                elif not http11 and "keep-alive" in connection:
                    keep_alive = True
            if "upgrade" in names:
                upgrades = _pop_all(names, values, "upgrade")
                if "upgrade" in connection and upgrades[0].lower() != "h2c":
                    upgrade = True
                    names += ("upgrade", "connection")
                    values += (upgrades[0], "upgrade")
                elif "http2-settings" in names and "http2-settings" in connection:
                    # An h2c upgrade is refused by serving the request as
                    # HTTP/1.1 (Envoy does the same); its settings go too.
                    _pop_all(names, values, "http2-settings")
            if not _OTHER_HOP_BY_HOP.isdisjoint(names):
                for name in _OTHER_HOP_BY_HOP:
                    _pop_all(names, values, name)
            if http11 and "expect" in names:
                expect_continue = values[names.index("expect")].lower() == "100-continue"

        # The request target (RFC 9112 section 3.2) and the pseudo-headers.
        is_connect = method == "CONNECT"
        if target[:1] == "/" and not is_connect:
            if "#" in target:
                raise _fragment_error()
            if host is not None:
                pseudo_names = [":method", ":path", ":authority"]
                pseudo_values = [method, target, host]
            elif http11:
                raise _missing_host_error()
            else:
                pseudo_names = [":method", ":path"]
                pseudo_values = [method, target]
        elif is_connect:
            if not target or target.strip(_AUTHORITY_CHARS) or "@" in target:
                raise CodecProtocolError("CONNECT needs an authority-form target", 400, "http1.invalid_url")
            if chunked or length:
                raise CodecProtocolError("CONNECT request with a body", 400, "http1.body_disallowed")
            if "content-length" in names:
                _pop_all(names, values, "content-length")
            pseudo_names = [":method", ":authority"]
            pseudo_values = [method, target]
            upgrade = False
        else:
            path = self._other_target(method, target)
            if path is not target:
                # Absolute form: RFC 9112 section 3.2.2, the target's authority replaces Host.
                host, path = path
            if host is not None:
                pseudo_names = [":method", ":path", ":authority"]
                pseudo_values = [method, path, host]
            elif http11:
                raise _missing_host_error()
            else:
                pseudo_names = [":method", ":path"]
                pseudo_values = [method, path]
        if upgrade and chunked:
            raise CodecProtocolError("Upgrade request with a chunked body", 400, "http1.invalid_transfer_encoding")

        pseudo_names += names
        pseudo_values += values
        self._start_stream(
            _trusted_headers(pseudo_names, pseudo_values),
            method,
            http11,
            keep_alive,
            upgrade,
            is_connect,
            expect_continue,
            chunked,
            length,
        )

    def _start_stream(
        self,
        headers: HeaderMap,
        method: str,
        http11: bool,
        keep_alive: bool,
        upgrade: bool,
        is_connect: bool,
        expect_continue: bool,
        chunked: bool,
        length: int,
    ) -> None:
        """A request head is in: open its stream and deliver the headers."""
        encoder = ResponseEncoderImpl(
            self,
            _HTTP11 if http11 else _HTTP10,
            keep_alive and not self.should_close,
            upgrade,
            method == "HEAD",
            is_connect,
            expect_continue,
        )
        self._stream = encoder
        decoder = self._callbacks.new_stream(encoder)
        self._decoder = decoder
        if upgrade or is_connect:
            self._state = _TUNNEL
            decoder.decode_headers(headers, False)
        elif chunked or length:
            if chunked:
                self._state = _CHUNK_SIZE
            else:
                self._remaining = length
                self._state = _BODY
            decoder.decode_headers(headers, False)
        else:
            # The request ends with its headers (_message_complete_begin/_end, inlined).
            encoder._request_complete = True
            self.paused = True
            decoder.decode_headers(headers, True)
            if self._stream is None:
                self.paused = False

    def _parse_request_head(self, head: bytes) -> Tuple[str, str, bool, List[str], List[str]]:
        """The general path, for heads the scanner declines: llhttp decides.

        Returns ``(method, target, http11, names, values)``.
        """
        # The request line: exactly "method SP target SP HTTP/1.x" (llhttp
        # tolerates repeated spaces, other protocol names, a leading LF).
        eol = head.find(b"\r\n")
        if eol >= 9 and head.startswith(b" HTTP/1.1", eol - 9):
            http11 = True
        elif eol >= 9 and head.startswith(b" HTTP/1.0", eol - 9):
            http11 = False
        elif eol >= 9 and _OTHER_VERSION.fullmatch(head, eol - 9, eol):
            # Envoy's codec takes any other HTTP/d.d for HTTP/1.0 (so it is
            # answered 426 without accept_http_10); llhttp reads it as one.
            http11 = False
            head = head[: eol - 3] + b"1.0" + head[eol:]
        else:
            raise _refined_request_error(CodecProtocolError(f"malformed request line {head[:min(eol, 80)]!r}", 400), head)
        collector = self._collector
        try:
            parser = self._parse_with_llhttp(HttpRequestParser, head, "request")
        except CodecProtocolError as err:
            raise _refined_request_error(err, head) from None
        method = _METHODS.get(parser.get_method()) or parser.get_method().decode("ascii")
        url = collector.url
        if len(method) + len(url) + 10 != eol:
            # llhttp took a line with more than one space between its parts
            # (or a leading LF) for "method SP target SP version".
            raise CodecProtocolError(f"malformed request line {head[:min(eol, 80)]!r}", 400)
        names, values = _decode_fields(
            collector.names,
            collector.values,
            len(url),
            self._max_head_bytes,
            self._max_head_count,
            431,
            "headers",
        )
        return method, url.decode("latin-1"), http11, names, values

    def _other_target(self, method: str, target: str):
        """``*`` for OPTIONS (returned as is), or an absolute-form target as ``(authority, path)``."""
        if target == "*" and method == "OPTIONS":
            return target
        lowered = target[:8].lower()
        if self._settings.allow_absolute_url and (
            lowered.startswith("http://") or lowered.startswith("https://")
        ):
            rest = target[target.index("://") + 3 :]
            cut = len(rest)
            for sep in ("/", "?"):
                i = rest.find(sep)
                if 0 <= i < cut:
                    cut = i
            authority, path = rest[:cut], rest[cut:]
            if not authority or authority.strip(_AUTHORITY_CHARS):
                raise CodecProtocolError(f"invalid absolute URL {target[:80]!r}", 400, "http1.invalid_url")
            if not path:
                path = "/"
            elif path[0] == "?":
                path = "/" + path
            if "#" in path:
                raise _fragment_error()
            return authority, path
        raise CodecProtocolError(f"invalid request target {target[:80]!r}", 400, "http1.invalid_url")

    def _deliver_data(self, data: bytes, end_stream: bool) -> None:
        decoder = self._decoder
        if decoder is not None and self._state != _CLOSED:
            decoder.decode_data(data, end_stream)

    def _deliver_trailers(self, trailers: HeaderMap) -> None:
        decoder = self._decoder
        if decoder is not None and self._state != _CLOSED:
            decoder.decode_trailers(trailers)

    def _message_complete_begin(self) -> None:
        # Marked before the last event is delivered, so that a response
        # completed from inside that callback is not taken for an early one.
        stream = self._stream
        if stream is not None:
            stream._request_complete = True
            self.paused = not stream._complete

    def _message_complete_end(self) -> None:
        if self._stream is None:
            self.paused = False

    # _on_response_complete(encoder) is C (see bind_codec at the end of this
    # module): the stream ends, then the connection closes or reads on.

    def _fail(self, err: CodecProtocolError) -> None:
        self._state = _ERROR
        self._pending.clear()
        self._body_parts.clear()
        self.paused = False
        self.should_close = True
        stream = self._stream
        if stream is None:
            encoder: Optional[ResponseEncoderImpl] = ResponseEncoderImpl(self, _HTTP11, keep_alive=False)
        elif not stream._started:
            encoder = stream
            encoder._close = True
        else:
            encoder = None
        self._stream = encoder
        self._decoder = None
        self._callbacks.on_protocol_error(err, encoder)

    def __repr__(self) -> str:
        return (
            f"<ServerConnectionImpl state={self._state} paused={self.paused} "
            f"should_close={self.should_close} pending={len(self._pending)}>"
        )


class ClientConnectionImpl(_ConnectionBase, ClientConnection):
    """The upstream HTTP/1.1 codec: one request at a time.

    Args:
        callbacks: the owner (:class:`ConnectionCallbacks`):
            ``on_protocol_error(error)``.
        sink: called with every serialized request piece.
        settings: limits and switches; Envoy's defaults when None.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_callbacks", "_stream", "_decoder", "_response_close", "_deferred_head")

    def __init__(
        self,
        callbacks: ConnectionCallbacks,
        sink: Sink,
        settings: Optional[Http1Settings] = None,
    ) -> None:
        _ConnectionBase.__init__(self, sink, settings, server=False)
        self._callbacks = callbacks
        self._stream: Optional[RequestEncoderImpl] = None
        self._decoder: Optional[ResponseDecoder] = None
        self._response_close = False
        self._deferred_head = False

    @property
    def stream(self) -> Optional[RequestEncoderImpl]:
        """The active request's encoder, until its response ends."""
        return self._stream

    # new_stream(response_decoder) is C (see bind_codec at the end of this
    # module); it hands the requests it refuses to this method.

    def _new_stream_general(self, response_decoder: ResponseDecoder) -> RequestEncoderImpl:
        """new_stream(), whose refusals (CodecUsageError) are made here."""
        if self._state == _ERROR:
            raise CodecUsageError("new_stream() after a protocol error")
        if self._stream is not None:
            raise CodecUsageError("new_stream() while a request is active (no pipelining)")
        if self.should_close or self._state == _CLOSED:
            raise CodecUsageError("new_stream() on a connection that must close")
        encoder = RequestEncoderImpl(self)
        self._stream = encoder
        self._decoder = response_decoder
        self._response_close = False
        if self._processing:
            # Started from a callback of the previous response: bytes already
            # in hand arrived before this request was written and cannot be
            # its response, so they are still read as unsolicited.
            self._deferred_head = True
        else:
            self._state = _HEAD
        return encoder

    def dispatch_eof(self) -> None:
        if self._state >= _STOP:
            return
        if self._processing:
            raise CodecUsageError("dispatch_eof() called from inside a codec callback")
        self.should_close = True
        state = self._state
        if state == _TUNNEL:
            self._run_guarded(self._end_close_delimited)
            if self._state < _STOP:
                self._state = _CLOSED
        elif state == _IDLE:
            self._pending.clear()
            self._state = _CLOSED
        else:
            self._run_guarded(self._premature_close)

    def _end_close_delimited(self) -> None:
        self._end_message(None)

    def _premature_close(self) -> None:
        # As Envoy's codec: a close before any byte of the response ends the
        # exchange (a connection termination, 503); a close inside the
        # response is a malformed response (a protocol error, 502).
        if self._state == _HEAD and not self._pending:
            raise CodecProtocolError("upstream connection closed before the response", 503, "upstream_connection_termination")
        raise CodecProtocolError("upstream connection closed inside the response", 502, "http1.premature_eof")

    # Input

    # dispatch() is C (see bind_codec at the end of this module): the start
    # of a plain response, whole or with part of its Content-Length body, is
    # delivered there; every other read goes to _dispatch, the parse loop.

    def _on_head(self, head: bytes) -> None:
        stream = self._stream
        assert stream is not None, "a response head is only parsed with a request out"
        if not (stream.is_head_request or stream.upgrade or stream.is_connect_request) and self._on_common_head(
            stream, head
        ):
            return
        scanned = self._scan_head(head, 1)
        if scanned is not None:
            parts, http11, special = scanned
            status = self._scanned_status
            names = parts[0::2]
            values = parts[1::2]
        else:
            status, http11, names, values = self._parse_response_head(head)
            special = -1  # not known: look
        keep_alive = http11
        chunked = False
        length: Optional[int] = None
        upgrade_value = None
        connection: Tuple[str, ...] = ()
        if special >= 0 and not special & ~_FAST_RESPONSE_SPECIAL:
            # At most one Content-Length and one Connection (the common response).
            if special & _SPECIAL_CONTENT_LENGTH:
                length = int(values[names.index("content-length")])  # digits only: scanned
            if special & _SPECIAL_CONNECTION:
                keep_alive = _pop_connection(names, values, http11, keep_alive)
        elif special and not _RESPONSE_SPECIAL.isdisjoint(names):
            present = _RESPONSE_SPECIAL.intersection(names)
            if "transfer-encoding" in present:
                codings = _tokens(_pop_all(names, values, "transfer-encoding"))
                if codings != ["chunked"]:
                    raise CodecProtocolError(
                        f"unsupported transfer coding {', '.join(codings)!r}",
                        502,
                        "http1.invalid_transfer_encoding",
                    )
                if not http11:
                    raise CodecProtocolError(
                        "Transfer-Encoding in an HTTP/1.0 response", 502, "http1.invalid_transfer_encoding"
                    )
                chunked = True
            if "content-length" in present:
                if chunked:
                    raise CodecProtocolError(
                        "both Content-Length and Transfer-Encoding", 502, "http1.content_length_not_allowed"
                    )
                length = int(values[names.index("content-length")])
            if "connection" in present:
                value = ",".join(_pop_all(names, values, "connection")).lower()
                connection = (value,) if value in _SIMPLE_CONNECTION else tuple(_tokens([value]))
                if "close" in connection:
                    keep_alive = False
                elif not http11 and "keep-alive" in connection:
                    keep_alive = True
            if "upgrade" in present:
                upgrade_value = _pop_all(names, values, "upgrade")[0]
            if not _OTHER_HOP_BY_HOP.isdisjoint(present):
                for name in _OTHER_HOP_BY_HOP:
                    _pop_all(names, values, name)

        if status < 200 and status != 101:
            if chunked or length:
                raise CodecProtocolError(
                    "a 1xx response cannot have a body", 502, "http1.content_length_not_allowed"
                )
            if length is not None:
                _pop_all(names, values, "content-length")
            decode_1xx = getattr(self._decoder, "decode_1xx_headers", None)
            if decode_1xx is not None:
                decode_1xx(_trusted_headers([":status"] + names, [str(status)] + values))
            return  # the final response is still to come

        self._response_close = not keep_alive or stream._close
        decoder = self._decoder
        if status == 101:
            if not stream.upgrade:
                raise CodecProtocolError("unexpected 101 Switching Protocols", 502)
            self._response_close = True
            if "upgrade" not in connection or upgrade_value is None:
                # It names no protocol, so nothing switches: a final response
                # without a body, after which the connection closes (as Envoy).
                self._end_with_headers(_trusted_headers([":status"] + names, ["101"] + values))
                return
            names += ("upgrade", "connection")
            values += (upgrade_value, "upgrade")
            self._state = _TUNNEL
            decoder.decode_headers(_trusted_headers([":status"] + names, ["101"] + values), False)
            return
        if status == 204:
            if chunked or length:
                raise CodecProtocolError(
                    "a 204 response cannot have a body", 502, "http1.content_length_not_allowed"
                )
            if length is not None:
                _pop_all(names, values, "content-length")
        headers = _trusted_headers([":status"] + names, [str(status)] + values)
        if stream.is_connect_request and status < 300:
            if chunked:
                raise CodecProtocolError(
                    "chunked response to CONNECT", 502, "http1.invalid_transfer_encoding"
                )
            self._response_close = True
            self._state = _TUNNEL
            decoder.decode_headers(headers, False)
            return
        if stream.upgrade or stream.is_connect_request:
            # The request side may have sent tunnel bytes that were refused.
            self._response_close = True
        if stream.is_head_request or status == 304 or status == 204:
            self._end_with_headers(headers)
        elif chunked:
            self._state = _CHUNK_SIZE
            decoder.decode_headers(headers, False)
        elif length is not None:
            if length:
                self._remaining = length
                self._state = _BODY
                decoder.decode_headers(headers, False)
            else:
                self._end_with_headers(headers)
        else:
            # Neither length nor chunked: the body ends when the upstream closes.
            self._response_close = True
            self._state = _TUNNEL
            decoder.decode_headers(headers, False)

    def _on_common_head(self, stream: RequestEncoderImpl, head: bytes) -> bool:
        """The common final response to a plain request, whole in C; False to take the general path.

        Common (csrc/http1_module.c): status 200-599, framed by one
        Content-Length, one ``chunked`` or the close, nothing special but a
        simple Connection; a 204 without a body.
        """
        common = _http1.parse_response(head, self._max_head_count, self._max_head_bytes)
        if common is None:
            return False
        status, names, values, keep_alive, length, chunked = common
        if status == 204:
            if chunked or length > 0:
                return False  # the general path refuses it
            if length == 0:
                _pop_all(names, values, "content-length")
        self._response_close = not keep_alive or stream._close
        headers = _trusted_headers(names, values)
        if status == 304 or status == 204:
            self._end_with_headers(headers)
        elif chunked:
            self._state = _CHUNK_SIZE
            self._decoder.decode_headers(headers, False)
        elif length > 0:
            self._remaining = length
            self._state = _BODY
            self._decoder.decode_headers(headers, False)
        elif length == 0:
            self._end_with_headers(headers)
        else:
            # Neither length nor chunked: the body ends when the upstream closes.
            self._response_close = True
            self._state = _TUNNEL
            self._decoder.decode_headers(headers, False)
        return True

    def _parse_response_head(self, head: bytes) -> Tuple[int, bool, List[str], List[str]]:
        """The general path, for heads the scanner declines: llhttp decides.

        Returns ``(status, http11, names, values)``.
        """
        if head[:9] != b"HTTP/1.1 " and head[:9] != b"HTTP/1.0 ":
            raise CodecProtocolError(f"malformed status line {head[:80]!r}", 502)
        collector = self._collector
        parser = self._parse_with_llhttp(HttpResponseParser, head, "response")
        status = parser.get_status_code()
        if status < 100:
            raise CodecProtocolError(f"invalid status {status}", 502)
        names, values = _decode_fields(
            collector.names,
            collector.values,
            0,
            self._max_head_bytes,
            self._max_head_count,
            502,
            "headers",
        )
        return status, head[7] == 49, names, values  # 49: the "1" of HTTP/1.1

    def _end_with_headers(self, headers: HeaderMap) -> None:
        self._message_complete_begin()
        self._decoder.decode_headers(headers, True)
        self._message_complete_end()

    def _deliver_data(self, data: bytes, end_stream: bool) -> None:
        decoder = self._decoder
        if decoder is not None:
            decoder.decode_data(data, end_stream)

    def _deliver_trailers(self, trailers: HeaderMap) -> None:
        decoder = self._decoder
        if decoder is not None:
            decoder.decode_trailers(trailers)

    def _message_complete_begin(self) -> None:
        # The response is complete once its last event is delivered; the
        # connection's fate is settled before the owner sees it, so that a
        # request started from that callback finds it.
        stream = self._stream
        close = self._response_close or (stream is not None and not stream._complete)
        self._stream = None
        if close:
            self.should_close = True
            self._state = _CLOSED
        else:
            self._state = _IDLE

    def _message_complete_end(self) -> None:
        self._decoder = None if self._stream is None else self._decoder

    def _on_request_complete(self, encoder: RequestEncoderImpl) -> None:
        pass  # the client reads the response whenever it comes; nothing waits on the request's end

    def _process(self, buf: bytes) -> None:
        self._parse(buf)
        if self._deferred_head:
            self._deferred_head = False
            if self._state == _IDLE and self._stream is not None:
                self._state = _HEAD

    def _fail(self, err: CodecProtocolError) -> None:
        self._state = _ERROR
        self._pending.clear()
        self._body_parts.clear()
        self.should_close = True
        self._stream = None
        self._decoder = None
        self._callbacks.on_protocol_error(err)

    def __repr__(self) -> str:
        return f"<ClientConnectionImpl state={self._state} should_close={self.should_close}>"


# The per-request steps of the common exchange, in C (csrc/http1_codec.c):
# the two dispatch() methods and the encoders' encode_headers() and
# encode_data().  Each takes the common case and hands the rest to the
# general method named in its docstring.
_http1.bind_codec(
    ServerConnectionImpl,
    ClientConnectionImpl,
    ResponseEncoderImpl,
    RequestEncoderImpl,
    HeaderMap,
    {
        "HEAD": _HEAD,
        "BODY": _BODY,
        "IDLE": _IDLE,
        "CLOSED": _CLOSED,
        "ERROR": _ERROR,
        "MODE_NONE": _MODE_NONE,
        "MODE_LENGTH": _MODE_LENGTH,
        "MODE_CHUNKED": _MODE_CHUNKED,
        "MODE_RAW": _MODE_RAW,
        "HTTP11": _HTTP11,
        "STATUS_BY_VALUE": _STATUS_BY_VALUE,
        "CodecProtocolError": CodecProtocolError,
        "TRUSTED_HEADERS": _trusted_headers,
    },
)
for _cls in (ServerConnectionImpl, ClientConnectionImpl, ResponseEncoderImpl, RequestEncoderImpl):
    abc.update_abstractmethods(_cls)  # dispatch(), encode_headers() and encode_data() are the interfaces'
del _cls
