"""Route retry policies, differentially: the same YAML and requests through pyevent-envoy and Envoy 1.40.

Each case sends the same request(s) to both proxies (the upstream's flaky
paths fail a given number of times per key, then succeed) and compares what
the client gets (status, body, the headers that matter), how many attempts
reached the upstream, and how the cluster's retry stats moved on each
admin ``/stats``.  The expected values are spelled out for pyevent-envoy, so
the cases also run, and mean something, without Envoy.

Requests from 127.0.0.1 without ``x-forwarded-for`` are internal here
(``use_remote_address`` with ``internal_address_config``): their
``x-envoy-retry-on``, ``x-envoy-max-retries`` and
``x-envoy-upstream-rq-per-try-timeout-ms`` count.  With an
``x-forwarded-for`` a request is external, and those headers are stripped.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from typing import Any, NamedTuple, Optional

import pytest

from harness import KINDS, ProxyProcess, bootstrap_yaml, free_port, with_admin

pytestmark = pytest.mark.timeout(180)

VIRTUAL_HOSTS = """\
virtual_hosts:
- name: policy_on_vhost
  domains: ["vh.example"]
  retry_policy: {retry_on: "5xx", num_retries: 1}
  routes:
  - match: {prefix: "/vh/"}
    route: {cluster: app, prefix_rewrite: "/"}
  - match: {prefix: "/own/"}
    route: {cluster: app, prefix_rewrite: "/", retry_policy: {retry_on: "retriable-4xx"}}
- name: main
  domains: ["*"]
  routes:
  - match: {prefix: "/plain/"}
    route: {cluster: app, prefix_rewrite: "/"}
  - match: {prefix: "/r5xx/"}
    route: {cluster: app, prefix_rewrite: "/", retry_policy: {retry_on: "5xx", num_retries: 2}}
  - match: {prefix: "/codes/"}
    route:
      cluster: app
      prefix_rewrite: "/"
      retry_policy: {retry_on: "retriable-status-codes", retriable_status_codes: [418], num_retries: 2}
  - match: {prefix: "/gw/"}
    route: {cluster: app, prefix_rewrite: "/", retry_policy: {retry_on: "gateway-error", num_retries: 2}}
  - match: {prefix: "/r4xx/"}
    route: {cluster: app, prefix_rewrite: "/", retry_policy: {retry_on: "retriable-4xx"}}
  - match: {prefix: "/reset/"}
    route: {cluster: app, prefix_rewrite: "/", retry_policy: {retry_on: "reset", num_retries: 2}}
  - match: {prefix: "/rbr/"}
    route: {cluster: app, prefix_rewrite: "/", retry_policy: {retry_on: "reset-before-request"}}
  - match: {prefix: "/cf/"}
    route: {cluster: down, prefix_rewrite: "/", retry_policy: {retry_on: "connect-failure", num_retries: 2}}
  - match: {prefix: "/cf4xx/"}
    route: {cluster: down, prefix_rewrite: "/", retry_policy: {retry_on: "retriable-4xx"}}
  - match: {prefix: "/rbrcf/"}
    route: {cluster: down, prefix_rewrite: "/", retry_policy: {retry_on: "reset-before-request"}}
  - match: {prefix: "/pair/"}
    route: {cluster: pair, prefix_rewrite: "/", retry_policy: {retry_on: "connect-failure", num_retries: 3}}
  - match: {prefix: "/pt/"}
    route:
      cluster: app
      prefix_rewrite: "/"
      timeout: 20s
      retry_policy: {retry_on: "5xx", num_retries: 2, per_try_timeout: 0.5s}
  - match: {prefix: "/ptonly/"}
    route: {cluster: app, prefix_rewrite: "/", timeout: 20s, retry_policy: {per_try_timeout: 0.5s}}
  - match: {prefix: "/bo/"}
    route:
      cluster: app
      prefix_rewrite: "/"
      timeout: 0.5s
      retry_policy: {retry_on: "5xx", num_retries: 100, retry_back_off: {base_interval: 60s}}
  - match: {prefix: "/quick/"}
    route:
      cluster: app
      prefix_rewrite: "/"
      retry_policy: {retry_on: "5xx", num_retries: 3, retry_back_off: {base_interval: 0.001s}}
  - match: {prefix: "/cb0/"}
    route: {cluster: cb0, prefix_rewrite: "/", retry_policy: {retry_on: "5xx,reset"}}
  - match: {prefix: "/cb1slow/"}
    route: {cluster: cb1, prefix_rewrite: "/", retry_policy: {retry_on: "5xx", retry_back_off: {base_interval: 60s}}}
  - match: {prefix: "/cb1/"}
    route: {cluster: cb1, prefix_rewrite: "/", retry_policy: {retry_on: "5xx"}}
"""

# Requests from 127.0.0.1 without x-forwarded-for are internal: their x-envoy-* headers count.
HCM_EXTRA = """\
use_remote_address: true
internal_address_config:
  cidr_ranges: [{address_prefix: 127.0.0.1, prefix_len: 32}]
upgrade_configs: [{upgrade_type: websocket}]
"""

# The cluster stats a retry moves (compared between the proxies); the back-off
# counter always moves with upstream_rq_retry here (test_back_off_counted).
_RETRY_STAT = re.compile(
    r"cluster\.[a-z0-9]+\.(retry\.upstream_rq_\d+|upstream_rq_retry(_success|_limit_exceeded|_overflow)?"
    r"|upstream_rq_per_try_timeout|retry_or_shadow_abandoned|upstream_rq_timeout|upstream_rq_\d+"
    r"|upstream_cx_connect_fail)"
)


def _cluster(name: str, ports: list[int], extra: str = "") -> str:
    endpoints = "".join(
        f"        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n" for port in ports
    )
    return (
        f"  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n{extra}"
        f"    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n{endpoints}"
    )


def _config(port: int, admin_port: int, upstream_port: int, closed_port: int, hcm_extra: str = HCM_EXTRA) -> str:
    config = bootstrap_yaml(port, {"app": [upstream_port]}, VIRTUAL_HOSTS, hcm_extra=hcm_extra)
    config += _cluster("down", [closed_port])
    config += _cluster("pair", [closed_port, upstream_port])
    config += _cluster("cb0", [upstream_port], "    circuit_breakers: {thresholds: [{max_retries: 0}]}\n")
    config += _cluster("cb1", [upstream_port], "    circuit_breakers: {thresholds: [{max_retries: 1}]}\n")
    return with_admin(config, admin_port)


class Proxy(NamedTuple):
    kind: str
    port: int
    admin_port: int
    process: ProxyProcess


@pytest.fixture(scope="module")
def closed_port():
    """A port nothing listens on (connects to it are refused)."""
    return free_port()


@pytest.fixture(scope="module")
def proxies(upstream, closed_port):
    started = {}
    try:
        for kind in KINDS:
            port, admin_port = free_port(), free_port()
            process = ProxyProcess(kind, _config(port, admin_port, upstream.port, closed_port), port)
            started[kind] = Proxy(kind, port, admin_port, process)
        yield started
    finally:
        for proxy in started.values():
            code = proxy.process.stop()
            if proxy.kind == "pyevent-envoy":
                assert code == 0, proxy.process.stderr
                assert "Traceback" not in proxy.process.stderr, proxy.process.stderr


class Answer(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]
    elapsed: float


def exchange(
    proxy: Proxy,
    method: str,
    path: str,
    *,
    headers: Optional[dict[str, str]] = None,
    body: Any = None,
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    try:
        started = time.monotonic()
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        elapsed = time.monotonic() - started
        return Answer(response.status, data, {k.lower(): v for k, v in response.getheaders()}, elapsed)
    finally:
        conn.close()


def retry_stats(proxy: Proxy) -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=10)
    try:
        conn.request("GET", "/stats?filter=%5Ecluster%5C.")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if _RETRY_STAT.fullmatch(name) and value.isdigit():
            out[name] = int(value)
    return out


def moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The stats that changed, by how much."""
    return {name: value - before.get(name, 0) for name, value in after.items() if value != before.get(name, 0)}


class Case(NamedTuple):
    status: int
    body: bytes
    attempts: int
    stats: dict[str, int]


def run_case(proxy: Proxy, upstream, key: str, method: str, path: str, **kwargs: Any) -> tuple[Case, Answer]:
    """One request to ``path`` (``{key}`` is replaced by a key unique to the proxy and case).

    A list body is sent chunked, one chunk per item.
    """
    unique = f"{proxy.kind}-{key}"
    if isinstance(kwargs.get("body"), list):
        kwargs["body"] = iter(kwargs["body"])
    before = retry_stats(proxy)
    answer = exchange(proxy, method, path.format(key=unique), **kwargs)
    stats = moved(before, retry_stats(proxy))
    return Case(answer.status, _comparable(answer.body), upstream.attempts(unique), stats), answer


def _comparable(body: bytes) -> bytes:
    """The body, or for the upstream's JSON description what does not vary between proxies."""
    if not body.startswith(b"{"):
        return body
    description = json.loads(body)
    kept = {name: description[name] for name in ("method", "attempt", "body", "body_length")}
    kept["content-length"] = description["headers"].get("content-length")
    return json.dumps(kept, sort_keys=True).encode()


def differential(proxies, upstream, key: str, method: str, path: str, **kwargs: Any) -> tuple[Case, dict[str, Answer]]:
    """Run a case on every proxy; returns pyevent-envoy's result after checking Envoy's is the same."""
    results = {kind: run_case(proxy, upstream, key, method, path, **kwargs) for kind, proxy in proxies.items()}
    ours = results["pyevent-envoy"][0]
    if "envoy" in results:
        assert ours == results["envoy"][0], "pyevent-envoy, then Envoy"
    return ours, {kind: answer for kind, (_, answer) in results.items()}


def flaky_json(body: bytes) -> dict:
    return json.loads(body)


# ------------------------------------------------------------------------------------------
# Responses.


def test_5xx_retried_then_200(proxies, upstream):
    case, answers = differential(proxies, upstream, "5xx-once", "GET", "/r5xx/flaky/{key}/1/503")
    assert (case.status, case.attempts) == (200, 2)
    assert flaky_json(case.body)["attempt"] == 2
    assert case.stats == {
        "cluster.app.upstream_rq_retry": 1,
        "cluster.app.upstream_rq_retry_success": 1,
        "cluster.app.retry.upstream_rq_503": 1,
        "cluster.app.upstream_rq_200": 1,
    }
    for answer in answers.values():
        assert "x-envoy-upstream-service-time" in answer.headers


def test_retries_exhausted_relay_the_last_503(proxies, upstream):
    case, answers = differential(proxies, upstream, "5xx-always", "GET", "/r5xx/flaky/{key}/9/503")
    assert (case.status, case.body, case.attempts) == (503, b"attempt 3 failed", 3)
    assert case.stats == {
        "cluster.app.upstream_rq_retry": 2,
        "cluster.app.upstream_rq_retry_limit_exceeded": 1,
        "cluster.app.retry.upstream_rq_503": 2,
        "cluster.app.upstream_rq_503": 1,
    }
    for answer in answers.values():
        assert answer.headers["x-attempt"] == "3"  # the upstream's own response, headers and all


def test_retriable_status_codes(proxies, upstream):
    case, _ = differential(proxies, upstream, "codes-418", "GET", "/codes/flaky/{key}/2/418")
    assert (case.status, case.attempts) == (200, 3)
    assert case.stats["cluster.app.retry.upstream_rq_418"] == 2
    # A code not listed is relayed at once.
    case, _ = differential(proxies, upstream, "codes-503", "GET", "/codes/flaky/{key}/1/503")
    assert (case.status, case.body, case.attempts) == (503, b"attempt 1 failed", 1)
    assert case.stats == {"cluster.app.upstream_rq_503": 1}


def test_gateway_error_retries_502_but_not_500(proxies, upstream):
    case, _ = differential(proxies, upstream, "gw-500", "GET", "/gw/flaky/{key}/1/500")
    assert (case.status, case.body, case.attempts) == (500, b"attempt 1 failed", 1)
    assert case.stats == {"cluster.app.upstream_rq_500": 1}
    case, _ = differential(proxies, upstream, "gw-502", "GET", "/gw/flaky/{key}/1/502")
    assert (case.status, case.attempts) == (200, 2)


def test_retriable_4xx_is_409_only(proxies, upstream):
    case, _ = differential(proxies, upstream, "4xx-409", "GET", "/r4xx/flaky/{key}/1/409")
    assert (case.status, case.attempts) == (200, 2)
    case, _ = differential(proxies, upstream, "4xx-404", "GET", "/r4xx/flaky/{key}/1/404")
    assert (case.status, case.attempts) == (404, 1)


def test_virtual_host_policy_and_route_override(proxies, upstream):
    headers = {"host": "vh.example"}
    case, _ = differential(proxies, upstream, "vh-policy", "GET", "/vh/flaky/{key}/1/503", headers=headers)
    assert (case.status, case.attempts) == (200, 2)
    # The route's own policy replaces the virtual host's as a whole.
    case, _ = differential(proxies, upstream, "vh-override", "GET", "/own/flaky/{key}/1/503", headers=headers)
    assert (case.status, case.attempts) == (503, 1)


# ------------------------------------------------------------------------------------------
# Resets and connect failures.


def test_reset_retried_then_200(proxies, upstream):
    case, _ = differential(proxies, upstream, "reset-once", "GET", "/reset/flaky/{key}/1/reset")
    assert (case.status, case.attempts) == (200, 2)
    assert case.stats == {
        "cluster.app.upstream_rq_retry": 1,
        "cluster.app.upstream_rq_retry_success": 1,
        "cluster.app.upstream_rq_200": 1,
    }


def test_resets_exhausted_answer_the_local_reply(proxies, upstream):
    case, answers = differential(proxies, upstream, "reset-always", "GET", "/reset/flaky/{key}/9/reset")
    assert (case.status, case.attempts) == (503, 3)
    assert case.body == (
        b"upstream connect error or disconnect/reset before headers. retried and the latest reset reason: "
        b"connection termination"
    )
    assert case.stats == {
        "cluster.app.upstream_rq_retry": 2,
        "cluster.app.upstream_rq_retry_limit_exceeded": 1,
        "cluster.app.upstream_rq_503": 1,
    }
    for answer in answers.values():
        assert answer.headers["content-type"] == "text/plain"


def test_reset_before_request_does_not_retry_a_sent_request(proxies, upstream):
    case, _ = differential(proxies, upstream, "rbr", "GET", "/rbr/flaky/{key}/1/reset")
    assert (case.status, case.attempts) == (503, 1)
    assert case.body.endswith(b"reset reason: connection termination")


def test_connect_failures_retried_then_exhausted(proxies, upstream):
    case, _ = differential(proxies, upstream, "cf", "GET", "/cf/x")
    assert case.status == 503
    assert case.body == (
        b"upstream connect error or disconnect/reset before headers. retried and the latest reset reason: "
        b"remote connection failure"
    )
    assert case.stats == {
        "cluster.down.upstream_cx_connect_fail": 3,
        "cluster.down.upstream_rq_retry": 2,
        "cluster.down.upstream_rq_retry_limit_exceeded": 1,
        "cluster.down.upstream_rq_503": 1,
    }


def test_connect_failure_not_retried_without_a_matching_condition(proxies, upstream):
    case, _ = differential(proxies, upstream, "cf4xx", "GET", "/cf4xx/x")
    assert case.body == b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    assert case.stats == {"cluster.down.upstream_cx_connect_fail": 1, "cluster.down.upstream_rq_503": 1}
    # reset-before-request covers a connect failure: nothing was sent.
    case, _ = differential(proxies, upstream, "rbrcf", "GET", "/rbrcf/x")
    assert case.stats["cluster.down.upstream_cx_connect_fail"] == 2
    assert b"retried and the latest" in case.body


def test_connect_failure_then_another_host(proxies, upstream):
    # Round robin over a closed port and the upstream: whichever comes first, the answer is 200.
    for i in range(3):
        results = {
            kind: run_case(proxy, upstream, f"pair-{i}", "GET", "/pair/flaky/{key}/0/503")
            for kind, proxy in proxies.items()
        }
        for case, _ in results.values():
            assert (case.status, case.attempts) == (200, 1)
            fails = case.stats.get("cluster.pair.upstream_cx_connect_fail", 0)
            assert case.stats.get("cluster.pair.upstream_rq_retry", 0) == fails <= 1


# ------------------------------------------------------------------------------------------
# Timeouts.


def test_per_try_timeout_then_success(proxies, upstream):
    case, answers = differential(proxies, upstream, "pt-once", "GET", "/pt/flaky/{key}/1/sleep-5")
    assert (case.status, case.attempts) == (200, 2)
    assert case.stats == {
        "cluster.app.upstream_rq_per_try_timeout": 1,
        "cluster.app.upstream_rq_retry": 1,
        "cluster.app.upstream_rq_retry_success": 1,
        "cluster.app.upstream_rq_200": 1,
    }
    for answer in answers.values():
        assert 0.4 <= answer.elapsed < 4.5
    sent = [headers for _, path, headers in upstream.requests if "-pt-once/" in path]
    assert [h.get("x-envoy-expected-rq-timeout-ms") for h in sent] == ["500"] * len(sent)


def test_per_try_timeouts_exhausted(proxies, upstream):
    case, answers = differential(proxies, upstream, "pt-always", "GET", "/pt/flaky/{key}/9/sleep-5")
    assert (case.status, case.body, case.attempts) == (504, b"upstream request timeout", 3)
    assert case.stats == {
        "cluster.app.upstream_rq_per_try_timeout": 3,
        "cluster.app.upstream_rq_retry": 2,
        "cluster.app.upstream_rq_retry_limit_exceeded": 1,
        "cluster.app.upstream_rq_504": 1,
    }
    for answer in answers.values():
        assert 1.4 <= answer.elapsed < 10


def test_per_try_timeout_without_retry_conditions(proxies, upstream):
    case, answers = differential(proxies, upstream, "pt-only", "GET", "/ptonly/flaky/{key}/9/sleep-5")
    assert (case.status, case.attempts) == (504, 1)
    assert case.stats == {"cluster.app.upstream_rq_per_try_timeout": 1, "cluster.app.upstream_rq_504": 1}
    for answer in answers.values():
        assert 0.4 <= answer.elapsed < 4.5


def test_route_timeout_covers_the_back_off(proxies, upstream):
    # Back-offs drawn from [0, 60 s): the 0.5 s route timeout ends the request during one.
    for kind, proxy in proxies.items():
        key = f"{kind}-bo"
        before = retry_stats(proxy)
        answer = exchange(proxy, "GET", f"/bo/flaky/{key}/999/503")
        stats = moved(before, retry_stats(proxy))
        assert (answer.status, answer.body) == (504, b"upstream request timeout"), kind
        assert 0.4 <= answer.elapsed < 4.5, kind
        attempts = upstream.attempts(key)
        assert attempts >= 1
        # Only the retries whose back-off ended count; the one cut short does not.
        # A retry that started just before the timeout may not have reached the
        # upstream yet (Envoy counts it then): one more than the attempts seen.
        assert attempts - 1 <= stats.get("cluster.app.upstream_rq_retry", 0) <= attempts, (kind, stats)
        assert attempts - 1 <= stats.get("cluster.app.retry.upstream_rq_503", 0) <= attempts, (kind, stats)


def test_expected_timeout_header_shrinks_on_retries(proxies, upstream):
    differential(proxies, upstream, "expected", "GET", "/quick/flaky/{key}/3/503")
    for kind in proxies:
        sent = [h["x-envoy-expected-rq-timeout-ms"] for _, path, h in upstream.requests if f"/{kind}-expected/" in path]
        values = [int(v) for v in sent]
        assert len(values) == 4 and values[0] == 15000, (kind, values)
        assert values == sorted(values, reverse=True) and values[-1] > 14000, (kind, values)


# ------------------------------------------------------------------------------------------
# Request bodies.


def test_post_body_sent_again_intact(proxies, upstream):
    body = b"retry me: " + bytes(range(32, 127))
    case, _ = differential(
        proxies, upstream, "post", "POST", "/r5xx/flaky/{key}/2/503", body=body, headers={"content-type": "text/plain"}
    )
    assert (case.status, case.attempts) == (200, 3)
    described = flaky_json(case.body)
    assert described["body"].encode("latin-1") == body
    assert described["content-length"] == str(len(body))


def test_chunked_body_sent_again_intact(proxies, upstream):
    chunks = [b"first chunk,", b"second chunk,", b"last"]
    case, _ = differential(proxies, upstream, "chunked", "POST", "/r5xx/flaky/{key}/1/503", body=chunks)
    assert (case.status, case.attempts) == (200, 2)
    assert flaky_json(case.body)["body"] == "first chunk,second chunk,last"


def test_body_over_the_buffer_limit_is_not_retried(proxies, upstream):
    body = b"x" * (1024 * 1024 + 1)  # the listener's per_connection_buffer_limit_bytes, plus one
    case, _ = differential(proxies, upstream, "big", "POST", "/r5xx/flaky/{key}/1/503", body=body)
    assert (case.status, case.body, case.attempts) == (503, b"attempt 1 failed", 1)
    assert case.stats == {"cluster.app.retry_or_shadow_abandoned": 1, "cluster.app.upstream_rq_503": 1}


def test_upgrade_request_retried_until_answered(proxies, upstream):
    for kind, proxy in proxies.items():
        key = f"{kind}-upgrade"
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
            sock.sendall(
                f"GET /r5xx/flaky/{key}/1/503 HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n".encode()
            )
            data = b""
            while True:  # the refusal of an upgrade ends with the connection
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        # The second attempt's 200 (not a 101) refuses the upgrade: relayed without a body.
        assert data.startswith(b"HTTP/1.1 200 OK\r\n"), (kind, data)
        assert data.endswith(b"\r\n\r\n"), (kind, data)
        assert upstream.attempts(key) == 2, kind


# ------------------------------------------------------------------------------------------
# Request headers.


def test_retry_headers_of_an_internal_request(proxies, upstream):
    headers = {"x-envoy-retry-on": "5xx", "x-envoy-max-retries": "3"}
    case, _ = differential(proxies, upstream, "hdr-retry", "GET", "/plain/flaky/{key}/3/503", headers=headers)
    assert (case.status, case.attempts) == (200, 4)
    for kind in proxies:
        (sent, *_) = [h for _, path, h in upstream.requests if f"/{kind}-hdr-retry/" in path]
        # Consumed: they never reach the upstream.
        assert not {name.lower() for name in sent} & {"x-envoy-retry-on", "x-envoy-max-retries"}
        assert sent["x-envoy-internal"] == "true"


def test_max_retries_header_without_retry_on_does_nothing(proxies, upstream):
    case, _ = differential(proxies, upstream, "hdr-max-only", "GET", "/plain/flaky/{key}/1/503", headers={"x-envoy-max-retries": "3"})
    assert (case.status, case.attempts) == (503, 1)


def test_max_retries_header_overrides_the_policy(proxies, upstream):
    case, _ = differential(proxies, upstream, "hdr-max", "GET", "/r5xx/flaky/{key}/9/503", headers={"x-envoy-max-retries": "0"})
    assert (case.status, case.attempts) == (503, 1)
    assert case.stats == {"cluster.app.upstream_rq_retry_limit_exceeded": 1, "cluster.app.upstream_rq_503": 1}


def test_per_try_timeout_header(proxies, upstream):
    headers = {"x-envoy-retry-on": "5xx", "x-envoy-upstream-rq-per-try-timeout-ms": "500"}
    case, answers = differential(proxies, upstream, "hdr-pt", "GET", "/plain/flaky/{key}/1/sleep-5", headers=headers)
    assert (case.status, case.attempts) == (200, 2)
    assert case.stats["cluster.app.upstream_rq_per_try_timeout"] == 1
    for answer in answers.values():
        assert 0.4 <= answer.elapsed < 4.5


def test_retry_headers_of_an_external_request_are_stripped(proxies, upstream):
    headers = {"x-forwarded-for": "192.0.2.7", "x-envoy-retry-on": "5xx", "x-envoy-max-retries": "3"}
    case, _ = differential(proxies, upstream, "hdr-external", "GET", "/plain/flaky/{key}/1/503", headers=headers)
    assert (case.status, case.attempts) == (503, 1)
    for kind in proxies:
        (sent,) = [h for _, path, h in upstream.requests if f"/{kind}-hdr-external/" in path]
        assert not {name.lower() for name in sent} & {"x-envoy-retry-on", "x-envoy-max-retries", "x-envoy-internal"}


# ------------------------------------------------------------------------------------------
# The circuit breaker and the downstream going away.


def test_max_retries_circuit_breaker_overflow(proxies, upstream):
    case, _ = differential(proxies, upstream, "cb0", "GET", "/cb0/flaky/{key}/1/503")
    assert (case.status, case.body, case.attempts) == (503, b"attempt 1 failed", 1)
    assert case.stats == {"cluster.cb0.upstream_rq_retry_overflow": 1, "cluster.cb0.upstream_rq_503": 1}


def test_client_gone_during_back_off_releases_the_retry(proxies, upstream):
    for kind, proxy in proxies.items():
        key = f"{kind}-gone"
        before = retry_stats(proxy)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
            sock.sendall(f"GET /cb1slow/flaky/{key}/9/503 HTTP/1.1\r\nhost: a\r\n\r\n".encode())
            deadline = time.monotonic() + 10
            while upstream.attempts(key) < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)  # the 503 is in, the retry waits out its back-off (up to 60 s)
        # The client is gone: the waiting retry is dropped, its circuit breaker place given back
        # (cb1 allows one retry at a time), so another request on the cluster can retry.
        deadline = time.monotonic() + 10
        for i in range(1000):
            answer = exchange(proxy, "GET", f"/cb1/flaky/{kind}-after-gone-{i}/1/503")
            if answer.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status == 200, kind
        time.sleep(0.3)
        assert upstream.attempts(key) == 1, kind


def test_concurrent_retries_beyond_max_retries_overflow(proxies, upstream):
    for kind, proxy in proxies.items():
        before = retry_stats(proxy)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
            # The first request's retry holds cb1's only place through a long back-off...
            sock.sendall(f"GET /cb1slow/flaky/{kind}-hold/1/503 HTTP/1.1\r\nhost: a\r\n\r\n".encode())
            deadline = time.monotonic() + 10
            while upstream.attempts(f"{kind}-hold") < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)
            # ...so the second one's retry overflows: its 503 goes downstream.
            answer = exchange(proxy, "GET", f"/cb1/flaky/{kind}-overflow/1/503")
        assert (answer.status, answer.body) == (503, b"attempt 1 failed"), kind
        stats = moved(before, retry_stats(proxy))
        assert stats["cluster.cb1.upstream_rq_retry_overflow"] == 1, (kind, stats)
        assert upstream.attempts(f"{kind}-overflow") == 1, kind


# ------------------------------------------------------------------------------------------
# Stats and access logs.


RETRY_COUNTERS = (
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_rq_retry_limit_exceeded",
    "upstream_rq_retry_overflow",
    "upstream_rq_retry_backoff_exponential",
    "upstream_rq_retry_backoff_ratelimited",
    "upstream_rq_per_try_timeout",
    "retry_or_shadow_abandoned",
)


def test_back_off_counted(proxies, upstream):
    for kind, proxy in proxies.items():
        conn = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=10)
        conn.request("GET", "/stats?filter=upstream_rq_retry%28_backoff_exponential%29%3F%24")
        stats = dict(line.split(": ") for line in conn.getresponse().read().decode().splitlines())
        conn.close()
        for cluster in ("app", "down", "cb1"):
            retries = stats[f"cluster.{cluster}.upstream_rq_retry"]
            assert stats[f"cluster.{cluster}.upstream_rq_retry_backoff_exponential"] == retries, (kind, cluster)


def test_retry_stats_are_shown_like_envoy(proxies):
    for kind, proxy in proxies.items():
        conn = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=10)
        conn.request("GET", "/stats?filter=%5Ecluster%5C.app%5C.")
        names = {line.split(": ")[0] for line in conn.getresponse().read().decode().splitlines()}
        conn.close()
        assert {f"cluster.app.{name}" for name in RETRY_COUNTERS} <= names, kind
        # The response classes of the responses a retry replaced, as Envoy names them.
        assert {"cluster.app.retry.upstream_rq_completed", "cluster.app.retry.upstream_rq_5xx"} <= names, kind


ACCESS_LOG = """\
access_log:
- name: envoy.access_loggers.file
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: {path}
    log_format:
      text_format_source:
        inline_string: "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_REQUEST_ATTEMPT_COUNT%\\n"
"""


@pytest.mark.parametrize("kind", KINDS)
def test_response_flags_in_the_access_log(kind, upstream, closed_port, tmp_path):
    log = tmp_path / "access.log"
    port, admin_port = free_port(), free_port()
    config = _config(port, admin_port, upstream.port, closed_port, HCM_EXTRA + ACCESS_LOG.format(path=log))
    process = ProxyProcess(kind, config, port)
    proxy = Proxy(kind, port, admin_port, process)
    paths = [
        f"/r5xx/flaky/{kind}-log-1/1/503",
        f"/r5xx/flaky/{kind}-log-2/9/503",
        f"/pt/flaky/{kind}-log-3/9/sleep-5",
        f"/ptonly/flaky/{kind}-log-4/9/sleep-5",
        "/cf/x",
        f"/cb0/flaky/{kind}-log-5/1/503",
        f"/cb0/flaky/{kind}-log-6/1/reset",
    ]
    try:
        for path in paths:
            exchange(proxy, "GET", path)
    finally:
        # Stopped before reading: Envoy writes its log file out on exit.
        process.stop()
    assert "Traceback" not in process.stderr, process.stderr
    lines = log.read_text().splitlines()
    assert lines == [
        f"/flaky/{kind}-log-1/1/503 200 - 2",
        f"/flaky/{kind}-log-2/9/503 503 URX 3",
        f"/flaky/{kind}-log-3/9/sleep-5 504 URX,UT 3",
        f"/flaky/{kind}-log-4/9/sleep-5 504 UT 1",
        "/x 503 URX,UF 3",
        f"/flaky/{kind}-log-5/1/503 503 UO 1",
        f"/flaky/{kind}-log-6/1/reset 503 UO,UC 1",
    ]
