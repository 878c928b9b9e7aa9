"""The common heads in C against the codec's general path: the same streams, the same errors.

``pyevent_envoy._http1`` (``csrc/http1_module.c``) parses the common request
and response heads whole and builds outgoing heads; for anything else it
returns None and the codec takes its general path.  These tests run each
generated head through a codec twice, once as it is and once with the C
function declining everything, and compare what the owner sees: the
headers, whether the message ended with them, the framing that follows
(state and remaining body), keep-alive, and any error.
"""

from __future__ import annotations

import contextlib

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyevent_envoy import _http1
from pyevent_envoy.http.codec import ClientConnectionImpl, CodecProtocolError, ServerConnectionImpl
from pyevent_envoy.http.codec.http1 import RequestEncoderImpl, ResponseEncoderImpl
from pyevent_envoy.http.codec.codec import Http1Settings
from pyevent_envoy.http.header_map import HeaderMap

from .test_http1_scan import FIELDS, METHODS, SPECIAL_VALUES, TARGETS, VERSIONS, _ResponseRecorder, build_head, mostly


# The codec's C methods and the general methods each hands its declined cases to.
GENERAL_METHODS = [
    (ServerConnectionImpl, "dispatch", "_dispatch"),
    (ClientConnectionImpl, "dispatch", "_dispatch"),
    (ResponseEncoderImpl, "encode_headers", "_encode_headers_general"),
    (RequestEncoderImpl, "encode_headers", "_encode_headers_general"),
    (ResponseEncoderImpl, "encode_data", "_encode_data_general"),
    (RequestEncoderImpl, "encode_data", "_encode_data_general"),
    (ClientConnectionImpl, "new_stream", "_new_stream_general"),
]


@contextlib.contextmanager
def declined(*names):
    """Inside the block, each ``_http1.<name>`` returns None (declines), and
    the codec's C methods give every call to their general methods."""
    real = {name: getattr(_http1, name) for name in names}
    for name in names:
        setattr(_http1, name, lambda *args: None)
    methods = [(cls, name, vars(cls)[name]) for cls, name, _ in GENERAL_METHODS]
    for cls, name, general in GENERAL_METHODS:
        setattr(cls, name, getattr(cls, general))
    try:
        yield
    finally:
        for name, function in real.items():
            setattr(_http1, name, function)
        for cls, name, method in methods:
            setattr(cls, name, method)


def serve(head):
    owner = _ResponseRecorder()  # (headers as they are, without the encoder's state)
    codec = ServerConnectionImpl(owner, lambda data: None)
    try:
        codec.dispatch(head)
    except CodecProtocolError as err:
        owner.events.append(("raised", err.status, err.details))
    encoder = getattr(owner, "encoder", None)
    stream = None if encoder is None else encoder_fields(encoder)
    return owner.events, stream, codec._state, codec._remaining, codec.paused


def encoder_fields(encoder):
    """Every slot of an encoder, by name (its connection by type)."""
    names = set()
    for cls in type(encoder).__mro__:
        names.update(name for name, value in vars(cls).items() if type(value).__name__ == "member_descriptor")
    fields = {name: getattr(encoder, name, "<unset>") for name in sorted(names)}
    fields["_conn"] = type(fields["_conn"]).__name__
    fields["_sink"] = fields["_sink"] is encoder._conn._sink
    return fields


def fetch(request_method, head):
    owner = _ResponseRecorder()
    codec = ClientConnectionImpl(owner, lambda data: None)
    encoder = codec.new_stream(owner)
    encoder.encode_headers(HeaderMap([(":method", request_method), (":path", "/"), (":authority", "a")]), True)
    try:
        codec.dispatch(head)
    except CodecProtocolError as err:
        owner.events.append(("raised", err.status, err.details))
    return owner.events, codec._state, codec._remaining, codec._response_close, codec.should_close, encoder_fields(encoder)


# Most requests get one Host (the C path needs one), at a random place.
HOSTS = st.one_of(
    st.none(),
    mostly(["a", "example.com:80", "[::1]:8080", "127.0.0.1"], ["a b", "", "a/b", "a#b", '"a"'], 4),
    mostly(["a", "example.com:80", "[::1]:8080", "127.0.0.1"], ["a b", "", "a/b", "a#b", '"a"'], 4),
)


# Heads near the common case: plain fields, with the odd framing or
# connection field whose value may be anything (so that C sees them often).
PLAIN_FIELDS = st.lists(
    st.one_of(
        st.tuples(st.text("abcxyz-", min_size=1, max_size=6), st.text("abc XYZ/=;,", max_size=8), st.just(" ")),
        st.tuples(st.sampled_from(["Content-Length", "Connection", "connection", "Transfer-Encoding"]), SPECIAL_VALUES, st.just(" ")),
    ),
    max_size=5,
)
NEAR_COMMON = st.tuples(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "OPTIONS"]),
    st.builds(lambda rest: "/" + rest, st.text("abc/?=&%.", max_size=10)),
    mostly(["HTTP/1.1"], ["HTTP/1.0"], 6),
    PLAIN_FIELDS,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.tuples(METHODS, TARGETS, VERSIONS, FIELDS), NEAR_COMMON), HOSTS, st.integers(min_value=0, max_value=5))
def test_common_requests_match_the_general_path(request, host, at):
    method, target, version, fields = request
    if host is not None:
        fields = fields[:at] + [("Host", host, " ")] + fields[at:]
    head = build_head(f"{method} {target} {version}", fields)
    fast = serve(head)
    with declined("parse_request"):
        general = serve(head)
    assert fast == general


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["GET", "GET", "GET", "HEAD", "POST"]),
    VERSIONS,
    mostly(["200", "204", "304", "404", "503"], ["100", "101", "199", "099", "999"], 3),
    st.one_of(FIELDS, PLAIN_FIELDS),
)
def test_common_responses_match_the_general_path(request_method, version, status, fields):
    head = build_head(f"{version} {status} OK", fields)
    fast = fetch(request_method, head)
    with declined("parse_response", "parse_response_start"):
        general = fetch(request_method, head)
    assert fast == general


def test_the_common_heads_take_the_c_path():
    # The plain request and response of a proxy are the common ones; a
    # head that C declines is parsed all the same, by the general path.
    request = b"GET /a?b HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n"
    names, values, keep_alive, length = _http1.parse_request(request, 100, 60 * 1024)
    assert names == [":method", ":path", ":authority", "user-agent", "content-length"]
    assert values == ["GET", "/a?b", "example.com:8080", "curl", "3"]
    assert (keep_alive, length) == (True, 3)
    response = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    assert _http1.parse_response(response, 100, 60 * 1024) == (200, [":status", "server"], ["200", "nginx"], False, -1, True)
    # HTTP/1.0, a limit, Expect: the general path's business.
    assert _http1.parse_request(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n", 100, 60 * 1024) is None
    assert _http1.parse_request(b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n", 1, 60 * 1024) is None
    assert _http1.parse_request(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", 100, 60 * 1024) is None
    assert _http1.parse_response(b"HTTP/1.1 100 Continue\r\n\r\n", 100, 60 * 1024) is None
    # A read that starts with a response head: C finds the head's end (its
    # first empty line) within the raw limit, and says where it is.
    read = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab\r\n\r\n"
    head_len = read.index(b"\r\n\r\n") + 4
    parsed = _http1.parse_response_start(read, 100, 60 * 1024, 1000)
    assert parsed == _http1.parse_response(read, 100, 60 * 1024, head_len) + (head_len,)
    assert _http1.parse_response_start(read, 100, 60 * 1024, head_len) == parsed
    assert _http1.parse_response_start(read, 100, 60 * 1024, head_len - 1) is None  # the end lies past the limit
    assert _http1.parse_response_start(read[: head_len - 2], 100, 60 * 1024, 1000) is None  # no empty line yet
    assert _http1.parse_response_start(b"", 100, 60 * 1024, 1000) is None
    with pytest.raises(TypeError):
        _http1.parse_response_start(bytearray(read), 100, 60 * 1024, 1000)


# One read holding a whole message is the proxy's common case, and the
# codecs take it in one frame (``dispatch``'s fast path); the same bytes in
# pieces go through the parse loop.  What the owner sees must not depend on
# where the reads fall.


def merged(events):
    """``events`` with each run of data events joined (reads split a body anywhere)."""
    out = []
    for event in events:
        if event[0] == "data" and out and out[-1][0] == "data" and not out[-1][2]:
            out[-1] = ("data", out[-1][1] + event[1], event[2])
        elif event[0] == "data" and not event[1] and not event[2]:
            continue
        else:
            out.append(event)
    return out


def feed(codec, owner, reads):
    """Dispatch ``reads`` in turn until the codec stops reading (closed or failed)."""
    for data in reads:
        if codec._state >= 8:  # _STOP: the owner reads no more
            break
        try:
            codec.dispatch(data)
        except CodecProtocolError as err:
            owner.events.append(("raised", err.status, err.details))
            break


def serve_reads(reads):
    owner = _ResponseRecorder()
    codec = ServerConnectionImpl(owner, lambda data: None)
    feed(codec, owner, reads)
    return merged(owner.events), codec._state, codec._remaining, codec.paused, bytes(codec._pending)


def fetch_reads(request_method, reads):
    owner = _ResponseRecorder()
    codec = ClientConnectionImpl(owner, lambda data: None)
    codec.new_stream(owner).encode_headers(
        HeaderMap([(":method", request_method), (":path", "/"), (":authority", "a")]), True
    )
    feed(codec, owner, reads)
    return merged(owner.events), codec._state, codec._remaining, codec._response_close, codec.should_close


def pieces(wire, cut):
    """``wire`` in reads that end the head in a read of its own, and cut the rest at ``cut``."""
    end = wire.find(b"\r\n\r\n")
    if end < 0:
        return [wire[:cut], wire[cut:]]
    end += 2  # the head's last CRLF comes with the body
    return [wire[:end], wire[end:end + cut], wire[end + cut:]]


BODIES = st.binary(max_size=40)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NEAR_COMMON, HOSTS, BODIES, st.booleans(), st.integers(min_value=0, max_value=50))
def test_a_request_in_one_read_matches_it_in_pieces(request, host, body, pipelined, cut):
    method, target, version, fields = request
    if host is not None:
        fields = fields + [("Host", host, " ")]
    wire = build_head(f"{method} {target} {version}", fields) + body
    if pipelined:
        wire += b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    assert serve_reads([wire]) == serve_reads(pieces(wire, cut))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["GET", "GET", "GET", "HEAD", "POST"]),
    mostly(["HTTP/1.1"], ["HTTP/1.0"], 4),
    mostly(["200", "404", "503"], ["204", "304", "100", "101"], 4),
    PLAIN_FIELDS,
    BODIES,
    st.integers(min_value=0, max_value=50),
)
def test_a_response_in_one_read_matches_it_in_pieces(request_method, version, status, fields, body, cut):
    # Mostly a Content-Length that fits the body, or one that is longer
    # (the rest would come in later reads), sometimes one that is shorter.
    wire = build_head(f"{version} {status} OK", fields) + body
    assert fetch_reads(request_method, [wire]) == fetch_reads(request_method, pieces(wire, cut))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["GET", "POST"]), BODIES, st.integers(min_value=0, max_value=60))
def test_a_response_with_its_length_in_one_read_matches_it_in_pieces(request_method, body, extra):
    length = len(body) + extra if extra <= 40 else max(0, len(body) - (extra - 40))
    wire = build_head("HTTP/1.1 200 OK", [("Server", "s", " "), ("Content-Length", str(length), " ")]) + body
    whole = fetch_reads(request_method, [wire])
    assert whole == fetch_reads(request_method, pieces(wire, len(body) // 2))
    if length == len(body):
        # The whole response in one read: delivered and done.
        events, state = whole[0], whole[1]
        assert events[-1] == ("data", body, True) if body else events[-1][2] is True
        assert state == 7  # _IDLE: the connection can take the next request


def test_the_one_read_paths_are_taken(monkeypatch):
    # The proxy's common reads are taken whole by the C dispatch() methods:
    # neither the parse loop nor the general head parser sees them.
    general = []
    for cls in (ServerConnectionImpl, ClientConnectionImpl):
        for name in ("_dispatch", "_on_head"):
            real = getattr(cls, name)
            monkeypatch.setattr(
                cls, name, lambda self, *args, _real=real, _key=(cls.__name__, name): general.append(_key) or _real(self, *args)
            )
    events = serve_reads([b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"])[0]
    assert events == [("headers", [(":method", "GET"), (":path", "/a"), (":authority", "a")], True)]
    events = fetch_reads("GET", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"])[0]
    assert events == [
        ("headers", [(":status", "200"), ("content-length", "2")], False),
        ("data", b"hi", True),
    ]
    assert general == []
    # A read the C methods decline (a request with a body) takes the loop, then the general parser.
    serve_reads([b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"])
    assert general == [("ServerConnectionImpl", "_dispatch"), ("ServerConnectionImpl", "_on_head")]


# Request heads as the router hands them to the upstream codec: pseudo-headers
# (sometimes missing or odd), then fields, some of which the encoder handles.
REQUEST_PSEUDO = st.tuples(
    mostly(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"], ["CONNECT", "", "G T", "GET\x80", None], 4),
    mostly(["/", "/a?b=c", "/%20x", "*"], ["", "/a b", "/\x7f", "/\u00e9", None], 4),
    mostly(["a", "example.com:80", "[::1]:8080"], ["", "a b", "a/b", None], 4),
)
REQUEST_FIELDS = st.lists(
    st.one_of(
        st.tuples(st.text("abcxyz-", min_size=1, max_size=6), st.text("abc XYZ/=;,\u00e9", max_size=8)),
        st.tuples(
            st.sampled_from(["content-length", "host", "connection", "transfer-encoding", "te", "upgrade", "keep-alive"]),
            st.sampled_from(["0", "5", "12", "007", "-1", "x", "", "close", "chunked", "websocket", "99999999999999999999"]),
        ),
    ),
    max_size=5,
)


def encode_request(pseudo, fields, end_stream):
    headers = HeaderMap()
    for name, value in zip((":method", ":path", ":authority"), pseudo):
        if value is not None:
            headers._names.append(name)  # as the router's own values: no checks here
            headers._values.append(value)
    for name, value in fields:
        headers._names.append(name)
        headers._values.append(value)
    sent = []
    codec = ClientConnectionImpl(_ResponseRecorder(), sent.append)
    encoder = codec.new_stream(_ResponseRecorder())
    try:
        encoder.encode_headers(headers, end_stream)
    except Exception as exc:  # the general path's refusal, compared as such
        return type(exc).__name__, str(exc)
    return sent, encoder.method, encoder.is_head_request, encoder.upgrade, encoder._mode, encoder._remaining, encoder._close


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUEST_PSEUDO, REQUEST_FIELDS, st.booleans())
def test_common_request_heads_encode_as_the_general_path(pseudo, fields, end_stream):
    fast = encode_request(pseudo, fields, end_stream)
    with declined("encode_request"):
        general = encode_request(pseudo, fields, end_stream)
    assert fast == general


RESPONSE_FIELDS = st.lists(
    st.one_of(
        st.tuples(st.text("abcxyz-", min_size=1, max_size=6), st.text("abc XYZ/=;,\u00e9", max_size=8)),
        st.tuples(
            st.sampled_from(["content-length", "content-length", "connection", "transfer-encoding", "upgrade", "host"]),
            st.sampled_from(["0", "5", "12", "007", "-1", "x", "", "close", "chunked", "99999999999999999999"]),
        ),
        st.tuples(st.text("abc\u20ac", min_size=1, max_size=3), st.just("v")),
    ),
    max_size=5,
)
REQUESTS = st.sampled_from(
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ]
)


def encode_response(request, status, fields, end_stream):
    owner = _ResponseRecorder()
    sent = []
    codec = ServerConnectionImpl(owner, sent.append, Http1Settings(accept_http_10=True))
    codec.dispatch(request)
    encoder = owner.encoder
    headers = HeaderMap()
    headers._names.append(":status")
    headers._values.append(status)
    for name, value in fields:
        headers._names.append(name)
        headers._values.append(value)
    try:
        encoder.encode_headers(headers, end_stream)
    except Exception as exc:  # the general path's refusal, compared as such
        return type(exc).__name__, str(exc)
    return sent, encoder._mode, encoder._remaining, encoder._close, codec.should_close


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS, mostly(["200", "404", "503", "204", "304"], ["101", "299"], 3), RESPONSE_FIELDS, st.booleans())
def test_common_response_heads_encode_as_the_general_path(request, status, fields, end_stream):
    fast = encode_response(request, status, fields, end_stream)
    with declined("encode_response"):
        general = encode_response(request, status, fields, end_stream)
    assert fast == general


def encode_body(request, content_length, frames):
    """Send a response with ``content_length`` (None: none, so chunked or raw) and then ``frames``."""
    owner = _ResponseRecorder()
    sent = []
    codec = ServerConnectionImpl(owner, sent.append, Http1Settings(accept_http_10=True))
    codec.dispatch(request)
    encoder = owner.encoder
    fields = [(":status", "200")] + ([("content-length", str(content_length))] if content_length is not None else [])
    encoder.encode_headers(HeaderMap(fields), False)
    outcome = []
    for data, end_stream in frames:
        try:
            encoder.encode_data(data, end_stream)
            outcome.append("ok")
        except Exception as exc:  # the general path's refusal, compared as such
            outcome.append((type(exc).__name__, str(exc)))
    return sent, outcome, encoder._mode, encoder._remaining, encoder._complete, encoder._close, codec.should_close


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    REQUESTS,
    st.one_of(st.none(), st.integers(min_value=0, max_value=12)),
    st.lists(
        st.tuples(st.one_of(st.binary(max_size=8), st.binary(max_size=8).map(bytearray)), st.booleans()), max_size=4
    ),
)
def test_response_bodies_encode_as_the_general_path(request, content_length, frames):
    # Content-Length, chunked and close-delimited (HTTP/1.0) bodies; frames
    # that fit, overrun, end short, come after the end, or are not bytes.
    fast = encode_body(request, content_length, frames)
    with declined():
        general = encode_body(request, content_length, frames)
    assert fast == general
