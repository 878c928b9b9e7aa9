"""Admin ``POST /drain_listeners`` and ``/healthcheck/fail`` against Envoy 1.40, on the same YAML.

Both proxies run with ``--drain-time-s 1``, which makes Envoy's gradual
drain deterministic at its end: once the second is over, every response
closes its connection.  What
``graceful``, ``skip_exit`` and ``inboundonly`` change is when (and
whether) the listeners stop accepting.  (Within the drain time, Envoy's
"gradual" strategy closes connections at random, so only the edges are
checked.)  The process keeps running and
``/ready`` stays LIVE throughout; idle connections are left open.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from harness import KINDS, ProxyProcess, bootstrap_yaml, free_port, with_admin

pytestmark = pytest.mark.timeout(120)

DRAIN_TIME_S = 1
VIRTUAL_HOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    direct_response: {status: 200, body: {inline_string: "hi"}}
"""


class Proxy:
    def __init__(self, kind: str) -> None:
        self.port, self.admin_port = free_port(), free_port()
        config = with_admin(bootstrap_yaml(self.port, {"app": [free_port()]}, VIRTUAL_HOSTS), self.admin_port)
        self.process = ProxyProcess(kind, config, self.port, drain_time_s=DRAIN_TIME_S)

    def admin(self, method: str, path: str) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def stat(self, name: str) -> int:
        body = self.admin("GET", f"/stats?filter=^{re.escape(name)}$")[1]
        return int(body.split(": ")[1]) if body else 0

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return sock

    def accepts(self) -> bool:
        """Whether a new connection gets an answer.  A listener stops on its
        worker's thread, so a connection queued just before may be reset."""
        try:
            with self.connect() as sock:
                return ask(sock) is not None
        except (ConnectionRefusedError, ConnectionResetError):
            return False

    def stops_accepting(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while self.accepts():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


def ask(sock: socket.socket) -> bool | None:
    """One request on ``sock``: whether the answer says ``connection: close`` (None: the proxy closed instead)."""
    sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
    data = b""
    while not data.endswith(b"\r\n\r\nhi"):
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    return b"\r\nconnection: close\r\n" in data


@pytest.fixture(params=KINDS)
def proxy(request):
    made = Proxy(request.param)
    yield made
    code = made.process.stop()
    if request.param == "pyevent-envoy":
        assert code == 0, made.process.stderr
        assert "Traceback" not in made.process.stderr, made.process.stderr


def wait_past_drain_time(started: float) -> None:
    time.sleep(max(0.0, started + DRAIN_TIME_S + 0.3 - time.monotonic()))


@pytest.mark.parametrize(
    "query, accepts_during, accepts_after",
    [
        ("", False, False),  # the listeners stop now
        ("?graceful", True, False),  # ... once the drain time is over
        ("?skip_exit", True, True),  # ... never
        ("?graceful&skip_exit", True, True),
    ],
)
def test_drain_listeners_closes_connections_over_the_drain_time(proxy, query, accepts_during, accepts_after):
    busy, idle = proxy.connect(), proxy.connect()
    assert ask(busy) is False
    started = time.monotonic()
    assert proxy.admin("POST", "/drain_listeners" + query) == (200, "OK\n")
    if accepts_during:
        assert proxy.accepts()
    else:
        assert proxy.stops_accepting(within=0.5)
    wait_past_drain_time(started)
    assert ask(busy) is True  # the drain time is over: everybody is asked to go
    assert (proxy.accepts() if accepts_after else proxy.stops_accepting(within=0.5))
    if accepts_after:
        with proxy.connect() as late:
            assert ask(late) is True
    assert proxy.stat("http.test.downstream_cx_drain_close") >= 1 + accepts_after  # (more: random early ones)
    assert proxy.admin("GET", "/ready") == (200, "LIVE\n")
    idle.settimeout(0.2)
    with pytest.raises(socket.timeout):
        idle.recv(1)  # idle connections are left alone
    busy.close()
    idle.close()


@pytest.mark.parametrize("query", ["?inboundonly", "?inboundonly&graceful"])
def test_drain_listeners_inbound_only_leaves_unspecified_directions_alone(proxy, query):
    # Only listeners with traffic_direction INBOUND drain; these have none.
    with proxy.connect() as busy:
        started = time.monotonic()
        assert proxy.admin("POST", "/drain_listeners" + query) == (200, "OK\n")
        wait_past_drain_time(started)
        assert ask(busy) is False
    assert proxy.accepts()
    assert proxy.stat("http.test.downstream_cx_drain_close") == 0


def test_graceful_drain_is_not_restarted(proxy):
    started = time.monotonic()
    assert proxy.admin("POST", "/drain_listeners?graceful")[0] == 200
    time.sleep(0.6)
    assert proxy.admin("POST", "/drain_listeners?graceful")[0] == 200  # ignored: already draining
    wait_past_drain_time(started)
    assert proxy.stops_accepting(within=0.5)


def test_failed_health_check_closes_every_connection(proxy):
    with proxy.connect() as sock:
        assert ask(sock) is False
        assert proxy.admin("POST", "/healthcheck/fail") == (200, "OK\n")
        assert ask(sock) is True
    with proxy.connect() as sock:
        assert proxy.admin("POST", "/healthcheck/ok") == (200, "OK\n")
        assert ask(sock) is False
    assert proxy.stat("http.test.downstream_cx_drain_close") == 1
