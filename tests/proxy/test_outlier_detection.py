"""Outlier detection, differentially: the same YAML and upstreams under pyevent-envoy and Envoy 1.40.

Upstreams ``a`` and ``b``; ``b`` is made to fail (``Upstream.fail_with``)
and the cases poll the admin stats until the detector has acted (never a
fixed sleep), then compare where requests go and the
``outlier_detection.*`` stats.  One worker, so a host's consecutive errors
are counted in one place in both proxies.
"""

from __future__ import annotations

import pytest

from harness import KINDS

pytestmark = pytest.mark.timeout(120)


def _outlier_yaml(**fields: object) -> str:
    config = {"interval": "0.1s", "base_ejection_time": "0.5s", "max_ejection_percent": 50, **fields}
    body = ", ".join(f"{name}: {value}" for name, value in config.items())
    return f"outlier_detection: {{{body}}}\n"


#: Every outlier_detection stat Envoy 1.40 shows for a cluster with outlier detection.
STAT_NAMES = {
    "ejections_active",
    "ejections_consecutive_5xx",
    "ejections_detected_consecutive_5xx",
    "ejections_detected_consecutive_gateway_failure",
    "ejections_detected_consecutive_local_origin_failure",
    "ejections_detected_degradation",
    "ejections_detected_failure_percentage",
    "ejections_detected_local_origin_failure_percentage",
    "ejections_detected_local_origin_success_rate",
    "ejections_detected_success_rate",
    "ejections_enforced_consecutive_5xx",
    "ejections_enforced_consecutive_gateway_failure",
    "ejections_enforced_consecutive_local_origin_failure",
    "ejections_enforced_failure_percentage",
    "ejections_enforced_local_origin_failure_percentage",
    "ejections_enforced_local_origin_success_rate",
    "ejections_enforced_success_rate",
    "ejections_enforced_total",
    "ejections_overflow",
    "ejections_success_rate",
    "ejections_total",
}


def _od(stats: dict[str, int]) -> dict[str, int]:
    return {name[len("outlier_detection."):]: value for name, value in stats.items() if name.startswith("outlier_detection.")}


@pytest.mark.parametrize("kind", KINDS)
def test_consecutive_5xx_ejects_and_the_host_returns(kind, upstreams, setups):
    a, b = upstreams
    s = setups(kind, [a.port, b.port], _outlier_yaml(consecutive_5xx=3))
    b.fail_with = 500
    answers = [s.get() for _ in range(6)]  # round robin: three 500s from b
    assert sorted(status for status, _ in answers) == [200, 200, 200, 500, 500, 500]
    stats = s.wait_for_stats("b ejected", lambda st: st.get("outlier_detection.ejections_active") == 1)
    assert s.spread() == [(200, "a")] * 8
    od = _od(stats)
    assert set(od) == STAT_NAMES
    assert od["ejections_enforced_total"] == od["ejections_enforced_consecutive_5xx"] == 1
    assert od["ejections_detected_consecutive_5xx"] == od["ejections_total"] == od["ejections_consecutive_5xx"] == 1
    assert od["ejections_overflow"] == 0 and od["ejections_detected_consecutive_gateway_failure"] == 0
    assert stats["membership_healthy"] == 1
    b.fail_with = None
    s.wait_for_stats("b back", lambda st: st.get("outlier_detection.ejections_active") == 0)
    s.wait_for("b in rotation", lambda: {name for _, name in s.spread(4)} == {"a", "b"})


@pytest.mark.parametrize("kind", KINDS)
def test_gateway_failures_are_detected_and_enforced_only_when_asked(kind, upstreams, setups):
    a, b = upstreams
    # consecutive_5xx out of reach: only the gateway-failure count can act.
    s = setups(kind, [a.port, b.port], _outlier_yaml(consecutive_5xx=1000, consecutive_gateway_failure=2))
    b.fail_with = 503
    for _ in range(4):
        s.get()
    stats = s.wait_for_stats("detected", lambda st: st.get("outlier_detection.ejections_detected_consecutive_gateway_failure") == 1)
    od = _od(stats)
    # enforcing_consecutive_gateway_failure is 0 by default: detected, not ejected.
    assert od["ejections_active"] == 0 and od["ejections_enforced_total"] == 0
    assert sorted(status for status, _ in s.spread(4)) == [200, 200, 503, 503]  # b still takes its share


@pytest.mark.parametrize("kind", KINDS)
def test_enforced_gateway_failure_ejection(kind, upstreams, setups):
    a, b = upstreams
    extra = _outlier_yaml(consecutive_5xx=1000, consecutive_gateway_failure=2, enforcing_consecutive_gateway_failure=100)
    s = setups(kind, [a.port, b.port], extra)
    b.fail_with = 502
    for _ in range(4):
        s.get()
    stats = s.wait_for_stats("b ejected", lambda st: st.get("outlier_detection.ejections_active") == 1)
    od = _od(stats)
    assert od["ejections_enforced_consecutive_gateway_failure"] == od["ejections_enforced_total"] == 1
    assert od["ejections_total"] == 0  # Envoy's deprecated total counts 5xx ejections only
    assert s.spread() == [(200, "a")] * 8


@pytest.mark.parametrize("kind", KINDS)
def test_max_ejection_percent_overflows(kind, upstreams, setups):
    a, b = upstreams
    s = setups(kind, [a.port, b.port], _outlier_yaml(consecutive_5xx=2))
    a.fail_with = b.fail_with = 500
    s.wait_for_stats(
        "one ejected, one overflow",
        lambda st: (s.get(), st.get("outlier_detection.ejections_overflow", 0) >= 1)[1],
    )
    od = _od(s.stats())
    assert od["ejections_active"] == 1 and od["ejections_enforced_total"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_default_max_ejection_percent_with_two_hosts(kind, upstreams, setups):
    a, b = upstreams
    s = setups(kind, [a.port, b.port], "outlier_detection: {consecutive_5xx: 2, interval: 0.1s}\n")
    b.fail_with = 500
    s.wait_for_stats(
        "b's bout handled",
        lambda st: (s.get(), st.get("outlier_detection.ejections_detected_consecutive_5xx", 0) >= 1)[1],
    )
    od = _od(s.stats())
    # One host of two is 50 %, over the default 10 %: Envoy 1.40 ejects nothing.
    assert od["ejections_active"] == 0 and od["ejections_overflow"] == od["ejections_detected_consecutive_5xx"] >= 1
