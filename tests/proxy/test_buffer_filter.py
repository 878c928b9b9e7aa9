"""The ``envoy.filters.http.buffer`` filter, differentially against Envoy 1.40.

Requests are written on raw sockets, a piece at a time, so that both proxies
read the body in the same frames; each case compares the status line, the
headers that matter and what the upstream received (its body length and
Content-Length / Transfer-Encoding), and asserts the expected outcome on its
own too.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from filter_setup import Proxies
from harness import rss_kb

pytestmark = pytest.mark.timeout(120)

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: app}
"""

LIMIT = 1024

FILTERS = f"""\
- name: envoy.filters.http.buffer
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
    max_request_bytes: {LIMIT}
"""


@pytest.fixture(scope="module")
def proxies(upstream):
    running = Proxies({"app": [upstream.port]}, VIRTUAL_HOSTS, FILTERS)
    yield running
    running.stop()


def exchange(port: int, head: bytes, pieces: list[bytes]) -> tuple[bytes, dict[str, str], bytes]:
    """Send ``head``, then each piece 50 ms apart (stopping if the proxy closes); the response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for piece in pieces:
            time.sleep(0.05)
            try:
                sock.sendall(piece)
            except OSError:
                break  # answered and closed early (413)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass  # a close with unread request bytes resets; the answer came before it
    head_bytes, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status_line, headers, body


def post_head(framing: str) -> bytes:
    return f"POST /echo HTTP/1.1\r\nhost: test\r\n{framing}\r\nconnection: close\r\n\r\n".encode()


def chunked(*pieces: bytes) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]


# (name, head, pieces, expected status, expected body length at the upstream)
CASES = [
    ("small", post_head("content-length: 10"), [b"0123456789"], 200, 10),
    ("chunked-gets-content-length", post_head("transfer-encoding: chunked"), chunked(b"hello", b"world"), 200, 10),
    ("chunked-with-trailers", post_head("transfer-encoding: chunked"), [b"5\r\nhello\r\n", b"0\r\nx-t: 1\r\n\r\n"], 200, 5),
    ("exactly-the-limit", post_head(f"content-length: {LIMIT}"), [b"a" * 512, b"b" * 512], 200, LIMIT),
    ("one-byte-over", post_head(f"content-length: {LIMIT + 1}"), [b"a" * 512, b"b" * 513], 413, None),
    ("over-in-one-frame", post_head("content-length: 2000"), [b"a" * 2000], 413, None),
    ("chunked-over", post_head("transfer-encoding: chunked"), chunked(b"a" * 1000, b"b" * 1000), 413, None),
    ("much-larger", post_head("content-length: 1000000"), [b"a" * 10000] * 10, 413, None),
    ("no-body", b"GET /echo HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n", [], 200, 0),
]


@pytest.mark.parametrize("name,head,pieces,status,received", CASES, ids=[c[0] for c in CASES])
def test_buffered_request_matches_envoy(proxies, name, head, pieces, status, received):
    answers = proxies.each(lambda port: exchange(port, head, pieces))
    views = {}
    for kind, (status_line, headers, body) in answers.items():
        if status_line.startswith(b"HTTP/1.1 200"):
            seen = json.loads(body)
            # What the upstream got: the whole body, with a Content-Length (never chunked).
            views[kind] = (status_line, seen["body_length"], seen["headers"].get("content-length"), seen["headers"].get("transfer-encoding"))
        else:
            views[kind] = (status_line, headers.get("content-type"), headers.get("content-length"), headers.get("connection"), body)
    assert len({repr(v) for v in views.values()}) == 1, views
    ours = views["pyevent-envoy"]
    assert ours[0].startswith(b"HTTP/1.1 %d" % status)
    if status == 200:
        assert ours[1] == received
        assert ours[2] == (str(received) if received else None)
        assert ours[3] is None
    else:
        assert ours == (b"HTTP/1.1 413 Payload Too Large", "text/plain", "17", "close", b"Payload Too Large")


def test_too_large_requests_are_counted_as_envoy_counts_them(proxies):
    before = {kind: proxies.stats(kind, "http.test.downstream_rq_too_large") for kind in proxies.processes}
    head = post_head("content-length: 5000")
    proxies.each(lambda port: exchange(port, head, [b"a" * 2500, b"b" * 2500]))
    for kind in proxies.processes:
        after = proxies.stats(kind, "http.test.downstream_rq_too_large")
        assert after["http.test.downstream_rq_too_large"] - before[kind]["http.test.downstream_rq_too_large"] == 1, kind


def test_memory_is_bounded_by_the_limit(proxies):
    """64 MiB sent at a 1 KiB limit: answered 413 early, the proxy's memory barely moves."""
    block = b"z" * (1 << 20)
    for kind, process in proxies.processes.items():
        baseline = rss_kb(process.proc.pid)
        status_line, _, body = exchange(process.port, post_head(f"content-length: {64 * len(block)}"), [block] * 64)
        growth_kb = rss_kb(process.proc.pid) - baseline
        assert (status_line, body) == (b"HTTP/1.1 413 Payload Too Large", b"Payload Too Large"), kind
        assert growth_kb < 16 * 1024, (kind, growth_kb)
