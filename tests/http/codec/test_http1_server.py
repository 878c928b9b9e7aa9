"""The downstream HTTP/1.1 codec: ``pyevent_envoy/http/codec/http1.py`` ServerConnectionImpl.

Each rule of the module docstring has a test here; smuggling attempts and
limits are parametrized; every input is also fed split at every offset.
"""

from __future__ import annotations

import pytest
from codec_recorder import RecordingDecoder, ServerOwner, normalize, server_events

from pyevent_envoy.http import HeaderMap
from pyevent_envoy.http.codec import (
    CodecProtocolError,
    CodecUsageError,
    Http1Settings,
    ResponseEncoder,
    ServerConnection,
    ServerConnectionImpl,
)


def headers_event(pairs, end_stream):
    return ("headers", pairs, end_stream)


GET = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"


# Requests: headers, pseudo-headers, bodies


def test_server_get_delivers_pseudo_headers_and_end_stream():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    assert owner.events == [
        ("new_stream",),
        headers_event(
            [
                (":method", "GET"),
                (":path", "/index.html?q=1"),
                (":authority", "example.com"),
                ("user-agent", "t"),
                ("accept", "*/*"),
            ],
            True,
        ),
    ]
    encoder = owner.encoders[0]
    assert isinstance(encoder, ResponseEncoder)
    assert isinstance(owner.codec, ServerConnection)
    assert encoder.protocol == "HTTP/1.1"
    assert encoder.keep_alive and not encoder.upgrade and not encoder.expect_continue
    assert not encoder.is_head_request and not encoder.is_connect_request
    assert owner.codec.paused and not owner.codec.should_close


def test_server_header_names_are_lowercased_and_values_trimmed():
    owner = ServerOwner()
    owner.codec.dispatch(b"GET / HTTP/1.1\r\nHOST: a\r\nX-Foo:   bar baz \t \r\nX-Empty:\r\nx-foo: 2\r\n\r\n")
    (_, (_, headers, _)) = owner.events
    assert headers == [
        (":method", "GET"),
        (":path", "/"),
        (":authority", "a"),
        ("x-foo", "bar baz"),
        ("x-empty", ""),
        ("x-foo", "2"),
    ]


def test_server_values_decode_latin1_obs_text():
    owner = ServerOwner()
    owner.codec.dispatch(b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n")
    assert owner.events[1][1][-1] == ("x", "caf\xe9")


def test_server_content_length_body_streams_as_it_arrives():
    owner = ServerOwner()
    owner.codec.dispatch(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123")
    assert owner.events[-2:] == [
        headers_event([(":method", "POST"), (":path", "/up"), (":authority", "a"), ("content-length", "10")], False),
        ("data", b"0123", False),
    ]
    assert not owner.codec.paused
    owner.codec.dispatch(b"45")
    assert owner.events[-1] == ("data", b"45", False)
    owner.codec.dispatch(b"6789")
    assert owner.events[-1] == ("data", b"6789", True)
    assert owner.codec.paused


def test_server_content_length_zero_ends_with_headers():
    owner = ServerOwner()
    owner.codec.dispatch(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert owner.events[-1][2] is True
    assert ("content-length", "0") in owner.events[-1][1]


def test_server_chunked_with_extensions_and_trailers():
    owner = ServerOwner()
    owner.codec.dispatch(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
        b"3;name=value;flag\r\nabc\r\n"
        b"A;q=\"quoted ; \\\" ok\"\r\n0123456789\r\n"
        b"0;last\r\nX-Sum: 42\r\nContent-Length: 5\r\nX-Other:  y \r\n\r\n"
    )
    assert normalize(owner.events) == [
        ("new_stream",),
        headers_event([(":method", "POST"), (":path", "/"), (":authority", "a")], False),
        ("data", b"abc0123456789", False),
        ("trailers", [("x-sum", "42"), ("x-other", "y")]),
    ]
    assert owner.codec.paused


def test_server_chunked_without_trailers_ends_with_data():
    events, _ = server_events(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n000\r\n\r\n"
    )
    assert events[2] == ("data", b"hello", True)


def test_server_chunk_size_accepts_leading_zeros_and_upper_hex():
    events, _ = server_events(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n000A\r\n0123456789\r\n0\r\n\r\n"
    )
    assert events[2] == ("data", b"0123456789", True)


def test_server_trailers_dropped_when_disabled():
    events, _ = server_events(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX: 1\r\n\r\n",
        settings=Http1Settings(enable_trailers=False),
    )
    assert events[2] == ("data", b"x", True)
    assert not any(e[0] == "trailers" for e in events)


def test_server_body_bytes_of_one_dispatch_are_delivered_once():
    chunks = b"".join(b"1\r\n%c\r\n" % c for c in b"abcdefghij")
    owner = ServerOwner()
    owner.codec.dispatch(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    assert owner.events[-1] == ("data", b"abcdefghij", False)
    owner.codec.dispatch(b"0\r\n\r\n")
    assert owner.events[-1] == ("data", b"", True)


# Host, targets, versions


def test_server_host_becomes_authority_and_is_required_on_http11():
    events, owner = server_events(b"GET / HTTP/1.1\r\n\r\n")
    assert events == [("error", 400, "missing_host_header")]
    events, _ = server_events(b"GET / HTTP/1.0\r\n\r\n")
    assert events[1] == headers_event([(":method", "GET"), (":path", "/")], True)


def test_server_multiple_host_fields_rejected():
    events, _ = server_events(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert events == [("error", 400, "http1.invalid_host")]


@pytest.mark.parametrize("host", [b"a b", b"a/b", b"a\\b", b"a?b"])
def test_server_invalid_host_rejected(host):
    events, _ = server_events(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert events[0][:2] == ("error", 400)


def test_server_absolute_form_target_replaces_host():
    events, _ = server_events(b"GET http://upstream:8080/p?q HTTP/1.1\r\nHost: ignored\r\n\r\n")
    assert events[1] == headers_event(
        [(":method", "GET"), (":path", "/p?q"), (":authority", "upstream:8080")], True
    )
    events, _ = server_events(b"GET HTTPS://h?x=1 HTTP/1.1\r\n\r\n")
    assert events[1] == headers_event([(":method", "GET"), (":path", "/?x=1"), (":authority", "h")], True)


def test_server_absolute_form_rejected_when_disallowed():
    events, _ = server_events(
        b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", settings=Http1Settings(allow_absolute_url=False)
    )
    assert events == [("error", 400, "http1.invalid_url")]


def test_server_options_asterisk_only_for_options():
    events, _ = server_events(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert events[1][1][:2] == [(":method", "OPTIONS"), (":path", "*")]
    events, _ = server_events(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert events == [("error", 400, "http1.invalid_url")]


def test_server_long_url_within_header_limit_is_fine():
    path = b"/" + b"a" * (50 * 1024)
    events, _ = server_events(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert events[1][1][1] == (":path", path.decode())


def test_server_http10_request_gets_http11_status_line():
    owner = ServerOwner()
    owner.codec.dispatch(b"GET / HTTP/1.0\r\n\r\n")
    assert owner.encoders[0].protocol == "HTTP/1.0"
    owner.respond(200, b"hi")
    assert owner.output.startswith(b"HTTP/1.1 200 OK\r\n")


# Keep-alive and Connection: close


def test_server_keep_alive_http11_default():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    owner.respond(200, b"hello")
    assert owner.output == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    assert not owner.codec.should_close and not owner.codec.paused


def test_server_connection_close_honoured():
    owner = ServerOwner()
    owner.codec.dispatch(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert not owner.encoders[0].keep_alive
    owner.respond(200, b"x")
    assert b"connection: close\r\n" in owner.output
    assert owner.codec.should_close
    # RFC 9112 section 9.6: nothing after a close request is processed.
    assert len(owner.encoders) == 1
    owner.codec.dispatch(b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert len(owner.encoders) == 1


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_server_refuses_http10_by_default_as_envoy_does(method):
    owner = ServerOwner(Http1Settings())
    owner.codec.dispatch(method + b" / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert owner.events == [("error", 426, "low_version")]
    encoder = owner.errors[0][1]
    assert (encoder.protocol, encoder.is_head_request) == ("HTTP/1.1", False)
    encoder.encode_headers(HeaderMap([(":status", "426"), ("content-length", "16")]), False)
    encoder.encode_data(b"Upgrade Required", True)
    assert owner.output.endswith(b"connection: close\r\n\r\nUpgrade Required")
    assert owner.codec.should_close


def test_server_http10_closes_unless_keep_alive():
    owner = ServerOwner()
    owner.codec.dispatch(b"GET / HTTP/1.0\r\n\r\n")
    owner.respond(200, b"x")
    assert owner.codec.should_close
    assert b"connection: close\r\n" in owner.output

    owner = ServerOwner()
    owner.codec.dispatch(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    assert owner.encoders[0].keep_alive
    owner.respond(200, b"x")
    assert b"connection: keep-alive\r\n" in owner.output
    assert not owner.codec.should_close


def test_server_owner_connection_close_in_response_closes():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    owner.respond(200, b"x", headers=[("connection", "close")])
    assert owner.output.count(b"connection: close") == 1
    assert owner.codec.should_close


def test_server_hop_by_hop_fields_are_removed():
    events, _ = server_events(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-foo\r\nKeep-Alive: 5\r\n"
        b"Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: websocket\r\nX-Keep: 1\r\n\r\n"
    )
    assert events[1][1] == [(":method", "GET"), (":path", "/"), (":authority", "a"), ("x-keep", "1")]


# Pipelining


def test_server_pipelined_requests_are_delivered_one_at_a_time_in_order():
    owner = ServerOwner()
    owner.codec.dispatch(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert [e[1][1][1] for e in owner.events if e[0] == "headers"] == ["/1"]
    assert owner.codec.paused
    owner.respond(200, b"one", index=0)
    assert [e[1][1][1] for e in owner.events if e[0] == "headers"] == ["/1", "/2"]
    assert owner.events[-1] == ("data", b"abc", True)
    owner.respond(200, b"two", index=1)
    owner.respond(200, b"three", index=2)
    assert owner.output == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none"
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\ntwo"
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nthree"
    )
    assert not owner.codec.paused and owner.codec.stream is None


def test_server_bytes_while_paused_are_held_not_parsed():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    owner.codec.dispatch(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE GARBAGE\r\n\r\n")
    assert len(owner.encoders) == 1 and not owner.errors
    owner.respond()
    assert len(owner.encoders) == 2
    assert not owner.errors
    owner.respond(index=1)
    assert owner.errors and owner.errors[0][0].status == 400


def test_server_resume_by_owner_when_auto_resume_off():
    owner = ServerOwner(Http1Settings(auto_resume=False))
    owner.codec.dispatch(GET + GET)
    owner.respond()
    assert len(owner.encoders) == 1 and not owner.codec.paused
    owner.codec.resume()
    assert len(owner.encoders) == 2 and owner.codec.paused


def test_server_response_inside_decode_headers_continues_pipeline():
    owner = ServerOwner()

    class Answering(RecordingDecoder):
        def decode_headers(self, headers, end_stream):
            super().decode_headers(headers, end_stream)
            owner.respond(204, b"")

    owner.new_stream = lambda encoder: (owner.encoders.append(encoder), Answering(owner.events))[1]
    owner.codec.dispatch(GET + GET + GET)
    assert len(owner.encoders) == 3
    assert owner.output.count(b"HTTP/1.1 204 No Content\r\n") == 3
    assert not owner.codec.paused


def test_server_dispatch_from_a_callback_is_refused():
    owner = ServerOwner()

    class Reentrant(RecordingDecoder):
        def decode_headers(self, headers, end_stream):
            owner.codec.dispatch(b"x")

    owner.new_stream = lambda encoder: Reentrant(owner.events)
    with pytest.raises(CodecUsageError):
        owner.codec.dispatch(GET)


# Response framing


def test_server_response_chunked_when_length_unknown():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    enc = owner.encoders[0]
    enc.encode_headers(HeaderMap([(":status", "200"), ("content-type", "text/plain")]), False)
    enc.encode_data(b"hello", False)
    enc.encode_data(b"", False)
    enc.encode_data(b"world!", True)
    assert owner.output == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n"
    )


def test_server_response_trailers_with_chunked():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    enc = owner.encoders[0]
    enc.encode_headers(HeaderMap([(":status", "200")]), False)
    enc.encode_data(b"ab", False)
    enc.encode_trailers(HeaderMap([("grpc-status", "0"), ("content-length", "9")]))
    assert owner.output.endswith(b"2\r\nab\r\n0\r\ngrpc-status: 0\r\n\r\n")
    assert not owner.codec.paused


def test_server_response_trailers_dropped_with_content_length():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    enc = owner.encoders[0]
    enc.encode_headers(HeaderMap([(":status", "200"), ("content-length", "2")]), False)
    enc.encode_data(b"ab", False)
    enc.encode_trailers(HeaderMap([("x", "1")]))
    assert owner.output == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nab"


def test_server_response_close_delimited_for_http10():
    owner = ServerOwner()
    owner.codec.dispatch(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    enc = owner.encoders[0]
    enc.encode_headers(HeaderMap([(":status", "200")]), False)
    enc.encode_data(b"stream", True)
    assert owner.output == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nstream"
    assert owner.codec.should_close


def test_server_headers_only_response_gets_content_length_zero():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    owner.encoders[0].encode_headers(HeaderMap([(":status", "404")]), True)
    assert owner.output == b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


def test_server_head_response_has_no_body():
    owner = ServerOwner()
    owner.codec.dispatch(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    enc = owner.encoders[0]
    assert enc.is_head_request
    enc.encode_headers(HeaderMap([(":status", "200"), ("content-length", "1000")]), False)
    enc.encode_data(b"x" * 1000, True)
    assert owner.output == b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"
    assert not owner.codec.paused and not owner.codec.should_close


@pytest.mark.parametrize("status, expected", [
    (204, b"HTTP/1.1 204 No Content\r\nx: 1\r\n\r\n"),
    (304, b"HTTP/1.1 304 Not Modified\r\ncontent-length: 7\r\nx: 1\r\n\r\n"),
])
def test_server_204_and_304_have_no_body(status, expected):
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    enc = owner.encoders[0]
    enc.encode_headers(HeaderMap([(":status", str(status)), ("content-length", "7"), ("x", "1")]), False)
    enc.encode_data(b"ignored", True)
    assert owner.output == expected


def test_server_encoder_skips_hop_by_hop_fields_of_the_owner():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    owner.encoders[0].encode_headers(
        HeaderMap([(":status", "200"), ("transfer-encoding", "gzip"), ("keep-alive", "1"), ("x", "y")]), True
    )
    assert owner.output == b"HTTP/1.1 200 OK\r\nx: y\r\ncontent-length: 0\r\n\r\n"


@pytest.mark.parametrize(
    "status, line",
    [
        ("598", b"HTTP/1.1 598 Unknown\r\n"),
        ("418", b"HTTP/1.1 418 Unknown\r\n"),  # not in Envoy's table
        ("599", b"HTTP/1.1 599 Last Unassigned Server Error Code\r\n"),
        ("413", b"HTTP/1.1 413 Payload Too Large\r\n"),
        ("700", b"HTTP/1.1 700 Unknown\r\n"),
    ],
)
def test_server_status_gets_envoys_reason_phrase(status, line):
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    owner.encoders[0].encode_headers(HeaderMap([(":status", status)]), True)
    assert owner.output.startswith(line)


def test_server_encode_usage_errors():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    enc = owner.encoders[0]
    with pytest.raises(CodecUsageError):
        enc.encode_data(b"x", False)
    with pytest.raises(CodecUsageError):
        enc.encode_headers(HeaderMap([("x", "1")]), True)
    with pytest.raises(CodecUsageError):
        enc.encode_headers(HeaderMap([(":status", "20")]), True)
    with pytest.raises(CodecUsageError):
        enc.encode_headers(HeaderMap([(":status", "100")]), True)
    enc.encode_headers(HeaderMap([(":status", "200"), ("content-length", "3")]), False)
    with pytest.raises(CodecUsageError):
        enc.encode_headers(HeaderMap([(":status", "200")]), True)
    with pytest.raises(CodecUsageError):
        enc.encode_data(b"toolong", False)
    assert owner.codec.should_close
    enc.encode_data(b"ab", False)
    with pytest.raises(CodecUsageError):
        enc.encode_data(b"", True)  # one byte short
    with pytest.raises(CodecUsageError):
        enc.encode_data(b"", True)  # already ended
    assert owner.codec.should_close


def test_server_encode_rejects_conflicting_content_length():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    with pytest.raises(CodecUsageError):
        owner.encoders[0].encode_headers(
            HeaderMap([(":status", "200"), ("content-length", "1"), ("content-length", "2")]), False
        )


def test_server_early_response_closes_and_drops_rest_of_request():
    owner = ServerOwner()
    owner.codec.dispatch(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    owner.respond(413, b"")
    assert owner.codec.should_close
    n = len(owner.events)
    owner.codec.dispatch(b"defghij")
    assert len(owner.events) == n


# Expect: 100-continue


def test_server_expect_continue_flag_and_interim_response():
    owner = ServerOwner()
    owner.codec.dispatch(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n")
    enc = owner.encoders[0]
    assert enc.expect_continue
    assert ("expect", "100-Continue") in owner.events[1][1]
    enc.encode_100_continue()
    enc.encode_100_continue()
    assert owner.output == b"HTTP/1.1 100 Continue\r\n\r\n"
    owner.codec.dispatch(b"ok")
    owner.respond(201, b"")
    assert owner.output.endswith(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")


def test_server_expect_continue_ignored_for_http10():
    owner = ServerOwner()
    owner.codec.dispatch(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    enc = owner.encoders[0]
    assert not enc.expect_continue
    enc.encode_100_continue()
    enc.encode_1xx_headers(HeaderMap([(":status", "103"), ("link", "</a>")]))
    assert owner.output == b""


def test_server_1xx_headers():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    enc = owner.encoders[0]
    enc.encode_1xx_headers(HeaderMap([(":status", "103"), ("link", "</s.css>; rel=preload")]))
    assert owner.output == b"HTTP/1.1 103 Unknown\r\nlink: </s.css>; rel=preload\r\n\r\n"  # Envoy's phrase
    with pytest.raises(CodecUsageError):
        enc.encode_1xx_headers(HeaderMap([(":status", "200")]))
    with pytest.raises(CodecUsageError):
        enc.encode_1xx_headers(HeaderMap([(":status", "101")]))


# Upgrade and CONNECT tunnels


WEBSOCKET = (
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: k\r\n\r\n"
)


def test_server_upgrade_is_a_tunnel():
    owner = ServerOwner()
    owner.codec.dispatch(WEBSOCKET + b"\x81\x05hello GET / HTTP/1.1\r\n\r\n")
    enc = owner.encoders[0]
    assert enc.upgrade
    assert owner.events[1] == headers_event(
        [
            (":method", "GET"),
            (":path", "/chat"),
            (":authority", "a"),
            ("sec-websocket-key", "k"),
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
        ],
        False,
    )
    assert owner.events[2] == ("data", b"\x81\x05hello GET / HTTP/1.1\r\n\r\n", False)
    owner.codec.dispatch(b"\x00\xff raw")
    assert owner.events[3] == ("data", b"\x00\xff raw", False)
    enc.encode_headers(
        HeaderMap([(":status", "101"), ("upgrade", "websocket"), ("connection", "upgrade"), ("x", "1")]), False
    )
    enc.encode_data(b"\x81\x02hi", False)
    assert owner.output == (
        b"HTTP/1.1 101 Switching Protocols\r\nx: 1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n\x81\x02hi"
    )
    owner.codec.dispatch_eof()
    assert owner.events[-1] == ("data", b"", True)
    enc.encode_data(b"", True)
    assert owner.codec.should_close


def test_server_101_without_upgrade_is_a_final_response_that_closes():
    # What Envoy sends on when the upstream's 101 names no protocol: the
    # status, no body, no tunnel, and the connection closes.
    owner = ServerOwner()
    owner.codec.dispatch(WEBSOCKET)
    enc = owner.encoders[0]
    enc.encode_headers(HeaderMap([(":status", "101"), ("connection", "close"), ("x", "1")]), True)
    assert owner.output == b"HTTP/1.1 101 Switching Protocols\r\nx: 1\r\nconnection: close\r\n\r\n"
    assert owner.codec.should_close


def test_server_rejected_upgrade_closes_after_response():
    owner = ServerOwner()
    owner.codec.dispatch(WEBSOCKET)
    owner.respond(403, b"no")
    assert b"connection: close" in owner.output
    assert owner.codec.should_close


def test_server_h2c_upgrade_is_served_as_http11():
    events, _ = server_events(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    )
    assert events[1] == headers_event([(":method", "GET"), (":path", "/"), (":authority", "a")], True)


def test_server_connect_is_a_tunnel():
    owner = ServerOwner()
    owner.codec.dispatch(b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n\x00\x01")
    enc = owner.encoders[0]
    assert enc.is_connect_request
    assert owner.events[1] == headers_event([(":method", "CONNECT"), (":authority", "db:5432")], False)
    assert owner.events[2] == ("data", b"\x00\x01", False)
    enc.encode_headers(HeaderMap([(":status", "200")]), False)
    enc.encode_data(b"\x02", False)
    assert owner.output == b"HTTP/1.1 200 OK\r\n\r\n\x02"


def test_server_connect_with_body_rejected():
    events, _ = server_events(b"CONNECT db:5432 HTTP/1.1\r\nHost: db\r\nContent-Length: 2\r\n\r\nab")
    assert events == [("error", 400, "http1.body_disallowed")]


# Smuggling attempts and malformed input: 400 (or 501), never a guess


SMUGGLING = {
    "cl_then_te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_then_cl": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    "duplicate_cl": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "conflicting_cl": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 4\r\n\r\nabcd",
    "cl_list": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
    "cl_plus": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
    "cl_negative": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    "cl_hex": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc",
    "cl_overflow": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "te_http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_space_before_colon": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "space_before_colon": b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    "space_in_name": b"GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n",
    "leading_space_field": b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    "obs_fold_tab": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n",
    "bare_lf_request_line": b"GET / HTTP/1.1\nHost: a\r\n\r\n",
    "bare_lf_field": b"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n",
    "bare_lf_end": b"GET / HTTP/1.1\r\nHost: a\r\n\n",
    "bare_lf_only": b"GET / HTTP/1.1\nHost: a\n\n",
    "bare_lf_before_request": b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "bare_cr_in_value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
    "nul_in_value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    "ctl_in_value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x07b\r\n\r\n",
    "del_in_value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",
    "non_token_name": b"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n",
    "high_byte_name": b"GET / HTTP/1.1\r\nHost: a\r\nX\xe9: 1\r\n\r\n",
    "empty_name": b"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n",
    "double_space_request_line": b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    "double_space_before_version": b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
    "tab_request_line": b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
    "trailing_space_request_line": b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    "leading_space_request_line": b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "lowercase_method": b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    "unknown_method": b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
    "no_version": b"GET /\r\nHost: a\r\n\r\n",
    "http09": b"GET /\r\n\r\n",
    "rtsp_protocol": b"GET / RTSP/1.0\r\nHost: a\r\n\r\n",
    "lowercase_protocol": b"GET / http/1.1\r\nHost: a\r\n\r\n",
    "h2_preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "space_in_target": b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    "ctl_in_target": b"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
    "fragment_in_target": b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
    "relative_target": b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n",
    "chunk_size_invalid": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk_size_empty": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n",
    "chunk_size_space": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
    "chunk_size_space_before_ext": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 ;x\r\nabc\r\n",
    "chunk_size_negative": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n",
    "chunk_size_0x": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n",
    "chunk_size_overflow": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000000\r\n",
    "chunk_size_bare_lf": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
    "chunk_data_bare_lf": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
    "chunk_data_too_long": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    "chunk_ext_empty": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;\r\nabc\r\n0\r\n\r\n",
    "chunk_ext_ctl": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\x01\r\nabc\r\n0\r\n\r\n",
    "chunk_ext_bare_cr": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a\rb\r\nabc\r\n0\r\n\r\n",
    "chunk_ext_unterminated_quote": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"b\r\nabc\r\n",
    "trailer_bare_lf": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n",
    "trailer_lf_only": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n",
    "trailer_obs_fold": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n 2\r\n\r\n",
    "trailer_space_before_colon": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX : 1\r\n\r\n",
    "upgrade_with_chunked_body": (
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    ),
}


@pytest.mark.parametrize("raw", list(SMUGGLING.values()), ids=list(SMUGGLING))
def test_server_smuggling_attempt_is_a_400(raw):
    events, owner = server_events(raw)
    assert events[-1][:2] == ("error", 400), events
    # Nothing after the error was parsed, and the error reply closes.
    assert len(owner.errors) == 1
    error, encoder = owner.errors[0]
    assert isinstance(error, CodecProtocolError) and isinstance(error, ValueError)
    assert error.error_status_hint == 400
    if encoder is not None:
        encoder.encode_headers(HeaderMap([(":status", "400")]), True)
        assert owner.output.endswith(b"connection: close\r\n\r\n")
    assert owner.codec.should_close


# Every Transfer-Encoding but a lone "chunked" is 501, as Envoy 1.40 answers.
@pytest.mark.parametrize(
    "coding",
    [b"gzip, chunked", b"deflate,chunked", b"gzip", b"identity", b"xchunked", b"chunked, identity",
     b"chunked, chunked", b"chunked,", b"chunked;q=1"],
)
def test_server_unsupported_transfer_coding_is_501(coding):
    events, _ = server_events(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + coding + b"\r\n\r\n0\r\n\r\n"
    )
    assert events == [("error", 501, "http1.invalid_transfer_encoding")]


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9"])
def test_server_other_versions_are_read_as_http10(version):
    # As Envoy's codec does; without accept_http_10 the connection manager answers 426.
    owner = ServerOwner()
    owner.codec.dispatch(b"GET / " + version + b"\r\nHost: a\r\n\r\n")
    assert [event[0] for event in owner.events] == ["new_stream", "headers"]
    assert owner.encoders[0].protocol == "HTTP/1.0"


@pytest.mark.parametrize(
    ("raw", "details"),
    [
        (b"G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n", "http1.invalid_characters"),
        (b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", "http1.invalid_characters"),
        (b"GET / HTTP/1.\x011\r\nHost: a\r\n\r\n", "http1.invalid_characters"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX\x01: 1\r\n\r\n", "http1.invalid_characters"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", "http1.invalid_characters"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n", "http1.codec_error"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX\x80: 1\r\n\r\n", "http1.codec_error"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         "http1.content_length_and_chunked_not_allowed"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
         "http1.content_length_and_chunked_not_allowed"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "http.invalid_authority"),
        (b"CONNECT /a HTTP/1.1\r\nHost: a\r\n\r\n", "http1.invalid_url"),
    ],
)
def test_server_refusals_carry_envoys_details(raw, details):
    # Checked against Envoy 1.40's %RESPONSE_CODE_DETAILS% (tests/proxy/test_response_details.py).
    events, owner = server_events(raw)
    assert events == [("error", 400, details)]
    assert owner.errors[0][0].codec_error


@pytest.mark.parametrize(
    ("raw", "details"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "missing_host_header"),
        (b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", "path_normalization_failed"),
    ],
)
def test_server_refusals_envoy_makes_outside_its_codec(raw, details):
    # Envoy's connection manager refuses these, not its codec: no protocol-error flag or stat.
    events, owner = server_events(raw)
    assert events == [("error", 400, details)]
    assert not owner.errors[0][0].codec_error


def test_server_transfer_encoding_split_over_fields_is_501():
    events, _ = server_events(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert events == [("error", 501, "http1.invalid_transfer_encoding")]


def test_server_transfer_encoding_is_case_insensitive():
    events, _ = server_events(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")
    assert events[2] == ("data", b"x", True)


# Errors are terminal; the error reply encoder


def test_server_error_before_any_stream_gets_a_fresh_encoder():
    owner = ServerOwner()
    owner.codec.dispatch(b"BAD\r\n\r\n")
    ((error, encoder),) = owner.errors
    assert owner.encoders == [] and encoder is not None
    assert error.status == 400 and error.details == "http1.codec_error"
    encoder.encode_headers(HeaderMap([(":status", "400"), ("content-length", "11")]), False)
    encoder.encode_data(b"Bad Request", True)
    assert owner.output == (
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\nconnection: close\r\n\r\nBad Request"
    )
    assert owner.codec.should_close
    with pytest.raises(CodecUsageError):
        owner.codec.dispatch(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")


def test_server_error_mid_body_uses_the_stream_encoder():
    owner = ServerOwner()
    owner.codec.dispatch(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nzz\r\n")
    ((error, encoder),) = owner.errors
    assert encoder is owner.encoders[0]
    owner.respond(400, b"")
    assert b"connection: close" in owner.output
    assert owner.codec.should_close


def test_server_error_after_response_started_has_no_encoder():
    owner = ServerOwner()
    owner.codec.dispatch(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    owner.encoders[0].encode_headers(HeaderMap([(":status", "200")]), False)
    owner.codec.dispatch(b"zz\r\n")
    assert owner.errors[0][1] is None
    assert owner.codec.should_close


def test_server_owner_exception_propagates_and_is_terminal():
    owner = ServerOwner()

    class Boom(RecordingDecoder):
        def decode_headers(self, headers, end_stream):
            raise KeyError("owner bug")

    owner.new_stream = lambda encoder: Boom(owner.events)
    with pytest.raises(KeyError):
        owner.codec.dispatch(GET)
    with pytest.raises(CodecUsageError):
        owner.codec.dispatch(GET)


def test_server_close_stops_delivery():
    owner = ServerOwner()
    closed = []

    class Closing(RecordingDecoder):
        def decode_headers(self, headers, end_stream):
            super().decode_headers(headers, end_stream)
            owner.codec.close()
            closed.append(True)

    owner.new_stream = lambda encoder: Closing(owner.events)
    owner.codec.dispatch(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
    assert closed and owner.events[-1][0] == "headers"
    owner.codec.dispatch(b"more")  # ignored after close


# End of input


def test_server_eof_mid_body_is_an_error():
    owner = ServerOwner()
    owner.codec.dispatch(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")
    owner.codec.dispatch_eof()
    assert owner.events[-1] == ("error", 400, "http1.premature_eof")
    assert owner.errors[0][1] is owner.encoders[0]


def test_server_eof_between_requests_closes():
    owner = ServerOwner()
    owner.codec.dispatch(GET)
    owner.respond()
    owner.codec.dispatch(b"GET /partial")
    owner.codec.dispatch_eof()
    assert owner.codec.should_close and not owner.errors
    assert len(owner.encoders) == 1


def test_server_eof_after_pipelined_requests_answers_them_then_closes():
    owner = ServerOwner()
    owner.codec.dispatch(GET + GET)
    owner.codec.dispatch_eof()
    assert not owner.codec.should_close
    owner.respond(index=0)
    assert len(owner.encoders) == 2 and not owner.codec.should_close
    owner.respond(index=1)
    assert owner.codec.should_close


# Limits: 431 at the boundary (Envoy counts URL + names + values)


def _request_with_header_bytes(total, url=b"/"):
    """A request whose URL plus field names and values come to exactly ``total`` bytes."""
    fixed = len(url) + len(b"host") + len(b"a") + len(b"x-pad")
    return b"GET " + url + b" HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * (total - fixed) + b"\r\n\r\n"


@pytest.mark.parametrize("kb", [1, 60])
def test_server_header_size_limit_boundary(kb):
    settings = Http1Settings(max_request_headers_kb=kb)
    events, _ = server_events(_request_with_header_bytes(kb * 1024), settings=settings)
    assert events[1][0] == "headers"
    events, _ = server_events(_request_with_header_bytes(kb * 1024 + 1), settings=settings)
    assert events == [("error", 431, "http1.headers_too_large")]


def test_server_url_counts_toward_header_limit():
    settings = Http1Settings(max_request_headers_kb=1)
    url = b"/" + b"u" * 600
    events, _ = server_events(_request_with_header_bytes(1024, url), settings=settings)
    assert events[1][0] == "headers"
    events, _ = server_events(_request_with_header_bytes(1025, url), settings=settings)
    assert events == [("error", 431, "http1.headers_too_large")]


def test_server_default_limit_is_60_kib():
    events, _ = server_events(_request_with_header_bytes(60 * 1024))
    assert events[1][0] == "headers"
    events, _ = server_events(_request_with_header_bytes(60 * 1024 + 1))
    assert events == [("error", 431, "http1.headers_too_large")]


def _request_with_fields(count):
    return b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(count - 1)) + b"\r\n"


def test_server_header_count_limit_boundary():
    events, _ = server_events(_request_with_fields(100))
    assert events[1][0] == "headers" and len(events[1][1]) == 3 + 99
    events, _ = server_events(_request_with_fields(101))
    assert events == [("error", 431, "http1.too_many_headers")]
    events, _ = server_events(_request_with_fields(11), settings=Http1Settings(max_headers_count=10))
    assert events == [("error", 431, "http1.too_many_headers")]


def test_server_incomplete_head_is_bounded():
    owner = ServerOwner(Http1Settings(max_request_headers_kb=1))
    owner.codec.dispatch(b"GET / HTTP/1.1\r\nHost: a\r\nX: ")
    for _ in range(200):
        if owner.errors:
            break
        owner.codec.dispatch(b"v" * 100)
    assert owner.events == [("error", 431, "http1.headers_too_large")]


def test_server_incomplete_head_one_byte_at_a_time_is_bounded():
    owner = ServerOwner(Http1Settings(max_request_headers_kb=1, max_headers_count=4))
    data = b"GET / HTTP/1.1\r\nX: " + b"v" * 20000
    for i in range(len(data)):
        if owner.errors:
            break
        owner.codec.dispatch(data[i : i + 1])
    assert owner.events == [("error", 431, "http1.headers_too_large")]


def test_server_trailer_limits():
    settings = Http1Settings(max_request_headers_kb=1, max_headers_count=3)
    prefix = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    events, _ = server_events(prefix + b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n", settings=settings)
    assert events[-1][0] == "trailers"
    events, _ = server_events(prefix + b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", settings=settings)
    assert events[-1] == ("error", 431, "http1.too_many_headers")
    events, _ = server_events(prefix + b"A: " + b"x" * 1100 + b"\r\n\r\n", settings=settings)
    assert events[-1] == ("error", 431, "http1.headers_too_large")


def test_server_response_short_of_its_length_stops_the_pipeline():
    owner = ServerOwner()
    owner.codec.dispatch(GET + GET)
    enc = owner.encoders[0]
    enc.encode_headers(HeaderMap([(":status", "200"), ("content-length", "5")]), False)
    with pytest.raises(CodecUsageError):
        enc.encode_data(b"abc", True)
    assert owner.codec.should_close
    assert len(owner.encoders) == 1  # the second request is not served on a broken stream


def test_server_chunk_size_line_too_long_whatever_the_reads():
    body = b"1;" + b"e" * (17 * 1024) + b"\r\nx\r\n0\r\n\r\n"
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    assert server_events(raw)[0][-1] == ("error", 400, "http1.codec_error")
    assert server_events(raw, range(60, len(raw), 1000))[0][-1] == ("error", 400, "http1.codec_error")


def test_server_chunk_size_line_is_bounded():
    owner = ServerOwner()
    owner.codec.dispatch(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;")
    for _ in range(100):
        if owner.errors:
            break
        owner.codec.dispatch(b"a" * 1000)
    assert owner.errors and owner.errors[0][0].status == 400


# Byte-split fuzzing: the same events whatever the read boundaries


FUZZ_INPUTS = {
    "get": GET,
    "pipelined": GET + b"POST /p HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello" + GET,
    "chunked_trailers": (
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: done\r\n\r\n"
        b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n"
    ),
    "leading_crlf": b"\r\n\r\n" + GET,
    "upgrade": WEBSOCKET + b"raw \r\n\r\n bytes",
    "http10": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + b"GET /2 HTTP/1.0\r\n\r\n",
    "smuggle_cl_te": SMUGGLING["cl_then_te"],
    "bad_chunk": SMUGGLING["chunk_data_bare_lf"],
    "bad_trailer": SMUGGLING["trailer_bare_lf"],
    "bad_trailer_lf": SMUGGLING["trailer_lf_only"],
    "bad_second_request": GET + b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    "too_many": _request_with_fields(101),
}


@pytest.mark.parametrize("raw", list(FUZZ_INPUTS.values()), ids=list(FUZZ_INPUTS))
def test_server_split_at_every_offset_gives_the_same_events(raw):
    whole, _ = server_events(raw)
    assert whole
    for cut in range(1, len(raw)):
        split, _ = server_events(raw, [cut])
        assert split == whole, f"cut at {cut}"
    bytewise, _ = server_events(raw, range(1, len(raw)))
    assert bytewise == whole


def test_server_split_at_every_pair_of_offsets_gives_the_same_events():
    raw = FUZZ_INPUTS["chunked_trailers"][:120]
    whole, _ = server_events(raw)
    for a in range(1, len(raw)):
        for b in range(a + 1, len(raw), 7):
            assert server_events(raw, [a, b])[0] == whole, (a, b)


def test_server_constructor_checks_sink():
    with pytest.raises(TypeError):
        ServerConnectionImpl(ServerOwner(), sink=None)
    with pytest.raises(ValueError):
        Http1Settings(max_headers_count=0)


def test_server_codec_imports_no_event_or_network_layer():
    import subprocess
    import sys

    code = (
        "import sys, pyevent_envoy.http.codec\n"
        "bad = [m for m in sys.modules if m.startswith(('pyevent_envoy.event', 'pyevent_envoy.network',"
        " 'pyevent_envoy._libevent', 'socket', 'selectors', 'asyncio'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
