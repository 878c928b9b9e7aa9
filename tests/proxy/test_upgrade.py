"""WebSocket (HTTP Upgrade) tunnels through the proxy, end to end.

Every case runs against pyevent-envoy and, where the binary is installed,
against Envoy 1.40 on the same YAML, with a real WebSocket echo upstream
(``websocket_upstream``) and a client that speaks the protocol over a plain
socket.  Buffer limits are lowered to 32 KiB so that the large messages go
through the watermarks (flow control) both ways.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
import time

import pytest

from harness import KINDS, ProxyProcess, bootstrap_yaml, free_port
from websocket_upstream import (
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    REFUSAL_BODY,
    FrameReader,
    WebSocketUpstream,
    accept_key,
    encode_frame,
    parse_head,
    read_head,
)

pytestmark = pytest.mark.timeout(120)

BUFFER_LIMIT = 32 * 1024

# Upgrades enabled on the connection manager; one route turns them off.
VIRTUAL_HOSTS_ON = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/ws-off"}
    route: {cluster: app, upgrade_configs: [{upgrade_type: websocket, enabled: false}]}
  - match: {prefix: "/short/"}
    route: {cluster: app, timeout: 0.5s, prefix_rewrite: "/"}
  - match: {prefix: "/down"}
    route: {cluster: down}
  - match: {prefix: "/direct"}
    direct_response: {status: 200, body: {inline_string: "direct"}}
  - match: {prefix: "/"}
    route: {cluster: app}
"""

# No upgrade_configs on the connection manager; one route turns WebSocket on.
VIRTUAL_HOSTS_OFF = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/ws-on"}
    route: {cluster: app, upgrade_configs: [{upgrade_type: WebSocket}]}
  - match: {prefix: "/"}
    route: {cluster: app}
"""


@pytest.fixture(scope="module")
def ws_upstream():
    server = WebSocketUpstream()
    yield server
    server.stop()


def _start(kind: str, ws_upstream: WebSocketUpstream, virtual_hosts: str, hcm_extra: str):
    port = free_port()
    config = bootstrap_yaml(
        port,
        {"app": [ws_upstream.port], "down": [free_port()]},
        virtual_hosts,
        hcm_extra=hcm_extra,
        cluster_extra=f"per_connection_buffer_limit_bytes: {BUFFER_LIMIT}\n",
    )
    config = config.replace("    filter_chains:\n", f"    per_connection_buffer_limit_bytes: {BUFFER_LIMIT}\n    filter_chains:\n", 1)
    return ProxyProcess(kind, config, port)


def _stop(process: ProxyProcess) -> None:
    code = process.stop()
    if process.kind == "pyevent-envoy":
        assert code == 0, process.stderr
        assert "Traceback" not in process.stderr, process.stderr


@pytest.fixture(scope="module", params=KINDS)
def proxy(request, ws_upstream):
    process = _start(request.param, ws_upstream, VIRTUAL_HOSTS_ON, "upgrade_configs: [{upgrade_type: websocket}]\n")
    yield process
    _stop(process)


@pytest.fixture(scope="module", params=KINDS)
def proxy_off(request, ws_upstream):
    process = _start(request.param, ws_upstream, VIRTUAL_HOSTS_OFF, "")
    yield process
    _stop(process)


class Client:
    """One client connection: the opening handshake, then frames."""

    def __init__(self, proxy: ProxyProcess, path: str, extra: bytes = b"", body: bytes = b"") -> None:
        self.key = base64_key()
        self.sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n%s"
            % (path.encode(), self.key.encode(), extra, body)
        )
        head, rest = read_head(self.sock)
        self.status_line, self.headers = parse_head(head)
        self.status = int(self.status_line.split()[1])
        self.reader = FrameReader(self.sock, rest)

    def send(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(encode_frame(opcode, payload, mask=True))

    def recv(self) -> tuple[int, bytes]:
        return self.reader.read_frame()

    def rest_until_eof(self) -> bytes:
        """What the proxy sends until it closes."""
        data = bytes(self.reader.buf)
        self.reader.buf.clear()
        while True:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return data
            data += chunk

    def close(self) -> None:
        self.sock.close()


def base64_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def test_websocket_handshake_goes_through_with_its_headers(proxy, ws_upstream):
    client = Client(proxy, "/ws/handshake")
    try:
        assert client.status == 101
        assert client.headers["upgrade"].lower() == "websocket"
        assert client.headers["connection"].lower() == "upgrade"
        assert client.headers["sec-websocket-accept"] == accept_key(client.key)
        assert client.headers["server"] == "envoy"
        # The request is still open (a tunnel): Envoy adds no service time.
        assert "x-envoy-upstream-service-time" not in client.headers
        assert "content-length" not in client.headers and "transfer-encoding" not in client.headers
        method, path, seen = ws_upstream.requests[-1]
        assert (method, path) == ("GET", "/ws/handshake")
        assert seen["upgrade"].lower() == "websocket"
        assert "upgrade" in seen["connection"].lower()
        assert seen["sec-websocket-key"] == client.key
        assert seen["sec-websocket-version"] == "13"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-request-id"]
        client.send(OP_TEXT, b"hello")
        assert client.recv() == (OP_TEXT, b"hello")
    finally:
        client.close()


def test_websocket_messages_echo_in_order(proxy):
    client = Client(proxy, "/ws/messages")
    try:
        assert client.status == 101
        for i in range(20):
            payload = b"message %d " % i + os.urandom(i * 50)
            opcode = OP_TEXT if i % 2 else OP_BINARY
            client.send(opcode, payload)
            assert client.recv() == (opcode, payload)
    finally:
        client.close()


def test_websocket_large_messages_both_ways_under_flow_control(proxy):
    # Sent from another thread while this one reads: with 32 KiB buffers,
    # 640 KiB only gets through if each side stops reading when the other
    # cannot keep up, and resumes.
    client = Client(proxy, "/ws/large")
    try:
        assert client.status == 101
        messages = [os.urandom(640 * 1024), os.urandom(300 * 1024), b"small", os.urandom(100_000)]
        errors = []

        def send_all():
            try:
                for message in messages:
                    client.send(OP_BINARY, message)
            except OSError as exc:
                errors.append(exc)

        sender = threading.Thread(target=send_all)
        sender.start()
        for message in messages:
            opcode, payload = client.recv()
            assert opcode == OP_BINARY
            assert len(payload) == len(message) and payload == message
        sender.join(30)
        assert not errors
    finally:
        client.close()


def test_websocket_close_from_the_client(proxy, ws_upstream):
    path = f"/ws/client-closes/{proxy.kind}"
    client = Client(proxy, path)
    try:
        client.send(OP_TEXT, b"last words")
        assert client.recv() == (OP_TEXT, b"last words")
        client.send(OP_CLOSE, struct.pack("!H", 1000))
        # The upstream answers with its close frame and closes: the client gets
        # that frame, then the end of the connection.
        assert client.recv() == (OP_CLOSE, struct.pack("!H", 1000))
        assert client.rest_until_eof() == b""
    finally:
        client.close()
    assert ws_upstream.wait_for_ending(path) == "client-close-frame"


def test_websocket_client_dropping_the_connection_closes_the_upstream(proxy, ws_upstream):
    path = f"/ws/client-drops/{proxy.kind}"
    client = Client(proxy, path)
    client.send(OP_TEXT, b"ping")
    assert client.recv() == (OP_TEXT, b"ping")
    client.close()  # no close frame: the tunnel ends with the TCP connection
    assert ws_upstream.wait_for_ending(path) == "client-eof"


def test_websocket_close_from_the_upstream(proxy):
    client = Client(proxy, "/bye")
    try:
        assert client.status == 101
        # What the upstream sent before closing arrives, then the close.
        assert client.recv() == (OP_TEXT, b"bye")
        assert client.recv() == (OP_CLOSE, struct.pack("!H", 1001))
        assert client.rest_until_eof() == b""
    finally:
        client.close()


def test_upgrade_request_body_goes_up_as_tunnel_bytes(proxy, ws_upstream):
    # Content-Length on an upgrade request does not frame a body: like Envoy,
    # the field is forwarded and every byte after the head is tunnel data.
    client = Client(proxy, "/raw/body", extra=b"Content-Length: 4\r\n", body=b"BODY and more")
    try:
        assert client.status == 101
        assert ws_upstream.requests[-1][2]["content-length"] == "4"
        assert client.reader.read_exact(len(b"BODY and more")) == b"BODY and more"
        client.sock.sendall(b"raw bytes, no framing")
        assert client.reader.read_exact(len(b"raw bytes, no framing")) == b"raw bytes, no framing"
    finally:
        client.close()


def test_route_can_disable_an_upgrade_the_manager_allows(proxy, ws_upstream):
    before = len(ws_upstream.requests)
    client = Client(proxy, "/ws-off/chat")
    try:
        assert client.status == 403
        assert client.headers["connection"] == "close"
        assert client.rest_until_eof() == b""
    finally:
        client.close()
    assert len(ws_upstream.requests) == before


def test_upgrade_not_enabled_is_refused_403(proxy_off, ws_upstream):
    before = len(ws_upstream.requests)
    client = Client(proxy_off, "/ws/chat")
    try:
        assert client.status == 403
        assert client.headers["content-length"] == "0"
        assert client.rest_until_eof() == b""
    finally:
        client.close()
    assert len(ws_upstream.requests) == before


def test_route_can_enable_an_upgrade_the_manager_does_not_list(proxy_off):
    # The route's upgrade_type is "WebSocket": compared case-insensitively.
    client = Client(proxy_off, "/ws-on/chat")
    try:
        assert client.status == 101
        client.send(OP_TEXT, b"through the route's own config")
        assert client.recv() == (OP_TEXT, b"through the route's own config")
    finally:
        client.close()


def test_upgrade_on_a_direct_response_route_gets_the_direct_response(proxy):
    client = Client(proxy, "/direct")
    try:
        assert client.status == 200
        assert client.headers["connection"] == "close"
        assert client.rest_until_eof() == b"direct"
    finally:
        client.close()


def test_upstream_refusing_with_404_is_relayed_with_its_body(proxy):
    client = Client(proxy, "/refuse/404")
    try:
        assert client.status == 404
        assert client.headers["connection"] == "close"
        assert client.headers["content-length"] == str(len(REFUSAL_BODY))
        assert client.rest_until_eof() == REFUSAL_BODY
    finally:
        client.close()


def test_upstream_refusing_with_200_is_relayed_without_its_body(proxy):
    # Envoy 1.40 relays a non-101 answer below 400 to an upgrade request as
    # its headers alone, and closes.
    client = Client(proxy, "/refuse/200")
    try:
        assert client.status == 200
        assert client.headers["connection"] == "close"
        assert client.headers["content-length"] == "0"
        assert "content-type" not in client.headers  # it described the body that is dropped
        assert client.rest_until_eof() == b""
    finally:
        client.close()


def test_upstream_unreachable_is_503(proxy):
    client = Client(proxy, "/down")
    try:
        assert client.status == 503
        assert client.headers["connection"] == "close"
        assert client.rest_until_eof() == (
            b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
        )
    finally:
        client.close()


def test_route_timeout_applies_to_the_wait_for_the_upgrade(proxy):
    client = Client(proxy, "/short/slow/3")
    try:
        assert client.status == 504
        assert client.rest_until_eof() == b"upstream request timeout"
    finally:
        client.close()


def test_route_timeout_does_not_apply_once_upgraded(proxy):
    client = Client(proxy, "/short/ws/outlives-timeout")
    try:
        assert client.status == 101
        time.sleep(1.5)  # three times the route's 0.5 s timeout
        client.send(OP_TEXT, b"still here")
        assert client.recv() == (OP_TEXT, b"still here")
    finally:
        client.close()


def test_proxy_keeps_serving_after_tunnels(proxy):
    # Several tunnels at once, each closed differently, then one more.
    clients = [Client(proxy, f"/ws/many/{i}") for i in range(10)]
    for i, client in enumerate(clients):
        client.send(OP_TEXT, b"n%d" % i)
    for i, client in enumerate(clients):
        assert client.recv() == (OP_TEXT, b"n%d" % i)
        if i % 2:
            client.send(OP_CLOSE, struct.pack("!H", 1000))
            assert client.recv()[0] == OP_CLOSE
        client.close()
    client = Client(proxy, "/ws/after")
    try:
        client.send(OP_TEXT, b"ok")
        assert client.recv() == (OP_TEXT, b"ok")
    finally:
        client.close()
