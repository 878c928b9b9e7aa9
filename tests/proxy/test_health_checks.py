"""Active health checks, differentially: the same YAML and upstreams under pyevent-envoy and Envoy 1.40.

Each case starts fresh upstreams (tests/proxy/upstream.py, whose ``/healthz``
answers as the test says: a status, a hang, a reset), one proxy on a
cluster with a ``health_checks`` entry, and polls until the checks have
settled (never a fixed sleep): then it looks at where requests go, what
the client gets, what the upstream saw of the checks, and the admin stats.
Every expectation is spelled out, so the cases mean something without
Envoy too.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from harness import KINDS, free_port, stop_listening
from upstream import Upstream

pytestmark = pytest.mark.timeout(120)

#: Checks every 0.1 s whatever the traffic, so that both proxies settle quickly.
HTTP_CHECK = """\
health_checks:
- timeout: 0.5s
  interval: 0.1s
  no_traffic_interval: 0.1s
  unhealthy_threshold: {unhealthy}
  healthy_threshold: {healthy}
  http_health_check:
    path: /healthz
{extra}"""

def _check_yaml(unhealthy: int = 2, healthy: int = 2, extra: str = "", **fields: str) -> str:
    text = HTTP_CHECK.format(unhealthy=unhealthy, healthy=healthy, extra=extra)
    for name, value in fields.items():
        text = text.replace("  interval: 0.1s\n", f"  interval: 0.1s\n  {name}: {value}\n", 1)
    return text


def _dead_port() -> int:
    """A port nothing listens on (connections are refused)."""
    return free_port()


@pytest.mark.parametrize("kind", KINDS)
def test_a_host_failing_its_checks_gets_no_traffic(kind, upstreams, setups):
    a, b = upstreams
    b.health = 503
    s = setups(kind, [a.port, b.port], _check_yaml())
    stats = s.wait_for_stats("one healthy host", lambda st: st.get("membership_healthy") == 1 and st.get("health_check.failure", 0) >= 2)
    assert s.spread() == [(200, "a")] * 8
    assert {name for name in stats if name.startswith("health_check.")} == {
        f"health_check.{name}"
        for name in ("attempt", "success", "failure", "network_failure", "passive_failure", "verify_cluster",
                     "healthy", "degraded")
    }
    assert stats["membership_total"] == 2 and stats["health_check.healthy"] == 1
    assert stats["health_check.degraded"] == 0 and stats["health_check.network_failure"] == 0
    assert stats["health_check.passive_failure"] == 0 and stats["health_check.verify_cluster"] == 0
    assert stats["health_check.attempt"] >= stats["health_check.success"] + stats["health_check.failure"] - 1
    assert stats["health_check.success"] >= 1
    assert stats["lb_healthy_panic"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_every_host_failing_means_panic_traffic_goes_to_all(kind, upstreams, setups):
    a, b = upstreams
    a.health = b.health = 503
    s = setups(kind, [a.port, b.port], _check_yaml())
    s.wait_for_stats("both checked", lambda st: st.get("health_check.failure", 0) >= 2)
    answers = s.spread(10)
    # Below the 50 % panic threshold Envoy balances over every host; round robin alternates.
    assert sorted(answers) == [(200, "a")] * 5 + [(200, "b")] * 5
    stats = s.stats()
    assert stats["membership_healthy"] == 0 and stats["health_check.healthy"] == 0
    assert stats["lb_healthy_panic"] == 10


@pytest.mark.parametrize("kind", KINDS)
def test_immediate_fail_header_excludes_from_the_panic_count(kind, upstreams, setups):
    a, b = upstreams
    c = Upstream("c")
    try:
        b.health = c.health = "503-immediate"
        s = setups(kind, [a.port, b.port, c.port], _check_yaml())
        stats = s.wait_for_stats("b and c failed", lambda st: st.get("membership_excluded") == 2)
        # One healthy host of the one not excluded: no panic, everything to a.
        assert s.spread() == [(200, "a")] * 8
        assert stats["membership_healthy"] == 1 and s.stats()["lb_healthy_panic"] == 0
        a.health = 503
        s.wait_for_stats("a failed", lambda st: st.get("membership_healthy") == 0)
        # Nothing healthy: panic over every host, excluded ones too.
        assert sorted(name for _, name in s.spread(9)) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    finally:
        c.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_admin_clusters_shows_each_hosts_health_flags(kind, upstreams, setups):
    a, b = upstreams
    c = Upstream("c")
    try:
        b.health = 503
        c.health = "503-immediate"
        s = setups(kind, [a.port, b.port, c.port], _check_yaml())
        s.wait_for_stats("b and c failed", lambda st: st.get("membership_healthy") == 1 and st.get("membership_excluded") == 1)
        flags = {
            line.split("::")[1]: line.rsplit("::", 1)[1]
            for line in s.admin("/clusters").splitlines()
            if line.startswith("app::127.0.0.1:") and "::health_flags::" in line
        }
        assert flags == {
            f"127.0.0.1:{a.port}": "healthy",
            f"127.0.0.1:{b.port}": "/failed_active_hc",
            f"127.0.0.1:{c.port}": "/failed_active_hc/excluded_via_immediate_hc_fail",
        }
        statuses = {
            host["address"]["socket_address"]["port_value"]: host["health_status"]
            for host in json.loads(s.admin("/clusters?format=json"))["cluster_statuses"][0]["host_statuses"]
        }
        assert statuses[a.port] == {"eds_health_status": "HEALTHY"}
        assert statuses[b.port] == {"eds_health_status": "HEALTHY", "failed_active_health_check": True}
        assert statuses[c.port] == {
            "eds_health_status": "HEALTHY",
            "failed_active_health_check": True,
            "excluded_via_immediate_hc_fail": True,
        }
    finally:
        c.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_every_host_unreachable_answers_503(kind, setups):
    s = setups(kind, [_dead_port(), _dead_port()], _check_yaml())
    s.wait_for_stats("both checked", lambda st: st.get("health_check.network_failure", 0) >= 2)
    status, body = s.get()
    assert status == 503 and body.startswith("upstream connect error or disconnect/reset before headers.")
    stats = s.stats()
    assert stats["health_check.success"] == 0 and stats["membership_healthy"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_recovered_host_rejoins_after_the_healthy_threshold(kind, upstreams, setups):
    a, b = upstreams
    b.health = 503
    s = setups(kind, [a.port, b.port], _check_yaml(healthy=3))
    s.wait_for_stats("b failed", lambda st: st.get("membership_healthy") == 1 and st.get("health_check.failure", 0) >= 1)
    assert {name for _, name in s.spread()} == {"a"}
    checks_before = b.health_checks
    b.health = 200
    s.wait_for_stats("b healthy again", lambda st: st.get("membership_healthy") == 2)
    assert b.health_checks - checks_before >= 3  # healthy_threshold passes, not the first
    s.wait_for("b back in rotation", lambda: {name for _, name in s.spread(4)} == {"a", "b"})


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_status_fails_at_once_network_errors_count_to_the_threshold(kind, upstreams, setups):
    a, b = upstreams
    s = setups(kind, [a.port, b.port], _check_yaml(unhealthy=1000))
    s.wait_for_stats("both healthy", lambda st: st.get("membership_healthy") == 2)
    b.health = "reset"
    failures = s.stats()["health_check.network_failure"]
    s.wait_for_stats("network failures", lambda st: st["health_check.network_failure"] >= failures + 3)
    assert s.stats()["membership_healthy"] == 2  # far from 1000 failures
    b.health = 500
    s.wait_for_stats("b failed at once", lambda st: st.get("membership_healthy") == 1)
    assert {name for _, name in s.spread()} == {"a"}


@pytest.mark.parametrize("kind", KINDS)
def test_retriable_statuses_count_to_the_threshold(kind, upstreams, setups):
    a, b = upstreams
    extra = "    retriable_statuses: [{start: 503, end: 504}]\n"
    s = setups(kind, [a.port, b.port], _check_yaml(unhealthy=1000, extra=extra))
    s.wait_for_stats("both healthy", lambda st: st.get("membership_healthy") == 2)
    b.health = 503
    failures = s.stats()["health_check.failure"]
    s.wait_for_stats("retriable failures", lambda st: st["health_check.failure"] >= failures + 3)
    stats = s.stats()
    assert stats["membership_healthy"] == 2 and stats["health_check.network_failure"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_hanging_check_times_out(kind, upstreams, setups):
    a, b = upstreams
    b.health = "hang"
    s = setups(kind, [a.port, b.port], _check_yaml(unhealthy=1).replace("timeout: 0.5s", "timeout: 0.2s"))
    s.wait_for_stats("b timed out", lambda st: st.get("membership_healthy") == 1 and st.get("health_check.network_failure", 0) >= 1)
    assert {name for _, name in s.spread()} == {"a"}
    b.health = 200  # let the held checks go


@pytest.mark.parametrize("kind", KINDS)
def test_the_check_request_is_envoys(kind, upstreams, setups):
    a, b = upstreams
    extra = (
        "    host: health.example\n"
        "    request_headers_to_add: [{header: {key: x-probe, value: '100%%'}}]\n"
        "    request_headers_to_remove: [x-nothing]\n"
    )
    s = setups(kind, [a.port], _check_yaml(extra=extra))
    s.wait_for("a check", lambda: len(a.health_requests) >= 2)
    method, path, headers = a.health_requests[0]
    headers = {name.lower(): value for name, value in headers.items()}
    assert (method, path) == ("GET", "/healthz")
    assert headers == {"host": "health.example", "user-agent": "Envoy/HC", "x-probe": "100%"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reuse", [True, False])
def test_connections_are_reused_unless_told_not_to(kind, reuse, upstreams, setups):
    a, b = upstreams
    s = setups(kind, [a.port, b.port], _check_yaml(**({} if reuse else {"reuse_connection": "false"})))
    s.wait_for("5 checks", lambda: len(a.health_ports) >= 5)
    ports = a.health_ports[:5]
    assert len(set(ports)) == (1 if reuse else 5), ports


@pytest.mark.parametrize("kind", KINDS)
def test_tcp_connect_only_check(kind, upstreams, setups):
    a, _b = upstreams
    check = _check_yaml().replace("  http_health_check:\n    path: /healthz\n", "  tcp_health_check: {}\n")
    s = setups(kind, [a.port, _dead_port()], check)
    stats = s.wait_for_stats("one healthy host", lambda st: st.get("membership_healthy") == 1 and st.get("health_check.network_failure", 0) >= 1)
    assert s.spread() == [(200, "a")] * 8
    assert stats["health_check.success"] >= 1


@pytest.mark.parametrize("kind", KINDS)
def test_tcp_send_and_receive(kind, setups):
    """A line server: answers ``PONG\\n`` to ``PING\\n`` on a kept connection, or ``NOPE\\n``."""
    good, bad = _LineServer(b"PONG\n"), _LineServer(b"NOPE\n")
    try:
        check = _check_yaml(unhealthy=1).replace(
            "  http_health_check:\n    path: /healthz\n",
            "  tcp_health_check: {send: {text: '50494e470a'}, receive: [{text: '504f'}, {text: '4e470a'}]}\n",
        )
        s = setups(kind, [good.port, bad.port], check)
        stats = s.wait_for_stats(
            "good healthy, bad timed out",
            lambda st: st.get("membership_healthy") == 1 and st.get("health_check.network_failure", 0) >= 1,
        )
        assert stats["health_check.success"] >= 1
        s.wait_for("several checks on one connection", lambda: good.lines >= 3)
        assert good.connections == 1
    finally:
        good.close()
        bad.close()


class _LineServer:
    """Answers ``reply`` to each line, on any number of kept connections (threads)."""

    def __init__(self, reply: bytes) -> None:
        import threading

        self.reply = reply
        self.lines = 0
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffered = b""
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buffered += data
                while b"\n" in buffered:
                    _line, buffered = buffered.split(b"\n", 1)
                    self.lines += 1
                    conn.sendall(self.reply)

    def close(self) -> None:
        self._closed = True
        stop_listening(self._sock)


@pytest.mark.parametrize("kind", KINDS)
def test_no_traffic_interval_until_the_cluster_has_traffic(kind, upstreams, setups):
    a, _b = upstreams
    check = _check_yaml().replace("no_traffic_interval: 0.1s", "no_traffic_interval: 1.5s")
    s = setups(kind, [a.port], check)
    s.wait_for("the first check", lambda: a.health_checks >= 1)
    time.sleep(1.0)  # at `interval` there would be about ten checks by now
    assert a.health_checks == 1
    assert s.get() == (200, "a")  # traffic: the next check is scheduled at `interval` again
    s.wait_for("checks every interval", lambda: a.health_checks >= 12)
