"""Success-rate and failure-percentage ejection, and degraded hosts' share, against Envoy 1.40.

Five upstreams ``a``..``e`` behind one proxy (one worker, round robin);
``b`` answers 503 to a share of the requests (``Upstream.fail_one_in``).
Each case drives bursts of traffic and polls the admin (never a fixed
sleep) until the detector has judged an interval in which every host had
the request volume, then compares what both proxies did.  The interval
is 1 s: a burst of 150 requests straddles at most one interval boundary,
so one of the two intervals has at least 15 requests for every host; a
case sends another burst only when no interval was judged yet.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from harness import KINDS
from upstream import Upstream

pytestmark = pytest.mark.timeout(180)

NAMES = "abcde"
#: Requests per burst: 30 per host.
BURST = 150


@pytest.fixture
def five_upstreams():
    made = [Upstream(name) for name in NAMES]
    yield made
    for upstream in made:
        upstream.stop()


def _outlier_yaml(**fields: object) -> str:
    # Consecutive errors out of reach: only the interval's rates can eject.
    config = {
        "interval": "1s",
        "base_ejection_time": "60s",
        "consecutive_5xx": 100000,
        "consecutive_gateway_failure": 100000,
        "success_rate_request_volume": 10,
        "failure_percentage_request_volume": 10,
        **fields,
    }
    body = ", ".join(f"{name}: {value}" for name, value in config.items())
    return f"outlier_detection: {{{body}}}\n"


def _od(stats: dict[str, int]) -> dict[str, int]:
    return {name[len("outlier_detection."):]: value for name, value in stats.items() if name.startswith("outlier_detection.")}


def _drive_until(s, what: str, predicate, bursts: int = 4) -> dict[str, int]:
    """Send bursts until ``predicate(stats)`` holds, waiting up to 4 intervals after each burst."""
    for _ in range(bursts):
        for _ in range(BURST):
            s.get()
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            stats = s.stats()
            if predicate(stats):
                return stats
            time.sleep(0.05)
    raise AssertionError(f"{s.proxy.kind}: {what} not reached after {bursts} bursts; stats {s.stats()}")


def _success_rates(s) -> dict[str, str]:
    """Each host's ``success_rate`` in ``/clusters``, by upstream port."""
    return dict(re.findall(r"^app::127\.0\.0\.1:(\d+)::success_rate::(\S+)$", s.admin("/clusters"), re.M))


@pytest.mark.parametrize("kind", KINDS)
def test_success_rate_ejects_the_host_below_the_threshold(kind, five_upstreams, setups):
    b = five_upstreams[1]
    s = setups(kind, [u.port for u in five_upstreams], _outlier_yaml(max_ejection_percent=20))
    b.fail_with, b.fail_one_in = 503, 2
    stats = _drive_until(s, "b ejected", lambda st: st.get("outlier_detection.ejections_active") == 1)
    od = _od(stats)
    # One host at ~50 % among four at 100 %: below mean - 1.9 * stdev (any rate under 100 is, with five hosts).
    assert od["ejections_detected_success_rate"] == od["ejections_enforced_success_rate"] == 1
    assert od["ejections_success_rate"] == od["ejections_total"] == od["ejections_enforced_total"] == 1
    assert od["ejections_overflow"] == od["ejections_detected_failure_percentage"] == 0
    assert stats["membership_healthy"] == 4
    b.fail_with = None
    assert {name for _, name in s.spread(12)} == {"a", "c", "d", "e"}


@pytest.mark.parametrize("kind", KINDS)
def test_success_rate_outlier_overflows_the_default_max_ejection_percent(kind, five_upstreams, setups):
    b = five_upstreams[1]
    s = setups(kind, [u.port for u in five_upstreams], _outlier_yaml())
    b.fail_with, b.fail_one_in = 503, 2
    stats = _drive_until(s, "b detected", lambda st: st.get("outlier_detection.ejections_detected_success_rate", 0) >= 1)
    od = _od(stats)
    # One host of five is 20 %, over the default 10 %: detected, never ejected.
    assert od["ejections_active"] == od["ejections_enforced_total"] == od["ejections_total"] == 0
    assert od["ejections_overflow"] == od["ejections_success_rate"] == od["ejections_detected_success_rate"]


@pytest.mark.parametrize("kind", KINDS)
def test_success_rate_below_the_minimum_hosts_judges_nothing(kind, five_upstreams, setups):
    b = five_upstreams[1]
    s = setups(kind, [u.port for u in five_upstreams], _outlier_yaml(max_ejection_percent=20, success_rate_minimum_hosts=6))
    b.fail_with = 503
    # The admin shows the rates (enough volume) while no success-rate judgement is made.
    _drive_until(s, "rates shown", lambda _st: _success_rates(s).get(str(b.port), "-1") != "-1")
    od = _od(s.stats())
    assert od["ejections_detected_success_rate"] == od["ejections_active"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_failure_percentage_ejects_when_enforced(kind, five_upstreams, setups):
    b = five_upstreams[1]
    extra = _outlier_yaml(
        max_ejection_percent=20, enforcing_success_rate=0, enforcing_failure_percentage=100, failure_percentage_threshold=40
    )
    s = setups(kind, [u.port for u in five_upstreams], extra)
    b.fail_with, b.fail_one_in = 503, 2
    stats = _drive_until(s, "b ejected", lambda st: st.get("outlier_detection.ejections_active") == 1)
    od = _od(stats)
    # The success-rate pass comes first: detected there (and in the deprecated totals), not enforced.
    assert od["ejections_detected_success_rate"] == od["ejections_success_rate"] == od["ejections_total"] == 1
    assert od["ejections_enforced_success_rate"] == 0
    assert od["ejections_detected_failure_percentage"] == od["ejections_enforced_failure_percentage"] == 1
    assert od["ejections_enforced_total"] == 1
    b.fail_with = None
    assert "b" not in {name for _, name in s.spread(12)}


@pytest.mark.parametrize("kind", KINDS)
def test_failure_percentage_detected_only_by_default(kind, five_upstreams, setups):
    b = five_upstreams[1]
    extra = _outlier_yaml(max_ejection_percent=20, enforcing_success_rate=0, failure_percentage_threshold=40)
    s = setups(kind, [u.port for u in five_upstreams], extra)
    b.fail_with, b.fail_one_in = 503, 2
    stats = _drive_until(s, "b detected", lambda st: st.get("outlier_detection.ejections_detected_failure_percentage", 0) >= 1)
    od = _od(stats)
    assert od["ejections_active"] == od["ejections_enforced_total"] == od["ejections_enforced_failure_percentage"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_admin_shows_each_hosts_success_rate_of_the_last_interval(kind, five_upstreams, setups):
    b = five_upstreams[1]
    s = setups(kind, [u.port for u in five_upstreams], _outlier_yaml(enforcing_success_rate=0))
    assert set(_success_rates(s).values()) == {"-1"}
    assert "app::outlier::success_rate_average::-1\napp::outlier::success_rate_ejection_threshold::-1\n" in s.admin("/clusters")
    b.fail_with = 503  # every request: 0 % whatever the interval's share of the burst
    seen: dict[str, object] = {}

    def every_host_rated(_stats) -> bool:
        # The rates last one interval: read text and JSON together, and keep a pair that agrees.
        text, as_json = s.admin("/clusters"), json.loads(s.admin("/clusters?format=json"))
        hosts = as_json["cluster_statuses"][0]["host_statuses"]
        if "::success_rate::-1" in text or not all("success_rate" in host for host in hosts):
            return False
        seen.update(text=text, json=as_json)
        return True

    _drive_until(s, "every host rated", every_host_rated)
    text, as_json = seen["text"], seen["json"]
    rates = dict(re.findall(r"^app::127\.0\.0\.1:(\d+)::success_rate::(\S+)$", text, re.M))
    assert rates == {str(u.port): ("0" if u is b else "100") for u in five_upstreams}
    # Rates 0, 100, 100, 100, 100: mean 80, stdev 40, threshold 80 - 1.9 * 40.
    assert "app::outlier::success_rate_average::80\napp::outlier::success_rate_ejection_threshold::4\n" in text
    assert "app::outlier::local_origin_success_rate_average::-1\n" in text
    status = as_json["cluster_statuses"][0]
    assert status["success_rate_ejection_threshold"] == {"value": 4}
    by_port = {host["address"]["socket_address"]["port_value"]: host for host in status["host_statuses"]}
    assert by_port[b.port]["success_rate"] == {}  # Percent 0: the value is left out
    assert by_port[five_upstreams[0].port]["success_rate"] == {"value": 100}
    assert list(by_port[b.port]) == ["address", "stats", "health_status", "success_rate", "weight", "locality"]


@pytest.mark.parametrize("kind", KINDS)
def test_admin_writes_fractional_rates_as_envoy(kind, five_upstreams, setups):
    b = five_upstreams[1]
    s = setups(kind, [u.port for u in five_upstreams], _outlier_yaml(enforcing_success_rate=0))
    b.fail_with, b.fail_one_in = 503, 3
    seen: dict[str, str] = {}

    def every_host_rated(_stats) -> bool:
        text, body = s.admin("/clusters"), s.admin("/clusters?format=json")
        if "::success_rate::-1" in text or "::success_rate::100\n" not in text:
            return False
        seen.update(text=text, json=body)
        return True

    _drive_until(s, "every host rated", every_host_rated)
    text, body = seen["text"], seen["json"]
    rates = [float(rate) for rate in re.findall(r"^app::127\.0\.0\.1:\d+::success_rate::(\S+)$", text, re.M)]
    b_rate = float(re.search(rf"^app::127\.0\.0\.1:{b.port}::success_rate::(\S+)$", text, re.M).group(1))
    assert 50 <= b_rate < 80 and len(rates) == 5  # about 2 in 3, as the interval split the burst
    # Host lines: the shortest round trip; cluster lines: six significant digits ({:g}).
    mean = sum(rates) / 5
    assert f"app::outlier::success_rate_average::{mean:g}\n" in text
    # JSON: protobuf's doubles, 15 significant digits or 17 when 15 do not round-trip.
    fifteen = f"{b_rate:.15g}"
    expected = fifteen if float(fifteen) == b_rate else f"{b_rate:.17g}"
    assert f'"value": {expected}\n' in body


def _degraded_check_yaml() -> str:
    return """\
health_checks:
- timeout: 0.5s
  interval: 0.1s
  no_traffic_interval: 0.1s
  unhealthy_threshold: 2
  healthy_threshold: 1
  http_health_check:
    path: /healthz
"""


@pytest.mark.parametrize("kind", KINDS)
def test_a_degraded_host_takes_the_share_the_healthy_hosts_cannot(kind, upstreams, setups):
    a, b = upstreams
    b.health = "200-degraded"
    s = setups(kind, [a.port, b.port], _degraded_check_yaml())
    s.wait_for_stats("b degraded", lambda st: st.get("membership_healthy") == 1 and st.get("membership_degraded") == 1)
    n = 400
    to_b = sum(1 for _, name in s.spread(n) if name == "b")
    # One healthy host of two: min(100, 140 * 1 // 2) = 70 % to it, 30 % to b; drawn per request (4 sigma).
    expected, sigma = 0.3 * n, (n * 0.3 * 0.7) ** 0.5
    assert abs(to_b - expected) < 4 * sigma, to_b


@pytest.mark.parametrize("kind", KINDS)
def test_degraded_hosts_alone_take_everything(kind, upstreams, setups):
    a, b = upstreams
    a.health = b.health = "200-degraded"
    s = setups(kind, [a.port, b.port], _degraded_check_yaml())
    stats = s.wait_for_stats("both degraded", lambda st: st.get("membership_degraded") == 2)
    assert sorted(name for _, name in s.spread(8)) == ["a"] * 4 + ["b"] * 4
    assert stats["lb_healthy_panic"] == 0
