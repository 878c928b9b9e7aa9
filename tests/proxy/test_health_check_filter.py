"""The health check HTTP filter, differentially: the same YAML and requests under pyevent-envoy and Envoy 1.40.

Each case starts a proxy (tests/proxy/http_filter_setup.py) with the
filter in front of the router and a real upstream (tests/proxy/upstream.py,
whose ``/healthz`` answers ``Upstream.health`` and counts the requests it
gets), sends health checks and other requests, flips the admin's
``/healthcheck/fail``, and checks what the client gets (status, body, the
headers that matter), what reached the upstream, the admin's stats and the
access log (``%RESPONSE_FLAGS%``, ``%RESPONSE_CODE_DETAILS%``).  Every
expectation is spelled out, so the cases mean something without Envoy too.
"""

from __future__ import annotations

import signal

import pytest

from harness import KINDS, free_port
from http_filter_setup import FilterSetup, app, filter_setups, read_response  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(120)

HC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck"


def _filter(pass_through: bool, extra: str = "", name: str = "envoy.filters.http.health_check", path: str = "/healthz") -> str:
    return (
        f"- name: {name}\n"
        "  typed_config:\n"
        f'    "@type": {HC_TYPE}\n'
        f"    pass_through_mode: {str(pass_through).lower()}\n"
        "    headers:\n"
        f'    - {{name: ":path", string_match: {{exact: "{path}"}}}}\n'
        f"{extra}"
    )


def _log(s: FilterSetup, count: int) -> list[str]:
    """The access log lines, an upstream response's as ``"<code> <flags>"`` only: pyevent-envoy
    does not record Envoy's ``via_upstream`` details, which are not this filter's."""
    return [line[: -len(" via_upstream")] if line.endswith(" via_upstream") else line.removesuffix(" -")
            if line.count(" ") == 2 and line.endswith(" -") else line for line in s.log_lines(count)]


def _hc_stats(s: FilterSetup) -> dict[str, int]:
    return {k[len("http.test.health_check."):]: v for k, v in s.stats("http.test.health_check.").items()}


@pytest.mark.parametrize("kind", KINDS)
def test_answers_health_checks_itself(kind, app, filter_setups):
    s = filter_setups(kind, _filter(False), {"app": [app.port]})
    answer = s.request("/healthz")
    assert (answer.status, answer.body) == (200, b"")
    assert answer.header("content-length") == "0"
    assert answer.header("x-envoy-upstream-healthchecked-cluster") == "front-proxy"
    assert answer.header("x-envoy-immediate-health-check-fail") is None
    assert answer.header("connection") is None
    # A request body is read before the answer.
    posted = s.request("/healthz", method="POST", body=b"ping!")
    assert (posted.status, posted.body) == (200, b"")
    # Anything else goes upstream, without the health check header.
    other = s.request("/echo")
    assert other.status == 200 and other.header("x-upstream") == "app"
    assert other.header("x-envoy-upstream-healthchecked-cluster") is None
    assert app.health_checks == 0
    assert _hc_stats(s) == {
        "cached_response": 0, "degraded": 0, "failed": 0, "failed_cluster_empty": 0,
        "failed_cluster_not_found": 0, "failed_cluster_unhealthy": 0, "ok": 2, "request_total": 2,
    }
    stats = s.stats("http.test.downstream_rq_")
    # Health checks are requests, but their answers are not counted by code, nor completed.
    assert stats["http.test.downstream_rq_total"] == 3
    assert stats["http.test.downstream_rq_completed"] == 1
    assert stats["http.test.downstream_rq_2xx"] == 1
    assert _log(s, 3) == ["200 - health_check_ok", "200 - health_check_ok", "200 -"]


@pytest.mark.parametrize("kind", KINDS)
def test_fails_health_checks_after_admin_healthcheck_fail(kind, app, filter_setups):
    s = filter_setups(kind, _filter(False), {"app": [app.port]})
    assert s.admin("/healthcheck/fail", "POST") == (200, "OK\n")
    answer = s.request("/healthz")
    assert (answer.status, answer.body) == (503, b"")
    assert answer.header("x-envoy-upstream-healthchecked-cluster") == "front-proxy"
    assert answer.header("x-envoy-immediate-health-check-fail") == "true"
    assert answer.header("connection") == "close"
    # Other responses say so too, and every connection closes after its response (drain close).
    other = s.request("/echo")
    assert other.status == 200
    assert other.header("x-envoy-immediate-health-check-fail") == "true"
    assert other.header("connection") == "close"
    assert s.admin("/ready") == (503, "DRAINING\n")
    assert s.stats("server.live")["server.live"] == 0
    stats = _hc_stats(s)
    assert (stats["request_total"], stats["failed"], stats["ok"]) == (1, 1, 0)
    assert _log(s, 1) == ["503 LH health_check_failed"]
    # And back.
    assert s.admin("/healthcheck/ok", "POST") == (200, "OK\n")
    again = s.request("/healthz")
    assert again.status == 200 and again.header("x-envoy-immediate-health-check-fail") is None
    assert again.header("connection") is None
    assert s.admin("/ready") == (200, "LIVE\n")
    assert s.stats("server.live")["server.live"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_drain_listeners_keeps_passing_health_checks(kind, app, filter_setups):
    s = filter_setups(kind, _filter(False), {"app": [app.port]})
    with s.connect() as sock:
        # Headers now, the body after the drain started: the filter answers once the request ends.
        sock.sendall(b"POST /healthz HTTP/1.1\r\nhost: example.com\r\ncontent-length: 5\r\n\r\n")
        s.wait_for("the request in flight", lambda: s.stats("http.test.downstream_rq_active").get("http.test.downstream_rq_active") == 1)
        assert s.admin("/drain_listeners?graceful", "POST") == (200, "OK\n")
        sock.sendall(b"ping!")
        answer = read_response(sock)
    # Envoy fails health checks for /healthcheck/fail, not while its listeners drain.
    assert answer.status == 200
    assert answer.header("x-envoy-immediate-health-check-fail") is None


def test_a_drain_before_exiting_fails_health_checks(app, filter_setups):
    """pyevent-envoy drains on SIGTERM (Envoy exits at once): a health check answered meanwhile fails."""
    s = filter_setups("pyevent-envoy", _filter(False), {"app": [app.port]})
    with s.connect() as sock:
        # Headers now, the body after the signal: the filter answers once the request ends.
        sock.sendall(b"POST /healthz HTTP/1.1\r\nhost: example.com\r\ncontent-length: 5\r\n\r\n")
        s.wait_for("the request in flight", lambda: s.stats("http.test.downstream_rq_active").get("http.test.downstream_rq_active") == 1)
        s.proxy.proc.send_signal(signal.SIGTERM)
        s.wait_for("draining", lambda: s.admin("/ready")[0] == 503)
        sock.sendall(b"ping!")
        answer = read_response(sock)
    assert answer.status == 503
    assert answer.header("x-envoy-immediate-health-check-fail") == "true"
    assert answer.header("connection") == "close"


@pytest.mark.parametrize("kind", KINDS)
def test_pass_through_forwards_health_checks(kind, app, filter_setups):
    s = filter_setups(kind, _filter(True), {"app": [app.port]})
    app.health = 503
    answer = s.request("/healthz")
    assert answer.status == 503  # the upstream's answer
    assert answer.header("x-envoy-upstream-healthchecked-cluster") == "front-proxy"
    app.health = 200
    assert s.request("/healthz").status == 200
    assert app.health_checks == 2
    # The filter answered none; the forwarded ones are not counted by code downstream or upstream.
    assert _hc_stats(s)["request_total"] == 0
    downstream = s.stats("http.test.downstream_rq_")
    assert downstream["http.test.downstream_rq_total"] == 2 and downstream["http.test.downstream_rq_completed"] == 0
    upstream = s.stats("cluster.app.upstream_rq_")
    assert upstream["cluster.app.upstream_rq_total"] == 2 and upstream["cluster.app.upstream_rq_completed"] == 0
    assert "cluster.app.upstream_rq_2xx" not in upstream and "cluster.app.upstream_rq_5xx" not in upstream
    # While the server fails health checks the filter answers them itself.
    s.admin("/healthcheck/fail", "POST")
    failed = s.request("/healthz")
    assert failed.status == 503 and failed.header("x-envoy-immediate-health-check-fail") == "true"
    assert app.health_checks == 2
    assert _log(s, 3) == ["503 -", "200 -", "503 LH health_check_failed"]


@pytest.mark.parametrize("kind", KINDS)
def test_pass_through_cache_answers_with_the_last_status(kind, app, filter_setups):
    # A cache period far longer than the test: nothing depends on timing.
    s = filter_setups(kind, _filter(True, "    cache_time: 3600s\n"), {"app": [app.port]})
    app.health = 503
    first = s.request("/healthz")
    assert first.status == 503 and app.health_checks == 1
    app.health = 200
    for _ in range(2):
        cached = s.request("/healthz")
        assert (cached.status, cached.body) == (503, b"")
        assert cached.header("x-envoy-upstream-healthchecked-cluster") == "front-proxy"
    assert app.health_checks == 1  # answered from the cache
    stats = _hc_stats(s)
    assert (stats["request_total"], stats["cached_response"], stats["failed"], stats["ok"]) == (2, 2, 2, 0)
    assert _log(s, 3) == ["503 -", "503 LH health_check_cached", "503 LH health_check_cached"]


@pytest.mark.parametrize("kind", KINDS)
def test_cluster_min_healthy_percentages(kind, app, filter_setups):
    dead = free_port()
    checks = (
        "health_checks:\n"
        "- {timeout: 0.5s, interval: 0.1s, no_traffic_interval: 0.1s, unhealthy_threshold: 1, healthy_threshold: 1,\n"
        "   http_health_check: {path: /healthz}}\n"
    )
    filters = "".join(
        _filter(False, f"    cluster_min_healthy_percentages: {{{percentages}}}\n", name=f"hc{i}", path=f"/hc/{i}")
        for i, percentages in enumerate(
            (
                "app: {value: 100}",
                "missing: {value: 10}",
                "empty: {value: 10}",
                "empty: {value: 0}",
                "half: {value: 50}",
                "half: {value: 50.9}",  # cut to 50, as Envoy does
                "app: {value: 100}, half: {value: 75}",
            )
        )
    )
    s = filter_setups(
        kind, filters, {"app": [app.port], "empty": [], "half": [app.port, dead]}, cluster_extra={"half": checks}
    )
    s.wait_for("one of half's hosts failing", lambda: s.stats("cluster.half.membership_healthy").get("cluster.half.membership_healthy") == 1)
    statuses = [s.request(f"/hc/{i}").status for i in range(7)]
    assert statuses == [200, 503, 503, 200, 200, 200, 503]
    stats = _hc_stats(s)
    assert stats["failed_cluster_not_found"] == 1
    assert stats["failed_cluster_empty"] == 1
    assert stats["failed_cluster_unhealthy"] == 1
    assert (stats["ok"], stats["failed"], stats["request_total"]) == (4, 3, 7)
    assert _log(s, 7) == [
        "200 - health_check_ok_cluster_healthy",
        "503 LH health_check_failed_no_cluster_found",
        "503 LH health_check_failed_cluster_empty",
        "200 - health_check_ok_cluster_healthy",
        "200 - health_check_ok_cluster_healthy",
        "200 - health_check_ok_cluster_healthy",
        "503 LH health_check_failed_cluster_unhealthy",
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_without_header_matchers_every_request_is_a_health_check(kind, app, filter_setups):
    no_headers = f'- name: hc\n  typed_config: {{"@type": {HC_TYPE}, pass_through_mode: false}}\n'
    s = filter_setups(kind, no_headers, {"app": [app.port]})
    assert [s.request(path).status for path in ("/", "/echo", "/anything")] == [200, 200, 200]
    assert app.health_checks == 0 and _hc_stats(s)["ok"] == 3
