"""Stream idle, connection idle and route timeouts, against Envoy on the same YAML.

The connection manager keeps these deadlines on one timer per connection,
armed lazily; these cases check the answers and the moments at which they
come (with generous bounds), including on a connection that has carried
many requests before the one that times out.
"""

from __future__ import annotations

import http.client
import socket
import time

import pytest

from harness import KINDS, ProxyProcess, bootstrap_yaml, free_port

pytestmark = pytest.mark.timeout(120)

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/routed/"}
    route: {cluster: app, timeout: 0.6s, prefix_rewrite: "/"}
  - match: {prefix: "/"}
    route: {cluster: app, timeout: 30s}
"""

HCM_EXTRA = """\
stream_idle_timeout: 1.5s
common_http_protocol_options: {idle_timeout: 2s}
drain_timeout: 1s
"""


@pytest.fixture(scope="module", params=KINDS)
def proxy(request, upstream):
    port = free_port()
    config = bootstrap_yaml(port, {"app": [upstream.port]}, VIRTUAL_HOSTS, hcm_extra=HCM_EXTRA)
    process = ProxyProcess(request.param, config, port)
    yield process
    assert process.stop() == 0


def get(conn, path):
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def read_response(sock):
    """One Content-Length response from ``sock``: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head, body


def read_until_close(sock):
    """Everything ``sock`` receives until the proxy closes it."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_route_timeout_after_many_requests_on_one_connection(proxy):
    # Requests for longer than the route timeout, on one connection, then a slow one.
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        deadline = time.monotonic() + 1.0
        count = 0
        while time.monotonic() < deadline:
            assert get(conn, "/routed/echo/x")[0] == 200
            count += 1
        assert count > 10
        started = time.monotonic()
        assert get(conn, "/routed/sleep/3") == (504, b"upstream request timeout")
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed < 2.5
    finally:
        conn.close()


def test_stream_idle_timeout_answers_when_upstream_is_silent(proxy):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        assert get(conn, "/echo/warm")[0] == 200
        started = time.monotonic()
        status, body = get(conn, "/sleep/5")
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    # The request was complete (the wait was for the upstream): 504, as Envoy answers.
    assert (status, body) == (504, b"stream timeout")
    assert 1.4 <= elapsed < 4.5


@pytest.mark.parametrize(
    "sent",
    [
        b"POST /echo/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        # Envoy's stream begins with the request's first byte: a head that
        # stalls times out as a stream would.
        b"GET /echo/x HTTP/1.1\r\nHost: a\r\n",
    ],
    ids=["body", "head"],
)
def test_stream_idle_timeout_for_a_request_that_stops(proxy, sent):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        data = read_until_close(sock)
        elapsed = time.monotonic() - started
    # The request never ended: 408.
    assert data.startswith(b"HTTP/1.1 408 "), data[:80]
    assert data.endswith(b"stream timeout")
    assert 1.4 <= elapsed < 4.5


def test_connection_idle_timeout_drains_then_closes_a_quiet_connection(proxy):
    # Envoy's sequence: idle_timeout starts a drain, the close comes drain_timeout later.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(b"GET /echo/x HTTP/1.1\r\nHost: a\r\n\r\n")
        head, _body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        rest = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        elapsed = time.monotonic() - started
    assert rest == b""
    assert 2.9 <= elapsed < 7.0


def test_request_while_draining_after_idle_gets_connection_close(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(b"GET /echo/x HTTP/1.1\r\nHost: a\r\n\r\n")
        head, _body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"\r\nconnection: close" not in head.lower()
        time.sleep(2.4)  # idle past idle_timeout, inside drain_timeout
        sock.sendall(b"GET /echo/y HTTP/1.1\r\nHost: a\r\n\r\n")
        head, _body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"\r\nconnection: close" in head.lower()
        assert sock.recv(65536) == b""  # then the proxy closes


def test_activity_keeps_a_connection_past_its_idle_timeout(proxy):
    # Requests every 0.5 s for 3 s: never 2 s idle, so never closed.
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        first_sock = None
        for _ in range(7):
            assert get(conn, "/echo/x")[0] == 200
            if first_sock is None:
                first_sock = conn.sock
            assert conn.sock is first_sock  # the same connection throughout
            time.sleep(0.5)
    finally:
        conn.close()


def test_a_trickled_head_is_timed_from_its_first_byte(proxy):
    # More head bytes do not count as activity: a client that keeps sending a
    # little of a head that never ends is answered as one that sent nothing more.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /echo/x HTTP/1.1\r\n")
        for n in range(8):
            time.sleep(0.4)
            try:
                sock.sendall(b"x-trickle-%d: y\r\n" % n)
            except OSError:
                break  # the proxy answered and closed
        data = read_until_close(sock)
        elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408 "), data[:80]
    assert data.endswith(b"stream timeout")
    assert 1.4 <= elapsed < 6
