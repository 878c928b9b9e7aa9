"""The admin's stats, differentially: the same YAML and traffic through Envoy 1.40 and pyevent-envoy.

The traffic covers what Envoy users read stats for: successful requests
on a keep-alive connection, upstream 4xx/5xx, a 404 without a route, a
direct response and a redirect, a 503 connect failure, a 503 connect
timeout, a 504 route timeout, 408 request timeouts (a body and a head
that stop), a malformed request, a refused HTTP/1.0 request and a client
that goes away mid-request.  Every stat pyevent-envoy prints must be
printed by Envoy with the same value (``server.uptime`` aside: Envoy
refreshes it every 5 s), in ``/stats`` text and JSON, with ``usedonly`` and
``filter``, and line for line in ``/stats/prometheus``.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time

import pytest

from harness import ENVOY, Blackhole, ProxyProcess, bootstrap_yaml, free_port, with_admin
from upstream import Upstream

pytestmark = pytest.mark.timeout(120)

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/direct"}
    direct_response: {status: 418, body: {inline_string: "short and stout"}}
  - match: {path: "/old"}
    redirect: {path_redirect: "/new"}
  - match: {prefix: "/down"}
    route: {cluster: down}
  - match: {prefix: "/blackhole"}
    route: {cluster: blackhole, timeout: 5s}
  - match: {path: "/slow"}
    route: {cluster: app, timeout: 0.3s, prefix_rewrite: "/sleep/1"}
  - match: {prefix: "/echo"}
    route: {cluster: app}
  - match: {prefix: "/status"}
    route: {cluster: app}
"""

# request_timeout bounds how long a request may take to arrive (the 408 case).
HCM_EXTRA = "request_timeout: 0.5s\n"

# Values that legitimately differ: Envoy refreshes server.uptime at each stats flush.
# (The bytes sent downstream are compared: every response here, the 426 and
# the 418 included, is byte for byte Envoy's.)
UNCOMPARED = {"server.uptime"}
# Envoy marks its HIGH priority's connection-pool gauge used once a pool of the
# cluster went away (its pools are freed when idle; these live as long as
# their host): not compared under usedonly.
_USED_UNCOMPARED = re.compile(r"cluster\.\w+\.circuit_breakers\.high\.cx_pool_open")


def _admin(port: int, path: str, listen_port: int = 0) -> tuple[int, str, str]:
    """``(status, content type, body)``; the listener's port in stat names becomes ``PORT``
    (the two proxies listen on different ports)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode().replace(f"127.0.0.1_{listen_port}", "127.0.0.1_PORT")
        return response.status, response.getheader("content-type", ""), body
    finally:
        conn.close()


def _text_stats(body: str) -> dict[str, int]:
    """``name: value`` lines (counters and gauges; Envoy's histogram lines are skipped)."""
    out = {}
    for line in body.splitlines():
        name, _, value = line.partition(": ")
        if value.lstrip("-").isdigit():
            out[name] = int(value)
    return out


def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection and return the status line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while b"\r\n" not in out:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
        return out.split(b"\r\n")[0]


def _drive_traffic(port: int) -> http.client.HTTPConnection:
    """The traffic of every test here; returns the keep-alive connection, still open."""
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    statuses = []
    for path in ["/echo/1", "/echo/2", "/status/201", "/status/404", "/status/500", "/nothing-here", "/direct", "/old"]:
        keep.request("GET", path)
        response = keep.getresponse()
        response.read()
        statuses.append(response.status)
    assert statuses == [200, 200, 201, 404, 500, 404, 418, 301]

    def one(path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    assert one("/down") == 503  # connect refused
    assert one("/blackhole") == 503  # connect timeout (the cluster's connect_timeout, 1 s)
    assert one("/slow") == 504  # route timeout
    assert _raw(port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert _raw(port, b"GET /echo HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 426")
    # The body never comes: request_timeout answers 408.
    assert _raw(port, b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab").startswith(b"HTTP/1.1 408")
    # The head never ends: request_timeout counts from its first byte.
    assert _raw(port, b"GET /echo HTTP/1.1\r\nhost: x\r\n").startswith(b"HTTP/1.1 408")
    # A client that goes away while its request body is still arriving (the
    # request already went upstream): the close resets its stream.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab")
        time.sleep(0.2)
    return keep


def _settled(admin_port: int, listen_port: int) -> dict[str, int]:
    """The stats once the proxy has seen every connection close but the keep-alive one."""
    deadline = time.monotonic() + 10
    while True:
        stats = _text_stats(_admin(admin_port, "/stats", listen_port)[2])
        if (
            stats.get("http.test.downstream_cx_active") == 1
            and stats.get("http.test.downstream_rq_active") == 0
            and stats.get("cluster.app.upstream_rq_active") == 0
        ) or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


class _Run:
    """One proxy's admin answers after the traffic."""

    def __init__(self, kind: str, upstream: Upstream, blackhole: Blackhole) -> None:
        port, admin_port = free_port(), free_port()
        clusters = {"app": [upstream.port], "down": [free_port()], "blackhole": [blackhole.port]}
        config = with_admin(bootstrap_yaml(port, clusters, VIRTUAL_HOSTS, HCM_EXTRA), admin_port)
        self.process = ProxyProcess(kind, config, port)
        try:
            keep = _drive_traffic(port)
            self.text = _settled(admin_port, port)
            self.json = json.loads(_admin(admin_port, "/stats?format=json", port)[2])
            self.prometheus = _admin(admin_port, "/stats/prometheus", port)[2]
            self.used = _text_stats(_admin(admin_port, "/stats?usedonly", port)[2])
            self.filtered = _text_stats(_admin(admin_port, "/stats?filter=upstream_rq_%5Cd", port)[2])
            self.content_types = {
                fmt: _admin(admin_port, f"/stats{fmt}")[1] for fmt in ("", "?format=json", "/prometheus")
            }
            keep.close()
        finally:
            self.code = self.process.stop()


@pytest.fixture(scope="module")
def runs():
    upstream = Upstream("app")
    blackhole = Blackhole()
    try:
        kinds = ["pyevent-envoy"] + (["envoy"] if ENVOY else [])
        yield {kind: _Run(kind, upstream, blackhole) for kind in kinds}
    finally:
        blackhole.close()
        upstream.stop()


def test_stats_show_the_traffic(ours):
    """What the traffic must have produced, independently of Envoy."""
    stats = ours.text
    expected = {
        "http.test.downstream_rq_total": 16,
        "http.test.downstream_rq_completed": 15,  # not the one whose client went away
        "http.test.downstream_rq_2xx": 3,
        "http.test.downstream_rq_3xx": 1,
        "http.test.downstream_rq_4xx": 7,  # 404 upstream, 404 no route, 418, 400, 426, 408 twice
        "http.test.downstream_rq_5xx": 4,  # 500 upstream, 503 refused, 503 connect timeout, 504
        "http.test.downstream_rq_active": 0,
        "http.test.downstream_cx_protocol_error": 2,
        "http.test.downstream_rq_timeout": 2,
        # 400, 426 and both 408s answered before their requests ended; the client that went away.
        "http.test.downstream_rq_response_before_rq_complete": 4,
        "http.test.downstream_rq_rx_reset": 5,
        "http.test.downstream_cx_destroy_remote_active_rq": 1,
        "http.test.rq_direct_response": 2,
        "http.test.no_route": 1,
        "cluster.app.upstream_rq_200": 2,
        "cluster.app.upstream_rq_504": 1,
        "cluster.app.upstream_rq_timeout": 1,
        "cluster.down.upstream_cx_connect_fail": 1,
        "cluster.down.upstream_rq_503": 1,
        "cluster.down.upstream_rq_total": 0,
        "cluster.blackhole.upstream_cx_connect_timeout": 1,
        "cluster.blackhole.upstream_rq_503": 1,
        "server.concurrency": 1,
        "server.live": 1,
    }
    assert {name: stats.get(name) for name in expected} == expected


def test_text_stats_match_envoy(ours, envoy):
    differences = {
        name: (value, envoy.text.get(name))
        for name, value in ours.text.items()
        if name not in UNCOMPARED and envoy.text.get(name) != value
    }
    assert differences == {}, "name: (pyevent-envoy, Envoy)"


def test_stats_we_keep_cover_what_envoy_shows_for_our_scopes(ours, envoy):
    """Every per-code or per-class stat Envoy created for this traffic is kept here too."""
    dynamic = {
        name for name, value in envoy.text.items()
        if value and name.startswith(("cluster.app.upstream_rq_", "cluster.down.upstream_rq_", "cluster.blackhole.upstream_rq_"))
        and name.rsplit("_", 1)[1][:1].isdigit()
    }
    assert dynamic and dynamic <= set(ours.text)


def test_text_stats_are_sorted_like_envoy(ours, envoy):
    names = [n for n in ours.text]
    assert names == sorted(names)
    envoy_order = [n for n in envoy.text if n in ours.text]
    assert names == envoy_order


def test_json_stats_match_envoy(ours, envoy):
    theirs = {s["name"]: s["value"] for s in envoy.json["stats"] if "name" in s}
    # (The histograms come last, as one {"histograms": ...} element: tests/proxy/test_histograms.py.)
    mine = [(s["name"], s["value"]) for s in ours.json["stats"] if "name" in s]
    assert set(ours.json) == {"stats"}
    assert all("name" in s for s in ours.json["stats"][:-1])
    assert [name for name, _ in mine] == list(ours.text)  # same stats, same order as the text
    differences = {name: (value, theirs.get(name)) for name, value in mine if name not in UNCOMPARED and theirs.get(name) != value}
    assert differences == {}


def test_usedonly_and_filter_match_envoy(ours, envoy):
    for mine, theirs in ((ours.used, envoy.used), (ours.filtered, envoy.filtered)):
        assert mine, "the query selected nothing"
        kept = {name for name in ours.text if not _USED_UNCOMPARED.fullmatch(name)}
        assert {name for name in mine if name in kept} == {name for name in theirs if name in kept}
        assert {n: v for n, v in mine.items() if n not in UNCOMPARED} == {
            n: theirs[n] for n in mine if n not in UNCOMPARED
        }


def _scalar_lines(prometheus: str) -> list[str]:
    """The counter and gauge lines of a Prometheus text (each histogram's ``# TYPE`` and series left out)."""
    out, in_histogram = [], False
    for line in prometheus.splitlines():
        if line.startswith("# TYPE "):
            in_histogram = line.endswith(" histogram")
        if not in_histogram:
            out.append(line)
    return out


def test_prometheus_lines_match_envoy(ours, envoy):
    theirs = envoy.prometheus.splitlines()
    index = {line: i for i, line in enumerate(theirs)}
    # Histograms have their own test (tests/proxy/test_histograms.py): their values differ.
    uncompared = ("server_uptime", "downstream_cx_tx_bytes_total")
    mine = [line for line in _scalar_lines(ours.prometheus) if not any(name in line for name in uncompared)]
    missing = [line for line in mine if line not in index]
    assert missing == []
    positions = [index[line] for line in mine]
    assert positions == sorted(positions), "the lines are in Envoy's order"
    # A few lines spelled out, so a failure here reads without Envoy at hand.
    for line in (
        '# TYPE envoy_cluster_upstream_rq counter',
        'envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="app"} 2',
        'envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="down"} 1',
        'envoy_http_downstream_rq_xx{envoy_response_code_class="4",envoy_http_conn_manager_prefix="test"} 7',
        'envoy_server_live{} 1',
    ):
        assert line in mine


def test_content_types_match_envoy(ours, envoy):
    assert ours.content_types == envoy.content_types


def test_two_workers_are_summed():
    """With ``--concurrency 2`` the kernel spreads connections over both workers; the admin adds them up."""
    upstream = Upstream("app")
    port, admin_port = free_port(), free_port()
    clusters = {"app": [upstream.port], "down": [free_port()], "blackhole": [free_port()]}
    config = with_admin(bootstrap_yaml(port, clusters, VIRTUAL_HOSTS), admin_port)
    process = ProxyProcess("pyevent-envoy", config, port, concurrency=2)
    try:
        connections = 60
        for i in range(connections):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for path in ("/echo/a", "/status/503"):
                conn.request("GET", path)
                conn.getresponse().read()
            conn.close()
        deadline = time.monotonic() + 10
        while True:
            stats = _text_stats(_admin(admin_port, "/stats", port)[2])
            if stats["http.test.downstream_cx_active"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        code = process.stop()
        upstream.stop()
    assert code == 0, process.stderr
    listener = "listener.127.0.0.1_PORT."
    per_worker = [stats[f"{listener}worker_{i}.downstream_cx_total"] for i in range(2)]
    assert all(per_worker), f"one worker took every connection: {per_worker}"
    # wait_for_port's probe connection counts too.
    assert sum(per_worker) == stats[f"{listener}downstream_cx_total"] == stats["http.test.downstream_cx_total"] == connections + 1
    assert stats["http.test.downstream_cx_destroy"] == connections + 1
    assert stats["http.test.downstream_rq_total"] == stats["http.test.downstream_rq_completed"] == 2 * connections
    assert stats["http.test.downstream_rq_2xx"] == stats["http.test.downstream_rq_5xx"] == connections
    assert stats["cluster.app.upstream_rq_total"] == 2 * connections
    assert stats["cluster.app.upstream_rq_200"] == stats["cluster.app.upstream_rq_503"] == connections
    assert stats["cluster.app.upstream_rq_active"] == 0
    assert stats["server.concurrency"] == 2


def _idle_timeout_stats(kind: str, upstream_port: int) -> dict[str, int]:
    port, admin_port = free_port(), free_port()
    hcm = "stream_idle_timeout: 0.3s\ncommon_http_protocol_options: {idle_timeout: 0.3s}\n"
    config = with_admin(bootstrap_yaml(port, {"app": [upstream_port], "down": [free_port()], "blackhole": [free_port()]}, VIRTUAL_HOSTS, hcm), admin_port)
    process = ProxyProcess(kind, config, port)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            # A connection that never sends a request is closed by idle_timeout.
            assert idle.recv(100) == b""
        # A request whose body never comes: the stream idle timeout answers 408.
        assert _raw(port, b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab").startswith(b"HTTP/1.1 408")
        time.sleep(0.5)
        return _text_stats(_admin(admin_port, "/stats?filter=idle_timeout", port)[2])
    finally:
        process.stop()


def test_idle_timeouts_are_counted_as_envoy_counts_them(envoy):
    upstream = Upstream("app")
    try:
        theirs = _idle_timeout_stats("envoy", upstream.port)
        mine = _idle_timeout_stats("pyevent-envoy", upstream.port)
    finally:
        upstream.stop()
    assert mine == {
        "http.test.downstream_cx_idle_timeout": mine["http.test.downstream_cx_idle_timeout"],
        "http.test.downstream_rq_idle_timeout": 1,
    }
    assert mine["http.test.downstream_cx_idle_timeout"] >= 1
    assert mine == {name: theirs.get(name) for name in mine}
