"""The upstream HTTP/1.1 codec: ``pyevent_envoy/http/codec/http1.py`` ClientConnectionImpl."""

from __future__ import annotations

import pytest
from codec_recorder import ClientOwner, RecordingDecoder, feed_split, normalize

from pyevent_envoy.http import HeaderMap
from pyevent_envoy.http.codec import (
    ClientConnection,
    CodecProtocolError,
    CodecUsageError,
    Http1Settings,
    RequestEncoder,
)


def client_events(response, cuts=(), method="GET", headers=(), body=None, settings=None):
    owner = ClientOwner(settings)
    owner.request(method, "/", headers, body)
    feed_split(owner, response, cuts)
    return normalize(owner.events), owner


OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"


# Encoding requests


def test_client_get_request_line_and_host_first():
    owner = ClientOwner()
    encoder = owner.request("GET", "/a?b=c", [("user-agent", "t"), ("accept", "*/*")])
    assert isinstance(encoder, RequestEncoder) and isinstance(owner.codec, ClientConnection)
    assert owner.output == b"GET /a?b=c HTTP/1.1\r\nhost: example.com\r\nuser-agent: t\r\naccept: */*\r\n\r\n"


def test_client_post_without_body_gets_content_length_zero():
    owner = ClientOwner()
    owner.request("POST", "/", [])
    assert owner.output == b"POST / HTTP/1.1\r\nhost: example.com\r\ncontent-length: 0\r\n\r\n"


def test_client_body_with_content_length():
    owner = ClientOwner()
    owner.request("PUT", "/", [("content-length", "3")], b"abc")
    assert owner.output == b"PUT / HTTP/1.1\r\nhost: example.com\r\ncontent-length: 3\r\n\r\nabc"


def test_client_body_of_unknown_length_is_chunked_with_trailers():
    owner = ClientOwner()
    encoder = owner.codec.new_stream(RecordingDecoder(owner.events))
    encoder.encode_headers(HeaderMap([(":method", "POST"), (":path", "/u"), (":authority", "h")]), False)
    encoder.encode_data(b"0123456789abcdef!", False)
    encoder.encode_trailers(HeaderMap([("x-checksum", "1")]))
    assert owner.output == (
        b"POST /u HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"
        b"11\r\n0123456789abcdef!\r\n0\r\nx-checksum: 1\r\n\r\n"
    )


def test_client_hop_by_hop_fields_are_not_forwarded_but_close_is_honoured():
    owner = ClientOwner()
    owner.request("GET", "/", [("connection", "close"), ("keep-alive", "1"), ("te", "trailers"), ("host", "x")])
    assert owner.output == b"GET / HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\n\r\n"
    owner.codec.dispatch(OK)
    assert owner.codec.should_close


def test_client_host_field_used_when_no_authority():
    owner = ClientOwner()
    encoder = owner.codec.new_stream(RecordingDecoder(owner.events))
    encoder.encode_headers(HeaderMap([(":method", "GET"), (":path", "/"), ("host", "h:81")]), True)
    assert owner.output == b"GET / HTTP/1.1\r\nhost: h:81\r\n\r\n"


def test_client_connect_request_line_is_the_authority():
    owner = ClientOwner()
    encoder = owner.codec.new_stream(RecordingDecoder(owner.events))
    encoder.encode_headers(HeaderMap([(":method", "CONNECT"), (":authority", "db:5432")]), False)
    assert owner.output == b"CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n"


@pytest.mark.parametrize(
    "fields",
    [
        [(":path", "/"), (":authority", "h")],
        [(":method", "GET"), (":authority", "h")],
        [(":method", "GET"), (":path", "/")],
        [(":method", "G T"), (":path", "/"), (":authority", "h")],
        [(":method", "GET"), (":path", "/a b"), (":authority", "h")],
        [(":method", "GET"), (":path", "/a\x01"), (":authority", "h")],
        [(":method", "GET"), (":path", "/caf\xe9"), (":authority", "h")],
        [(":method", "GET"), (":path", "/"), (":authority", "h h")],
    ],
)
def test_client_encode_rejects_bad_request_headers(fields):
    owner = ClientOwner()
    encoder = owner.codec.new_stream(RecordingDecoder(owner.events))
    with pytest.raises(CodecUsageError):
        encoder.encode_headers(HeaderMap(fields), True)
    assert owner.output == b""


def test_client_one_request_at_a_time():
    owner = ClientOwner()
    owner.request()
    with pytest.raises(CodecUsageError):
        owner.codec.new_stream(RecordingDecoder(owner.events))
    owner.codec.dispatch(OK)
    owner.request()  # the connection is idle again


# Parsing responses


def test_client_content_length_response():
    events, owner = client_events(OK)
    assert events == [
        ("headers", [(":status", "200"), ("content-type", "text/plain"), ("content-length", "5")], False),
        ("data", b"hello", True),
    ]
    assert not owner.codec.should_close and owner.codec.stream is None


def test_client_body_streams_as_it_arrives():
    owner = ClientOwner()
    owner.request()
    owner.codec.dispatch(OK[:-3])
    assert owner.events[-1] == ("data", b"he", False)
    owner.codec.dispatch(OK[-3:])
    assert owner.events[-1] == ("data", b"llo", True)


def test_client_chunked_response_with_trailers():
    events, owner = client_events(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nGrpc-Status: 0\r\n\r\n"
    )
    assert events == [
        ("headers", [(":status", "200")], False),
        ("data", b"hello", False),
        ("trailers", [("grpc-status", "0")]),
    ]
    assert not owner.codec.should_close


def test_client_close_delimited_body_ends_at_eof():
    owner = ClientOwner()
    owner.request()
    owner.codec.dispatch(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
    owner.codec.dispatch(b"part two")
    owner.codec.dispatch_eof()
    assert normalize(owner.events) == [
        ("headers", [(":status", "200")], False),
        ("data", b"part one, part two", True),
    ]
    assert owner.codec.should_close and not owner.errors


def test_client_head_response_has_no_body_and_the_next_response_parses():
    owner = ClientOwner()
    owner.request("HEAD")
    owner.codec.dispatch(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    assert owner.events == [("headers", [(":status", "200"), ("content-length", "1234")], True)]
    owner.request("GET")
    owner.codec.dispatch(OK)
    assert owner.events[-1] == ("data", b"hello", True)
    assert not owner.errors


@pytest.mark.parametrize(
    "head, fields",
    [
        (b"HTTP/1.1 204 No Content\r\nX: 1\r\n\r\n", [(":status", "204"), ("x", "1")]),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", [(":status", "204")]),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", [(":status", "304"), ("content-length", "9")]),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [(":status", "200"), ("content-length", "0")]),
    ],
)
def test_client_bodiless_responses(head, fields):
    events, owner = client_events(head)
    assert events == [("headers", fields, True)]
    assert not owner.codec.should_close


def test_client_100_continue_goes_to_decode_1xx_headers():
    events, _ = client_events(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK,
        method="POST",
        headers=[("expect", "100-continue"), ("content-length", "2")],
        body=b"hi",
    )
    assert events[:2] == [("1xx", [(":status", "100")]), ("1xx", [(":status", "103"), ("link", "</a>")])]
    assert events[-1] == ("data", b"hello", True)


def test_client_1xx_skipped_without_decode_1xx_headers():
    owner = ClientOwner()

    class Plain:
        def __init__(self):
            self.events = []

        def decode_headers(self, headers, end_stream):
            self.events.append(("headers", headers.get(":status"), end_stream))

        def decode_data(self, data, end_stream):
            self.events.append(("data", data, end_stream))

        def decode_trailers(self, trailers):
            self.events.append(("trailers",))

    decoder = Plain()
    encoder = owner.codec.new_stream(decoder)
    encoder.encode_headers(HeaderMap([(":method", "GET"), (":path", "/"), (":authority", "h")]), True)
    owner.codec.dispatch(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
    assert decoder.events == [("headers", "200", False), ("data", b"hello", True)]


def test_client_upgrade_101_is_a_tunnel():
    owner = ClientOwner()
    encoder = owner.request(
        "GET", "/ws", [("connection", "upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "k")]
    )
    assert encoder.upgrade
    assert owner.output == (
        b"GET /ws HTTP/1.1\r\nhost: example.com\r\nsec-websocket-key: k\r\n"
        b"connection: upgrade\r\nupgrade: websocket\r\n\r\n"
    )
    owner.codec.dispatch(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81")
    owner.codec.dispatch(b"\x00HTTP/1.1 200 OK\r\n\r\n")
    owner.codec.dispatch_eof()
    assert normalize(owner.events) == [
        ("headers", [(":status", "101"), ("upgrade", "websocket"), ("connection", "upgrade")], False),
        ("data", b"\x81\x00HTTP/1.1 200 OK\r\n\r\n", True),
    ]
    assert owner.codec.should_close


def test_client_101_without_upgrade_ends_the_response_and_the_connection():
    # A 101 that names no protocol switches nothing: a final, bodiless
    # response (Envoy relays it so), and the connection cannot be reused.
    owner = ClientOwner()
    owner.request("GET", "/ws", [("connection", "upgrade"), ("upgrade", "websocket")])
    owner.codec.dispatch(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nX: 1\r\n\r\n")
    assert normalize(owner.events) == [("headers", [(":status", "101"), ("x", "1")], True)]
    assert owner.codec.should_close


def test_client_unexpected_101_is_an_error():
    events, _ = client_events(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
    assert events == [("error", 502, "http1.codec_error")]


def test_client_connect_2xx_is_a_tunnel():
    owner = ClientOwner()
    encoder = owner.codec.new_stream(RecordingDecoder(owner.events))
    encoder.encode_headers(HeaderMap([(":method", "CONNECT"), (":authority", "db:5432")]), False)
    owner.codec.dispatch(b"HTTP/1.1 200 Connection Established\r\nContent-Length: 0\r\n\r\n\x00\x01")
    encoder.encode_data(b"\x02\x03", False)
    assert owner.output.endswith(b"\r\n\r\n\x02\x03")
    assert owner.events == [
        ("headers", [(":status", "200"), ("content-length", "0")], False),
        ("data", b"\x00\x01", False),
    ]


def test_client_connect_refused_is_a_normal_response_then_close():
    owner = ClientOwner()
    encoder = owner.codec.new_stream(RecordingDecoder(owner.events))
    encoder.encode_headers(HeaderMap([(":method", "CONNECT"), (":authority", "db:5432")]), False)
    owner.codec.dispatch(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    assert owner.events[-1] == ("data", b"no", True)
    assert owner.codec.should_close


# Keep-alive decisions for the pool


@pytest.mark.parametrize(
    "response, close",
    [
        (OK, False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n", True),
    ],
)
def test_client_keep_alive_decision(response, close):
    events, owner = client_events(response)
    assert events[-1][-1] is True
    assert owner.codec.should_close is close
    if close:
        with pytest.raises(CodecUsageError):
            owner.codec.new_stream(RecordingDecoder([]))


def test_client_early_response_closes():
    owner = ClientOwner()
    encoder = owner.codec.new_stream(RecordingDecoder(owner.events))
    encoder.encode_headers(
        HeaderMap([(":method", "POST"), (":path", "/"), (":authority", "h"), ("content-length", "10")]), False
    )
    owner.codec.dispatch(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
    assert owner.codec.should_close


def test_client_next_request_from_the_final_callback():
    owner = ClientOwner()
    started = []

    class Chaining(RecordingDecoder):
        def decode_data(self, data, end_stream):
            super().decode_data(data, end_stream)
            if end_stream and not started:
                started.append(owner.request("GET", "/2"))

    encoder = owner.codec.new_stream(Chaining(owner.events))
    encoder.encode_headers(HeaderMap([(":method", "GET"), (":path", "/1"), (":authority", "h")]), True)
    owner.codec.dispatch(OK)
    assert started and not owner.errors
    owner.codec.dispatch(OK)
    assert owner.events[-1] == ("data", b"hello", True) and not owner.errors


def test_client_bytes_after_the_response_are_unsolicited():
    owner = ClientOwner()
    started = []

    class Chaining(RecordingDecoder):
        def decode_data(self, data, end_stream):
            super().decode_data(data, end_stream)
            if end_stream and not started:
                started.append(owner.request("GET", "/2"))

    encoder = owner.codec.new_stream(Chaining(owner.events))
    encoder.encode_headers(HeaderMap([(":method", "GET"), (":path", "/1"), (":authority", "h")]), True)
    # A second response already in hand cannot answer a request not yet sent.
    owner.codec.dispatch(OK + OK)
    assert owner.events[-1] == ("error", 503, "upstream_unsolicited_response")
    assert owner.codec.should_close


def test_client_data_on_an_idle_connection_is_an_error():
    owner = ClientOwner()
    owner.codec.dispatch(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
    assert owner.events == [("error", 503, "upstream_unsolicited_response")]
    with pytest.raises(CodecUsageError):
        owner.codec.new_stream(RecordingDecoder([]))


# Errors


BAD_RESPONSES = {
    "not_http": b"hello\r\n\r\n",
    "http2": b"HTTP/2.0 200 OK\r\n\r\n",
    "rtsp": b"RTSP/1.0 200 OK\r\n\r\n",
    "status_99": b"HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n",
    "status_1000": b"HTTP/1.1 1000 X\r\nContent-Length: 0\r\n\r\n",
    "cl_and_te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "duplicate_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "te_gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    "te_gzip_chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te_http10": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bare_lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    "obs_fold": b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "nul_value": b"HTTP/1.1 200 OK\r\nX: a\x00\r\nContent-Length: 0\r\n\r\n",
    "space_before_colon": b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
    "1xx_with_body": b"HTTP/1.1 100 Continue\r\nContent-Length: 2\r\n\r\nab",
    "204_with_body": b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\nab",
    "204_chunked": b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad_chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
    "bad_chunk_size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n",
}


@pytest.mark.parametrize("raw", list(BAD_RESPONSES.values()), ids=list(BAD_RESPONSES))
def test_client_malformed_response_is_a_502(raw):
    events, owner = client_events(raw)
    assert events[-1][:2] == ("error", 502), events
    ((error,),) = [owner.errors]
    assert isinstance(error, CodecProtocolError)
    assert owner.codec.should_close
    with pytest.raises(CodecUsageError):
        owner.codec.dispatch(b"x")
    with pytest.raises(CodecUsageError):
        owner.codec.new_stream(RecordingDecoder([]))


def test_client_response_header_limits():
    settings = Http1Settings(max_response_headers_kb=1, max_response_headers_count=5)
    # content-length (14) + 0 (1) + x (1) + the value: exactly 1 KiB, then one byte more.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: " + b"v" * (1024 - 16) + b"\r\n\r\n"
    events, _ = client_events(head, settings=settings)
    assert events[-1][0] == "headers"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: " + b"v" * (1024 - 15) + b"\r\n\r\n"
    events, _ = client_events(head, settings=settings)
    assert events == [("error", 502, "http1.headers_too_large")]
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X%d: 1\r\n" % i for i in range(6)) + b"\r\n"
    events, _ = client_events(head, settings=settings)
    assert events == [("error", 502, "http1.too_many_headers")]


def test_client_default_response_header_limit_is_60_kib():
    pad = 60 * 1024 - len(b"content-length") - 1 - 1
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: " + b"v" * pad + b"\r\n\r\n"
    events, _ = client_events(head)
    assert events[-1][0] == "headers"
    events, _ = client_events(head.replace(b"X: ", b"X: v"))
    assert events == [("error", 502, "http1.headers_too_large")]


def test_client_incomplete_huge_head_is_bounded():
    owner = ClientOwner(Http1Settings(max_response_headers_kb=1))
    owner.request()
    owner.codec.dispatch(b"HTTP/1.1 200 OK\r\nX: ")
    for _ in range(100):
        if owner.errors:
            break
        owner.codec.dispatch(b"v" * 100)
    assert owner.events == [("error", 502, "http1.headers_too_large")]


@pytest.mark.parametrize(
    ("partial", "status"),
    [
        (b"", 503),  # nothing of the response: the upstream ended the exchange
        (b"HTTP/1.1 200 OK\r\n", 502),  # inside the response: a malformed one
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 502),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 502),
    ],
)
def test_client_premature_close(partial, status):
    owner = ClientOwner()
    owner.request()
    if partial:
        owner.codec.dispatch(partial)
    owner.codec.dispatch_eof()
    assert owner.events[-1][:2] == ("error", status)
    assert owner.codec.should_close


def test_client_eof_when_idle_just_closes():
    owner = ClientOwner()
    owner.request()
    owner.codec.dispatch(OK)
    owner.codec.dispatch_eof()
    assert owner.codec.should_close and not owner.errors


# Byte-split fuzzing


FUZZ_RESPONSES = {
    "content_length": OK,
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n1\r\n!\r\n0\r\nT: 1\r\n\r\n",
    "continue_then_ok": b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
    "close_delimited": b"HTTP/1.0 200 OK\r\nServer: s\r\n\r\nall of it",
    "bad": BAD_RESPONSES["bad_chunk"],
    "bare_lf": BAD_RESPONSES["bare_lf"],
}


@pytest.mark.parametrize("raw", list(FUZZ_RESPONSES.values()), ids=list(FUZZ_RESPONSES))
def test_client_split_at_every_offset_gives_the_same_events(raw):
    whole, _ = client_events(raw)
    assert whole
    for cut in range(1, len(raw)):
        assert client_events(raw, [cut])[0] == whole, f"cut at {cut}"
    assert client_events(raw, range(1, len(raw)))[0] == whole
