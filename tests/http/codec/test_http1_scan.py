"""The C head scanner against llhttp: whatever the scanner accepts, llhttp accepts the same way.

The codec parses a head with the scanner (``csrc/http1_scan.c``) and falls
back to llhttp (through httptools) when the scanner declines.  So the
scanner may decline anything, but what it accepts must be a head that the
general path accepts too, with the same method, target, version, status,
names and values.  These tests generate heads from pieces that are valid,
unusual or invalid and compare the two paths on each.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyevent_envoy.http.codec import ClientConnectionImpl, CodecProtocolError, ServerConnectionImpl
from pyevent_envoy.http.codec.codec import Http1Settings


class _Callbacks:
    def new_stream(self, encoder):
        raise AssertionError("not used")

    def on_protocol_error(self, error, encoder=None):
        raise AssertionError("not used")


def server_codec(**limits):
    return ServerConnectionImpl(_Callbacks(), lambda data: None, Http1Settings(**limits))


def client_codec(**limits):
    return ClientConnectionImpl(_Callbacks(), lambda data: None, Http1Settings(**limits))


def slow_request(codec, head):
    try:
        return codec._parse_request_head(head)
    except CodecProtocolError as err:
        return err


def fast_request(codec, head):
    scanned = codec._scan_head(head, 0)
    if scanned is None:
        return None
    parts, http11, _special = scanned
    return parts[0], parts[1], http11, parts[2::2], parts[3::2]


def slow_response(codec, head):
    try:
        return codec._parse_response_head(head)
    except CodecProtocolError as err:
        return err


def fast_response(codec, head):
    scanned = codec._scan_head(head, 1)
    if scanned is None:
        return None
    parts, http11, _special = scanned
    return codec._scanned_status, http11, parts[0::2], parts[1::2]


# Pieces: mostly valid (valid choices are repeated so that about half of the
# heads are ones the scanner takes), with the odd byte one parser must refuse.
def mostly(valid, odd, weight=8):
    return st.sampled_from(list(valid) * weight + list(odd))


METHODS = mostly(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"], ["CONNECT", "get", "FOO", "GET "], 3)
TARGET_CHARS = mostly("/abcXYZ019-._~!$&'()*+,;=:@?%", ["#", '"', "<", "\\", "{", "|", " ", "\t", "\x7f", "\x80", "\xff", "\x00"], 4)
TARGETS = st.one_of(
    st.builds(lambda rest: "/" + rest, st.text(TARGET_CHARS, max_size=20)),
    st.sampled_from(["*", "http://a/b", "a", ""]),
)
VERSIONS = mostly(["HTTP/1.1", "HTTP/1.0"], ["HTTP/1.2", "HTTP/2.0", "http/1.1", "HTTP/1.1 "], 10)
NAME_CHARS = mostly("abcXYZ019-_.!#$%&'*+^`|~", [" ", "\t", ":", "@", "\x7f", "\x80", "(", "\x00"], 8)
VALUE_CHARS = mostly("abc XYZ 019-_.,;=/\"'()<>@[]{}?*\t", ["\x7f", "\x80", "\xff", "\x01", "\x00", "\r", "\n"], 8)
SPECIAL_NAMES = st.sampled_from(
    ["Host", "content-length", "Content-Length", "transfer-encoding", "Transfer-Encoding", "connection", "upgrade", "expect", "te"]
)
SPECIAL_VALUES = st.sampled_from(["0", "12", "007", "-1", "1 2", "12a", "99999999999999999999", "chunked", "Chunked", "gzip, chunked", "close", "keep-alive", "websocket", "100-continue", "", " x "])
FIELDS = st.lists(
    st.one_of(
        st.tuples(st.text(NAME_CHARS, min_size=1, max_size=8), st.text(VALUE_CHARS, max_size=12), st.sampled_from(["", " ", "  ", "\t"])),
        st.tuples(SPECIAL_NAMES, SPECIAL_VALUES, st.sampled_from(["", " "])),
    ),
    max_size=5,
)


def build_head(start_line, fields):
    lines = [start_line] + [f"{name}:{ows}{value}" for name, value, ows in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(METHODS, TARGETS, VERSIONS, FIELDS)
def test_scanned_request_heads_agree_with_llhttp(method, target, version, fields):
    head = build_head(f"{method} {target} {version}", fields)
    codec = server_codec()
    fast = fast_request(codec, head)
    if fast is not None:
        assert slow_request(server_codec(), head) == fast


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VERSIONS, mostly(["200", "204", "404", "503"], ["101", "099", "999", "20", "2000", "abc"], 3), mostly([" OK", " ", " Not Found", " a\tb"], ["", " \x80"], 3), FIELDS)
def test_scanned_response_heads_agree_with_llhttp(version, status, reason, fields):
    head = build_head(f"{version} {status}{reason}", fields)
    codec = client_codec()
    fast = fast_response(codec, head)
    if fast is not None:
        assert slow_response(client_codec(), head) == fast


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a/b?c=d&e=%20 HTTP/1.0\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
        b"DELETE /x HTTP/1.1\r\nHOST: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
def test_common_request_heads_take_the_scanner(head):
    codec = server_codec()
    fast = fast_request(codec, head)
    assert fast is not None
    assert slow_request(server_codec(), head) == fast


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",  # space before the colon
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\n\r\n",
        b"GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: \x80\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
)
def test_unusual_request_heads_are_left_to_llhttp(head):
    assert fast_request(server_codec(), head) is None


def test_scanner_applies_the_header_limits_as_the_general_path():
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"x%d: v\r\n" % i for i in range(101)) + b"\r\n"
    for codec in (server_codec(), server_codec()):
        with pytest.raises(CodecProtocolError) as fast:
            codec._scan_head(many, 0)
        slow = slow_request(server_codec(), many)
        assert (fast.value.status, fast.value.details) == (slow.status, slow.details) == (431, "http1.too_many_headers")
    big = b"GET /" + b"a" * 1000 + b" HTTP/1.1\r\nx: " + b"v" * 1100 + b"\r\n\r\n"
    codec = server_codec(max_request_headers_kb=2)
    with pytest.raises(CodecProtocolError) as fast:
        codec._scan_head(big, 0)
    slow = slow_request(server_codec(max_request_headers_kb=2), big)
    assert (fast.value.status, fast.value.details) == (slow.status, slow.details) == (431, "http1.headers_too_large")


def test_response_without_fields_scans_to_empty_lists():
    codec = client_codec()
    assert fast_response(codec, b"HTTP/1.1 204 No Content\r\n\r\n") == (204, True, [], [])


# The whole head handling, scanner on and off: the codec's common path for
# heads whose only special fields are Host, Content-Length and Connection
# must decide exactly as its general path does.


class _Recorder:
    def __init__(self):
        self.events = []

    def new_stream(self, encoder):
        self.encoder = encoder
        return self

    def on_protocol_error(self, error, encoder=None):
        self.events.append(("error", error.status, error.details))

    def decode_headers(self, headers, end_stream):
        self.events.append(("headers", list(headers), end_stream, self.encoder.keep_alive, self.encoder.protocol))

    def decode_data(self, data, end_stream):
        self.events.append(("data", bytes(data), end_stream))


class _ResponseRecorder(_Recorder):
    def decode_headers(self, headers, end_stream):
        self.events.append(("headers", list(headers), end_stream))

    def decode_1xx_headers(self, headers):
        self.events.append(("1xx", list(headers)))


class _GeneralPathServer(ServerConnectionImpl):
    """The server codec with the scanner declining every head."""

    __slots__ = ()

    def _scan_head(self, head, response):
        return None


class _GeneralPathClient(ClientConnectionImpl):
    """The client codec with the scanner declining every head."""

    __slots__ = ()

    def _scan_head(self, head, response):
        return None


def run_server(head, scanner):
    recorder = _Recorder()
    codec = (ServerConnectionImpl if scanner else _GeneralPathServer)(recorder, lambda data: None)
    codec.dispatch(head + b"0123456789")
    return recorder.events


def run_client(head, scanner):
    from pyevent_envoy.http.header_map import HeaderMap

    recorder = _ResponseRecorder()

    class Callbacks:
        def on_protocol_error(self, error):
            recorder.events.append(("error", error.status, error.details))

    codec = (ClientConnectionImpl if scanner else _GeneralPathClient)(Callbacks(), lambda data: None)
    encoder = codec.new_stream(recorder)
    request = HeaderMap([(":method", "GET"), (":path", "/"), (":authority", "a")])
    encoder.encode_headers(request, True)
    codec.dispatch(head + b"0123456789")
    return recorder.events + [("should_close", codec.should_close)]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(METHODS, TARGETS, VERSIONS, FIELDS)
def test_request_heads_decode_the_same_with_and_without_the_scanner(method, target, version, fields):
    head = build_head(f"{method} {target} {version}", fields)
    assert run_server(head, True) == run_server(head, False)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VERSIONS, mostly(["200", "204", "404", "503"], ["100", "101", "099", "304"], 3), FIELDS)
def test_response_heads_decode_the_same_with_and_without_the_scanner(version, status, fields):
    head = build_head(f"{version} {status} OK", fields)
    assert run_client(head, True) == run_client(head, False)


@pytest.mark.parametrize(
    "head, bits",
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", ["HOST"]),
        (b"POST / HTTP/1.1\r\nhost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", ["HOST", "CONTENT_LENGTH", "CONNECTION"]),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ["HOST", "REPEATED"]),
        (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTE: trailers\r\n\r\n", ["HOST", "OTHER"]),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", ["HOST", "TRANSFER_ENCODING"]),
        (b"GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", []),
    ],
)
def test_scanner_reports_the_special_fields(head, bits):
    from pyevent_envoy import _http1

    scanned = server_codec()._scan_head(head, 0)
    assert scanned is not None
    expected = 0
    for bit in bits:
        expected |= getattr(_http1, f"SPECIAL_{bit}")
    assert scanned[2] == expected
