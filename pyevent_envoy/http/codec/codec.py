"""The HTTP codec interfaces (Envoy's ``envoy/http/codec.h``).

A codec turns one connection's bytes into streams and back, without doing
I/O: the owner feeds it what it read (``dispatch``) and gives it a *sink*, a
callable that takes the serialized bytes to write.  Bytes in, callbacks out.

Who implements what:

- the codec implements :class:`ServerConnection`, :class:`ClientConnection`
  and their stream encoders (:class:`ResponseEncoder`, :class:`RequestEncoder`);
- the owner (the connection manager downstream, the connection pool
  upstream) implements the callbacks and decoders, duck-typed as the
  :class:`typing.Protocol` classes below describe; nothing needs to inherit.

Every method runs on the thread that owns the connection.  Protocol errors
caused by the peer are never raised at the owner: the codec reports them
through ``on_protocol_error`` on the connection callbacks, because they can be
found outside :meth:`ServerConnection.dispatch` too (a pipelined request is
parsed when the response before it completes, inside an ``encode_*`` call).
Misuse by the owner raises :class:`~pyevent_envoy.http.codec.errors.CodecUsageError`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Callable, Optional, Protocol

from pyevent_envoy.http.codec.errors import CodecProtocolError
from pyevent_envoy.http.header_map import HeaderMap

__all__ = [
    "ClientConnection",
    "ConnectionCallbacks",
    "Http1Settings",
    "RequestDecoder",
    "RequestEncoder",
    "ResponseDecoder",
    "ResponseEncoder",
    "ServerConnection",
    "ServerConnectionCallbacks",
    "Sink",
    "StreamEncoder",
]

#: Where a codec writes serialized bytes: called once per ``encode_*`` call,
#: never with an empty buffer.
Sink = Callable[[bytes], None]


@dataclasses.dataclass(frozen=True)
class Http1Settings:
    """HTTP/1.1 codec settings; defaults are Envoy's.

    Attributes:
        max_request_headers_kb: request header bytes allowed (URL plus every
            field's name and value, as Envoy counts them); more is a 431.
            Envoy's HCM ``max_request_headers_kb`` default, 60 KiB.
        max_headers_count: request header fields allowed; more is a 431.
            Envoy's ``common_http_protocol_options.max_headers_count``, 100.
        max_response_headers_kb: the same limit for upstream responses
            (a protocol error, answered 502).
        max_response_headers_count: the same count for upstream responses.
        enable_trailers: deliver chunked trailers to decoders (otherwise they
            are parsed, checked and dropped) and encode the owner's trailers.
        allow_absolute_url: accept absolute-form request targets
            (``GET http://host/path``), whose authority replaces ``Host``
            (RFC 9112 section 3.2.2).  Envoy's ``allow_absolute_url``.
        accept_http_10: accept HTTP/1.0 requests; otherwise (Envoy's
            default) each is a protocol error answered 426 ``Upgrade
            Required``.  Envoy's ``http_protocol_options.accept_http_10``.
        auto_resume: when a response completes while pipelined requests wait,
            parse them at once, inside the ``encode_*`` call that completed
            it.  False leaves that to the owner's :meth:`ServerConnection.resume`
            (for instance on the next loop iteration, as Envoy does by
            re-enabling reads).

    .. versionadded:: 0.1.0
    """

    max_request_headers_kb: int = 60
    max_headers_count: int = 100
    max_response_headers_kb: int = 60
    max_response_headers_count: int = 100
    enable_trailers: bool = True
    allow_absolute_url: bool = True
    accept_http_10: bool = False
    auto_resume: bool = True

    def __post_init__(self) -> None:
        for field in (
            "max_request_headers_kb",
            "max_headers_count",
            "max_response_headers_kb",
            "max_response_headers_count",
        ):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Http1Settings.{field} must be a positive int, got {value!r}")


# Owner-side interfaces


class RequestDecoder(Protocol):
    """Receives one request, from the server codec (the connection manager's stream).

    For each request the codec calls :meth:`decode_headers` once, then
    :meth:`decode_data` for body bytes as they arrive (never the whole body
    buffered), and ends with either ``end_stream=True`` or
    :meth:`decode_trailers`.  A tunnel (Upgrade, CONNECT) delivers every byte
    after the headers through :meth:`decode_data`, ended by the peer's close.
    """

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> None: ...

    def decode_data(self, data: bytes, end_stream: bool) -> None: ...

    def decode_trailers(self, trailers: HeaderMap) -> None: ...


class ResponseDecoder(Protocol):
    """Receives one response, from the client codec (the router's upstream request).

    As :class:`RequestDecoder`, plus ``decode_1xx_headers(headers)`` for
    informational responses (100 Continue, 103 Early Hints), called only if
    the decoder defines it; 1xx responses are skipped otherwise.
    """

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> None: ...

    def decode_data(self, data: bytes, end_stream: bool) -> None: ...

    def decode_trailers(self, trailers: HeaderMap) -> None: ...


class ServerConnectionCallbacks(Protocol):
    """What a server codec calls on its owner."""

    def new_stream(self, encoder: "ResponseEncoder") -> RequestDecoder:
        """A request's headers were parsed: return its decoder.

        ``encoder`` is where the response goes; its attributes describe the
        request (``protocol``, ``keep_alive``, ``upgrade``...).  The decoder's
        :meth:`~RequestDecoder.decode_headers` is called right after.
        """
        ...

    def on_protocol_error(
        self, error: CodecProtocolError, encoder: Optional["ResponseEncoder"]
    ) -> None:
        """The peer broke HTTP/1.1; the connection is now terminal.

        ``encoder`` is where to send the error reply (``error.status``; the
        reply always closes the connection), or None when a response has
        already started and the only thing left is to close.  It is the
        current stream's encoder when the error hit a request whose headers
        were delivered (reset that stream), else a fresh one.
        """
        ...


class ConnectionCallbacks(Protocol):
    """What a client codec calls on its owner."""

    def on_protocol_error(self, error: CodecProtocolError) -> None:
        """The upstream broke HTTP/1.1 or closed mid-response; the connection is terminal.

        ``error.status`` is 502 for a malformed response, 503 for a premature
        close (Envoy's ``UPE`` and ``UC``).  Reset the active stream, close
        the connection.
        """
        ...


# Codec-side interfaces


class StreamEncoder(abc.ABC):
    """Serializes one message to the connection's sink (Envoy's ``StreamEncoder``).

    Call :meth:`encode_headers` once, then :meth:`encode_data` any number of
    times, ending with ``end_stream=True`` (or :meth:`encode_trailers`).
    The codec picks the framing: Content-Length when the headers carry one,
    chunked when the length is unknown and the peer speaks HTTP/1.1, else
    the message ends when the connection closes.  Hop-by-hop headers in the
    map (Connection, Keep-Alive, Transfer-Encoding...) are the codec's to
    write and are skipped.
    """

    __slots__ = ()

    @abc.abstractmethod
    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> None:
        """Write the start line and header fields.

        Raises:
            CodecUsageError: headers already sent, or a required pseudo-header
                is missing or malformed.
        """

    @abc.abstractmethod
    def encode_data(self, data: bytes, end_stream: bool) -> None:
        """Write body bytes (``b""`` with ``end_stream=True`` just ends the message).

        Raises:
            CodecUsageError: before the headers, after the end, or more (or,
                at the end, fewer) bytes than the Content-Length announced.
        """

    @abc.abstractmethod
    def encode_trailers(self, trailers: HeaderMap) -> None:
        """End the message with trailer fields (dropped unless the body is chunked)."""


class ResponseEncoder(StreamEncoder):
    """The response side of one server stream.

    The attributes describe the request; they are set before ``new_stream``.

    Attributes:
        protocol: ``"HTTP/1.0"`` or ``"HTTP/1.1"``.
        keep_alive: the request allows the connection to carry another one.
        upgrade: an Upgrade request (``upgrade`` and ``connection: upgrade``
            kept in its headers); the request side is a tunnel.
        is_head_request: the method was HEAD.
        is_connect_request: the method was CONNECT.
        expect_continue: an HTTP/1.1 request with ``Expect: 100-continue``;
            answer with :meth:`encode_100_continue` or the final response.
    """

    __slots__ = ()

    @abc.abstractmethod
    def encode_1xx_headers(self, headers: HeaderMap) -> None:
        """Write an informational response (``:status`` 100-199 but not 101).

        Nothing is written to an HTTP/1.0 client (RFC 9110 section 15.2).
        """

    @abc.abstractmethod
    def encode_100_continue(self) -> None:
        """Write ``HTTP/1.1 100 Continue`` once, if the response has not started."""

    @property
    @abc.abstractmethod
    def started_response(self) -> bool:
        """True once :meth:`encode_headers` has been called."""


class RequestEncoder(StreamEncoder):
    """The request side of one client stream.

    The headers need ``:method``, ``:path`` (not for CONNECT) and
    ``:authority``, which becomes the ``Host`` field.
    """

    __slots__ = ()


class ServerConnection(abc.ABC):
    """A downstream HTTP/1.1 connection: parses requests, serializes responses."""

    __slots__ = ()

    @abc.abstractmethod
    def dispatch(self, data: bytes) -> None:
        """Feed bytes read from the peer.

        Decoder callbacks run inside this call (the owner may encode from
        them).  A protocol error goes to ``on_protocol_error``, not raised.
        After the connection closed normally (``should_close``), bytes are
        ignored.

        Raises:
            CodecUsageError: after a protocol error, or from inside a callback.
        """

    @abc.abstractmethod
    def dispatch_eof(self) -> None:
        """The peer closed its side: end a tunnel, stop reading requests."""

    @abc.abstractmethod
    def resume(self) -> None:
        """Parse input held while a response was pending (see ``auto_resume``)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop decoding: drop held input; no callback fires after this."""

    @property
    @abc.abstractmethod
    def paused(self) -> bool:
        """A complete request awaits its response; input is held, not parsed.

        The owner should stop reading the socket meanwhile (Envoy disables
        reads): bytes dispatched while paused are buffered without limit.
        """

    @property
    @abc.abstractmethod
    def should_close(self) -> bool:
        """Close the connection once written bytes are flushed (checked after each response)."""

    @property
    @abc.abstractmethod
    def partial_head(self) -> bool:
        """Part of a request head has arrived, not all of it (no stream exists for it yet)."""

    @abc.abstractmethod
    def partial_head_encoder(self) -> ResponseEncoder:
        """An encoder that stands for the request of :attr:`partial_head`, for the owner's records.

        Envoy's stream begins with a request's first byte; an owner that
        logs every request uses this one when the connection ends before
        the head does.  Nothing can be sent on it.
        """


class ClientConnection(abc.ABC):
    """An upstream HTTP/1.1 connection: one request at a time, no pipelining."""

    __slots__ = ()

    @abc.abstractmethod
    def new_stream(self, response_decoder: ResponseDecoder) -> RequestEncoder:
        """Start a request whose response goes to ``response_decoder``.

        Raises:
            CodecUsageError: a request is already active, or the connection
                cannot be reused.
        """

    @abc.abstractmethod
    def dispatch(self, data: bytes) -> None:
        """Feed bytes read from the upstream."""

    @abc.abstractmethod
    def dispatch_eof(self) -> None:
        """The upstream closed: ends a close-delimited body, else a premature close."""

    @property
    @abc.abstractmethod
    def should_close(self) -> bool:
        """The connection must not carry another request."""
