"""The local rate limit HTTP filter, differentially: the same YAML and requests under pyevent-envoy and Envoy 1.40.

Each case starts a proxy (tests/proxy/http_filter_setup.py) with the
filter before the router and a real upstream, and counts tokens: every
bucket has a ``fill_interval`` of an hour, so a test never waits for a
refill and never depends on timing.  It checks what the client gets
(status, body, headers), what reached the upstream, the
``<stat_prefix>.http_local_rate_limit.*`` stats and the access log.
"""

from __future__ import annotations

import json

import pytest

from harness import KINDS
from http_filter_setup import FilterSetup, app, filter_setups  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(120)

RL_TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
HC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck"
ALWAYS = "{default_value: {numerator: 100, denominator: HUNDRED}, runtime_key: rl.percent}"
NEVER = "{default_value: {numerator: 0, denominator: HUNDRED}}"


def _rate_limit(max_tokens: int = 3, extra: str = "", *, name: str = "envoy.filters.http.local_ratelimit",
                prefix: str = "rl", enabled: str = ALWAYS, enforced: str = ALWAYS) -> str:
    return (
        f"- name: {name}\n"
        "  typed_config:\n"
        f'    "@type": {RL_TYPE}\n'
        f"    stat_prefix: {prefix}\n"
        f"    token_bucket: {{max_tokens: {max_tokens}, tokens_per_fill: 1, fill_interval: 3600s}}\n"
        f"    filter_enabled: {enabled}\n"
        f"    filter_enforced: {enforced}\n"
        f"{extra}"
    )


def _rl_stats(s: FilterSetup, prefix: str = "rl") -> dict[str, int]:
    start = f"{prefix}.http_local_rate_limit."
    return {k[len(start):]: v for k, v in s.stats(start).items()}


def _upstream_requests(s: FilterSetup) -> int:
    return s.stats("cluster.app.upstream_rq_total")["cluster.app.upstream_rq_total"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_bucket_lets_max_tokens_through_then_answers_429(kind, app, filter_setups):
    s = filter_setups(kind, _rate_limit(3), {"app": [app.port]})
    answers = [s.request("/echo") for _ in range(5)]
    assert [a.status for a in answers] == [200, 200, 200, 429, 429]
    limited = answers[3]
    assert limited.body == b"local_rate_limited"
    assert limited.header("content-type") == "text/plain"
    assert limited.header("content-length") == "18"
    assert limited.header("x-ratelimit-limit") is None  # only with enable_x_ratelimit_headers
    assert _upstream_requests(s) == 3
    assert _rl_stats(s) == {"enabled": 5, "enforced": 2, "ok": 3, "rate_limited": 2, "shadow_mode": 0}
    assert s.stats("http.test.downstream_rq_4xx")["http.test.downstream_rq_4xx"] == 2
    assert s.log_lines(5)[3:] == ["429 RL local_rate_limited"] * 2


@pytest.mark.parametrize("kind", KINDS)
def test_x_ratelimit_headers(kind, app, filter_setups):
    s = filter_setups(kind, _rate_limit(2, "    enable_x_ratelimit_headers: DRAFT_VERSION_03\n"), {"app": [app.port]})
    answers = [s.request("/echo") for _ in range(3)]
    seen = [(a.status, a.header("x-ratelimit-limit"), a.header("x-ratelimit-remaining"), a.header("x-ratelimit-reset"))
            for a in answers]
    # A token takes the whole hour to come back: reset says so once none is left.
    assert seen == [(200, "2", "1", "0"), (200, "2", "0", "3600"), (429, "2", "0", "3600")]


@pytest.mark.parametrize("kind", KINDS)
def test_status_and_response_headers_to_add(kind, app, filter_setups):
    extra = (
        "    status: {code: ServiceUnavailable}\n"
        "    response_headers_to_add:\n"
        '    - header: {key: x-limited, value: "by %REQ(x-client)%"}\n'
        "    - header: {key: retry-after, value: \"3600\"}\n"
    )
    s = filter_setups(kind, _rate_limit(1, extra), {"app": [app.port]})
    ok = s.request("/echo", headers={"x-client": "alice"})
    assert ok.status == 200 and ok.header("x-limited") is None
    limited = s.request("/echo", headers={"x-client": "bob"})
    assert (limited.status, limited.body) == (503, b"local_rate_limited")
    assert limited.header("x-limited") == "by bob"
    assert limited.header("retry-after") == "3600"


@pytest.mark.parametrize("kind", KINDS)
def test_a_status_below_400_means_429(kind, app, filter_setups):
    s = filter_setups(kind, _rate_limit(0, "    status: {code: OK}\n"), {"app": [app.port]})
    answer = s.request("/echo")
    assert (answer.status, answer.body) == (429, b"local_rate_limited")


@pytest.mark.parametrize("kind", KINDS)
def test_max_tokens_zero_limits_everything(kind, app, filter_setups):
    s = filter_setups(kind, _rate_limit(0, "    enable_x_ratelimit_headers: DRAFT_VERSION_03\n"), {"app": [app.port]})
    answers = [s.request("/echo") for _ in range(2)]
    assert [a.status for a in answers] == [429, 429]
    assert answers[0].header("x-ratelimit-limit") is None
    assert _upstream_requests(s) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_not_enforced_counts_and_marks_the_request(kind, app, filter_setups):
    extra = (
        "    request_headers_to_add_when_not_enforced:\n"
        "    - header: {key: x-rate-limited, value: \"true\"}\n"
    )
    s = filter_setups(kind, _rate_limit(1, extra, enforced=NEVER), {"app": [app.port]})
    answers = [s.request("/echo") for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    marks = [json.loads(a.body)["headers"].get("x-rate-limited") for a in answers]
    assert marks == [None, "true", "true"]
    assert _rl_stats(s) == {"enabled": 3, "enforced": 0, "ok": 1, "rate_limited": 2, "shadow_mode": 0}


@pytest.mark.parametrize("kind", KINDS)
def test_not_enabled_does_nothing(kind, app, filter_setups):
    # filter_enabled unset is 0 %: Envoy's default.
    unset = f'- name: rl\n  typed_config: {{"@type": {RL_TYPE}, stat_prefix: rl, token_bucket: {{max_tokens: 1, fill_interval: 3600s}}}}\n'
    s = filter_setups(kind, unset, {"app": [app.port]})
    assert [s.request("/echo").status for _ in range(3)] == [200, 200, 200]
    assert _rl_stats(s) == {"enabled": 0, "enforced": 0, "ok": 0, "rate_limited": 0, "shadow_mode": 0}


@pytest.mark.parametrize("kind", KINDS)
def test_one_bucket_for_every_worker(kind, app, filter_setups):
    s = filter_setups(kind, _rate_limit(3), {"app": [app.port]}, concurrency=2)
    # Each request on its own connection, which the kernel hands to either worker (SO_REUSEPORT):
    # three tokens for the process, not per worker.
    assert sorted(s.request("/echo").status for _ in range(12)) == [200] * 3 + [429] * 9
    assert _rl_stats(s) == {"enabled": 12, "enforced": 9, "ok": 3, "rate_limited": 9, "shadow_mode": 0}


@pytest.mark.parametrize("kind", KINDS)
def test_per_downstream_connection_buckets(kind, app, filter_setups):
    s = filter_setups(kind, _rate_limit(2, "    local_rate_limit_per_downstream_connection: true\n"), {"app": [app.port]})
    with s.connect() as first, s.connect() as second:
        assert [s.request("/echo", sock=first).status for _ in range(3)] == [200, 200, 429]
        assert [s.request("/echo", sock=second).status for _ in range(3)] == [200, 200, 429]
    assert _rl_stats(s)["rate_limited"] == 2


@pytest.mark.parametrize("kind", KINDS)
def test_route_and_virtual_host_overrides(kind, app, filter_setups):
    def override(prefix: str, tokens: int) -> str:
        return (
            f'{{"@type": {RL_TYPE}, stat_prefix: {prefix}, '
            f"token_bucket: {{max_tokens: {tokens}, fill_interval: 3600s}}, "
            f"filter_enabled: {ALWAYS}, filter_enforced: {ALWAYS}}}"
        )

    virtual_hosts = (
        "- name: limited\n"
        '  domains: ["limited.example"]\n'
        f"  typed_per_filter_config: {{rl: {override('vhost', 2)}}}\n"
        "  routes:\n"
        '  - match: {prefix: "/route"}\n'
        "    route: {cluster: app}\n"
        f"    typed_per_filter_config: {{rl: {override('route', 1)}}}\n"
        '  - match: {prefix: "/"}\n'
        "    route: {cluster: app}\n"
        "- name: all\n"
        '  domains: ["*"]\n'
        "  routes:\n"
        '  - match: {prefix: "/"}\n'
        "    route: {cluster: app}\n"
    )
    s = filter_setups(kind, _rate_limit(3, name="rl", prefix="filter"), {"app": [app.port]}, virtual_hosts=virtual_hosts)
    limited = {"host": "limited.example"}
    assert [s.request("/route", headers=limited).status for _ in range(2)] == [200, 429]
    assert [s.request("/other", headers=limited).status for _ in range(3)] == [200, 200, 429]
    assert [s.request("/other").status for _ in range(4)] == [200, 200, 200, 429]
    assert _rl_stats(s, "route") == {"enabled": 2, "enforced": 1, "ok": 1, "rate_limited": 1, "shadow_mode": 0}
    assert _rl_stats(s, "vhost") == {"enabled": 3, "enforced": 1, "ok": 2, "rate_limited": 1, "shadow_mode": 0}
    assert _rl_stats(s, "filter") == {"enabled": 4, "enforced": 1, "ok": 3, "rate_limited": 1, "shadow_mode": 0}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rate_limit_first", [True, False], ids=["rate-limit-first", "health-check-first"])
def test_filter_order_is_kept(kind, rate_limit_first, app, filter_setups):
    health_check = (
        f"- name: hc\n  typed_config:\n    \"@type\": {HC_TYPE}\n    pass_through_mode: false\n"
        '    headers: [{name: ":path", string_match: {exact: "/healthz"}}]\n'
    )
    limit = _rate_limit(1)
    s = filter_setups(kind, limit + health_check if rate_limit_first else health_check + limit, {"app": [app.port]})
    statuses = [s.request("/healthz").status for _ in range(2)]
    if rate_limit_first:
        # The rate limit sees the health checks first: the second one finds no token.
        assert statuses == [200, 429]
        assert _rl_stats(s)["enabled"] == 2
    else:
        # The health check filter answers them before the rate limit sees them.
        assert statuses == [200, 200]
        assert _rl_stats(s)["enabled"] == 0
