"""Test doubles for the HTTP/1.1 codec: owners that record what the codec tells them.

Events are tuples, so a test compares whole sequences:
``("new_stream",)``, ``("headers", [(name, value), ...], end_stream)``,
``("data", bytes, end_stream)``, ``("trailers", [...])``, ``("1xx", [...])``,
``("error", status, details)``.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Tuple

from pyevent_envoy.http import HeaderMap
from pyevent_envoy.http.codec import (
    ClientConnectionImpl,
    Http1Settings,
    ServerConnectionImpl,
)


class RecordingDecoder:
    """A request or response decoder that appends what it receives to a shared list."""

    def __init__(self, events: list) -> None:
        self.events = events

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> None:
        self.events.append(("headers", list(headers), end_stream))

    def decode_data(self, data: bytes, end_stream: bool) -> None:
        assert type(data) is bytes
        self.events.append(("data", data, end_stream))

    def decode_trailers(self, trailers: HeaderMap) -> None:
        self.events.append(("trailers", list(trailers)))

    def decode_1xx_headers(self, headers: HeaderMap) -> None:
        self.events.append(("1xx", list(headers)))


class ServerOwner:
    """Server connection callbacks plus the sink: records events, errors and written bytes."""

    def __init__(self, settings: Optional[Http1Settings] = None) -> None:
        self.events: List[tuple] = []
        self.encoders: list = []
        self.errors: list = []
        self.written: List[bytes] = []
        # HTTP/1.0 accepted unless a test says otherwise: most cases here test
        # how it is parsed and answered, not Envoy's default refusal of it.
        if settings is None:
            settings = Http1Settings(accept_http_10=True)
        self.codec = ServerConnectionImpl(self, self.written.append, settings)

    # ServerConnectionCallbacks
    def new_stream(self, encoder: Any) -> RecordingDecoder:
        self.encoders.append(encoder)
        self.events.append(("new_stream",))
        return RecordingDecoder(self.events)

    def on_protocol_error(self, error: Any, encoder: Any) -> None:
        self.errors.append((error, encoder))
        self.events.append(("error", error.status, error.details))

    @property
    def output(self) -> bytes:
        return b"".join(self.written)

    def respond(self, status: int = 200, body: bytes = b"ok", headers: Iterable = (), index: int = -1) -> None:
        """Answer a stream with a Content-Length response."""
        encoder = self.encoders[index]
        fields = [(":status", str(status)), ("content-length", str(len(body)))] + list(headers)
        encoder.encode_headers(HeaderMap(fields), not body)
        if body:
            encoder.encode_data(body, True)


class ClientOwner:
    """Client connection callbacks plus the sink."""

    def __init__(self, settings: Optional[Http1Settings] = None) -> None:
        self.events: List[tuple] = []
        self.errors: list = []
        self.written: List[bytes] = []
        self.codec = ClientConnectionImpl(self, self.written.append, settings)

    def on_protocol_error(self, error: Any) -> None:
        self.errors.append(error)
        self.events.append(("error", error.status, error.details))

    @property
    def output(self) -> bytes:
        return b"".join(self.written)

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Iterable = (),
        body: Optional[bytes] = None,
        authority: str = "example.com",
    ) -> Any:
        """Start a stream and send a request; return its encoder."""
        encoder = self.codec.new_stream(RecordingDecoder(self.events))
        fields = [(":method", method), (":path", path), (":authority", authority)] + list(headers)
        encoder.encode_headers(HeaderMap(fields), body is None)
        if body is not None:
            encoder.encode_data(body, True)
        return encoder


def normalize(events: Iterable[tuple]) -> List[tuple]:
    """Merge consecutive data events (how bytes were split is not an event)."""
    out: List[tuple] = []
    for event in events:
        if event[0] == "data" and out and out[-1][0] == "data" and not out[-1][2]:
            out[-1] = ("data", out[-1][1] + event[1], event[2])
        else:
            out.append(event)
    return [e for e in out if not (e[0] == "data" and not e[1] and not e[2])]


def feed_split(owner: Any, data: bytes, cuts: Iterable[int]) -> None:
    """Dispatch ``data`` in pieces cut at the given offsets, stopping once the codec failed."""
    last = 0
    for cut in list(cuts) + [len(data)]:
        if cut > last:
            if owner.errors:  # failed: what follows is not read
                return
            owner.codec.dispatch(data[last:cut])
            last = cut


def server_events(data: bytes, cuts: Iterable[int] = (), respond: bool = True,
                  settings: Optional[Http1Settings] = None) -> Tuple[List[tuple], "ServerOwner"]:
    """Feed request bytes to a server codec (answering each complete request); return normalized events."""
    owner = ServerOwner(settings)
    answered = 0

    def answer_all() -> None:
        nonlocal answered
        while respond and answered < len(owner.encoders) and owner.codec.paused:
            encoder = owner.encoders[answered]
            answered += 1
            if not encoder.started_response:
                owner.respond(index=answered - 1)

    last = 0
    for cut in list(cuts) + [len(data)]:
        if cut > last:
            if owner.errors:
                break
            owner.codec.dispatch(data[last:cut])
            last = cut
            answer_all()
    return normalize(owner.events), owner
