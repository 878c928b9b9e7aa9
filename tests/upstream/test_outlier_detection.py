"""Outlier detection on a simulated clock: the workers' counts and the main thread's decisions.

The monitors run on the test's thread here; their reports are posts to the
(reference) main dispatcher, as from a worker.  Against Envoy 1.40 over real
sockets: ``tests/proxy/test_outlier_detection.py``.
"""

from __future__ import annotations

import random

import pytest

from pyevent_envoy.config.bootstrap import OutlierDetection
from pyevent_envoy.testing import ReferenceDispatcher, SimulatedClock, run_nonblock
from pyevent_envoy.upstream import ClusterInfo, HealthFlag, StaticCluster, health_flags_to_string
from pyevent_envoy.upstream.outlier_detection import OutlierDetectorImpl, OutlierMonitors, success_rate_ejection_threshold

pytestmark = pytest.mark.timeout(60)


class Harness:
    def __init__(self, n: int = 4, **config) -> None:
        self.clock = SimulatedClock()
        self.dispatcher = ReferenceDispatcher("main", clock=self.clock)
        fields = dict(interval=1.0, base_ejection_time=10.0, max_ejection_percent=50, consecutive_5xx=3)
        fields.update(config)
        self.config = OutlierDetection(**fields)
        info = ClusterInfo("app", outlier_detection=self.config)
        self.cluster = StaticCluster(info, [(f"127.0.0.{i + 1}", 80) for i in range(n)], self.dispatcher)
        self.detector = OutlierDetectorImpl(
            self.cluster, self.config, self.dispatcher, rng=random.Random(3), collect_request_counts=self._collect
        )
        self.cluster.set_outlier_detector(self.detector)
        self.cluster.initialize(lambda: None)
        self.hosts = self.cluster.host_set.hosts
        # Two workers' monitors: the interval sums both.
        self.workers = [OutlierMonitors(self.detector), OutlierMonitors(self.detector)]
        self.worker = self.workers[0]

    def _collect(self, on_done) -> None:
        # As the cluster manager does it: each worker hands over its counts, the main thread sums them later.
        counts: dict = {}
        for worker in self.workers:
            for host, successes, total in worker.take_request_counts():
                before = counts.get(host, (0, 0))
                counts[host] = (before[0] + successes, before[1] + total)
        self.dispatcher.post(lambda: on_done(counts))

    def serve(self, i: int, successes: int, failures: int = 0, worker: int = 0, code: int = 503) -> None:
        """``successes`` 200s and ``failures`` ``code`` answers from host ``i``, seen by one worker."""
        for _ in range(successes):
            self.workers[worker].put_http_response_code(self.hosts[i], 200)
        for _ in range(failures):
            self.workers[worker].put_http_response_code(self.hosts[i], code)
        run_nonblock(self.dispatcher, 2)

    def fail(self, i: int, code: int = 500, times: int = 1) -> None:
        for _ in range(times):
            self.worker.put_http_response_code(self.hosts[i], code)
        run_nonblock(self.dispatcher, 2)  # the posted reports

    def one_interval(self, first: tuple[int, int], others: int = 10) -> None:
        """Host 0 answers ``first`` (successes, failures), the others ``others`` successes; then an interval passes."""
        self.serve(0, *first)
        for i in range(1, len(self.hosts)):
            self.serve(i, others)
        self.advance(self.config.interval)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        run_nonblock(self.dispatcher, 3)

    def ejected(self) -> list[int]:
        return [i for i, host in enumerate(self.hosts) if host.health_flags & HealthFlag.FAILED_OUTLIER_CHECK]

    def close(self) -> None:
        self.cluster.shutdown()
        self.dispatcher.close()


@pytest.fixture
def make():
    made = []

    def factory(**kwargs) -> Harness:
        made.append(Harness(**kwargs))
        return made[-1]

    yield factory
    for harness in made:
        harness.close()


def test_consecutive_5xx_eject_and_a_success_resets_the_count(make):
    h = make()
    h.fail(0, times=2)
    h.fail(0, 200)
    h.fail(0, times=2)
    assert h.ejected() == []
    h.fail(0)
    assert h.ejected() == [0]
    assert h.cluster.host_set.healthy_hosts == h.hosts[1:]
    assert health_flags_to_string(h.hosts[0].health_flags) == "/failed_outlier_check"
    stats = h.detector.stats
    assert (stats.ejections_active, stats.ejections_enforced_consecutive_5xx, stats.ejections_detected_consecutive_5xx) == (1, 1, 1)


def test_the_ejection_lasts_base_time_times_the_backoff(make):
    h = make(interval=1.0, base_ejection_time=10.0, max_ejection_time=25.0)
    h.fail(0, times=3)
    h.advance(9.0)
    assert h.ejected() == [0]
    h.advance(1.0)  # 10 s: checked at the interval tick
    assert h.ejected() == [] and h.detector.stats.ejections_active == 0
    h.fail(0, times=3)  # ejected again at once: twice as long
    h.advance(19.0)
    assert h.ejected() == [0]
    h.advance(1.0)
    assert h.ejected() == []
    h.fail(0, times=3)
    h.advance(20.0)
    assert h.ejected() == [0]
    h.advance(5.0)  # capped by max_ejection_time (25 s)
    assert h.ejected() == []


def test_time_in_service_shrinks_the_backoff(make):
    h = make(interval=1.0, base_ejection_time=10.0)
    h.fail(0, times=3)
    h.advance(10.0)
    h.fail(0, times=3)
    h.advance(20.0)
    assert h.ejected() == []
    h.advance(1.0)  # two intervals in service: back-off 2 -> 0
    h.advance(1.0)
    h.fail(0, times=3)
    h.advance(10.0)
    assert h.ejected() == []  # one base time again


def test_max_ejection_percent_counts_the_host_about_to_go(make):
    h = make(n=4, max_ejection_percent=50)
    h.fail(0, times=3)
    h.fail(1, times=3)
    h.fail(2, times=3)
    assert h.ejected() == [0, 1]
    assert h.detector.stats.ejections_overflow == 1 and h.detector.stats.ejections_detected_consecutive_5xx == 3


def test_gateway_failures_are_enforced_only_when_asked(make):
    h = make(consecutive_5xx=1000, consecutive_gateway_failure=2)
    h.fail(0, 503, times=2)
    stats = h.detector.stats
    assert h.ejected() == [] and stats.ejections_detected_consecutive_gateway_failure == 1
    h2 = make(consecutive_5xx=1000, consecutive_gateway_failure=2, enforcing_consecutive_gateway_failure=100)
    h2.fail(0, 502)
    h2.fail(0, 500)  # a 5xx that is no gateway failure breaks the run
    h2.fail(0, 504)
    assert h2.ejected() == []
    h2.fail(0, 504)
    assert h2.ejected() == [0] and h2.detector.stats.ejections_enforced_consecutive_gateway_failure == 1


def test_enforcing_zero_detects_without_ejecting(make):
    h = make(enforcing_consecutive_5xx=0)
    h.fail(0, times=3)
    stats = h.detector.stats
    assert h.ejected() == [] and stats.ejections_detected_consecutive_5xx == 1 and stats.ejections_total == 1
    assert stats.ejections_enforced_total == 0


def test_reports_for_ejected_or_removed_hosts_are_ignored(make):
    h = make()
    h.fail(0, times=6)  # a second bout while ejected
    assert h.detector.stats.ejections_detected_consecutive_5xx == 1
    h.cluster._update_hosts(h.hosts[1:])  # host 0 leaves, as after a DNS change
    assert h.detector.stats.ejections_active == 0
    h.fail(0, times=3)
    assert h.detector.stats.ejections_detected_consecutive_5xx == 1


#: Rate-based cases: consecutive errors out of reach, small volumes.
RATES = dict(consecutive_5xx=10**6, consecutive_gateway_failure=10**6, success_rate_request_volume=10,
             failure_percentage_request_volume=10, max_ejection_percent=50)


def test_the_threshold_is_mean_minus_factor_times_the_population_stdev():
    assert success_rate_ejection_threshold([50.0, 100.0, 100.0, 100.0, 100.0], 1.9) == (90.0, 52.0)
    assert success_rate_ejection_threshold([80.0], 1.9) == (80.0, 80.0)


def test_success_rate_ejects_below_the_threshold_summing_the_workers(make):
    h = make(n=5, **RATES)
    h.serve(0, 6, 4, worker=0)
    h.serve(0, 6, 4, worker=1)  # 12 of 20: 60 %
    for i in range(1, 5):
        h.serve(i, 10, worker=i % 2)
    h.advance(1.0)
    # Rates 60, 100 x4: mean 92, stdev 16, threshold 92 - 1.9 * 16 = 61.6.
    assert h.ejected() == [0]
    d = h.detector
    assert d.success_rates == {h.hosts[0]: 60.0, **{host: 100.0 for host in h.hosts[1:]}}
    assert (d.success_rate_average, round(d.success_rate_ejection_threshold, 6)) == (92.0, 61.6)
    stats = d.stats
    assert stats.ejections_detected_success_rate == stats.ejections_enforced_success_rate == 1
    assert stats.ejections_success_rate == stats.ejections_total == stats.ejections_enforced_total == 1
    assert stats.ejections_detected_failure_percentage == 0  # 40 % failures: below the default 85 %
    h.advance(1.0)  # an interval without traffic: nothing to show
    assert d.success_rates == {} and d.success_rate_average == d.success_rate_ejection_threshold == -1.0


def test_the_stdev_factor_sets_the_threshold(make):
    # Rates 62, 100 x4: mean 92.4, stdev 15.2.  Factor 1.9: threshold 63.52, the host goes.
    h = make(n=5, **RATES)
    h.one_interval((62, 38))
    assert h.ejected() == [0]
    assert (h.detector.success_rate_average, round(h.detector.success_rate_ejection_threshold, 6)) == (92.4, 63.52)
    # Factor 2.1: threshold 60.48, the host stays.
    h2 = make(n=5, success_rate_stdev_factor=2100, **RATES)
    h2.one_interval((62, 38))
    assert h2.ejected() == [] and h2.detector.stats.ejections_detected_success_rate == 0
    assert round(h2.detector.success_rate_ejection_threshold, 6) == 60.48


def test_request_volume_and_minimum_hosts_gate_the_judgement(make):
    h = make(n=5, **{**RATES, "success_rate_request_volume": 20})
    h.serve(0, 0, 20)
    for i in range(1, 4):
        h.serve(i, 20)
    h.serve(4, 19)  # short of the volume: four hosts qualify, five are needed
    h.advance(1.0)
    d = h.detector
    assert h.ejected() == [] and d.stats.ejections_detected_success_rate == 0 and d.success_rate_average == -1.0
    # Shown from min(success_rate_request_volume, failure_percentage_request_volume) = 10 requests.
    assert d.success_rates[h.hosts[4]] == 100.0 and d.success_rates[h.hosts[0]] == 0.0


def test_fewer_hosts_than_both_minimums_shows_no_rate(make):
    h = make(n=4, **RATES)
    for i in range(4):
        h.serve(i, 10, 10 if i == 0 else 0)
    h.advance(1.0)
    assert h.detector.success_rates == {} and h.ejected() == []


def test_counts_belong_to_one_interval(make):
    h = make(n=5, **RATES)
    h.one_interval((0, 5), 5)  # 5 requests each: below the volume
    h.one_interval((0, 5), 5)  # again 5 each: the first interval's counts are gone
    assert h.ejected() == [] and h.detector.success_rates == {}


def test_success_rate_detected_without_enforcement_and_overflow(make):
    h = make(n=5, **{**RATES, "enforcing_success_rate": 0})
    h.one_interval((0, 10))
    stats = h.detector.stats
    assert h.ejected() == [] and stats.ejections_detected_success_rate == stats.ejections_total == 1
    assert stats.ejections_enforced_total == 0
    h2 = make(n=5, **{**RATES, "max_ejection_percent": 10})
    h2.one_interval((0, 10))
    stats = h2.detector.stats
    # 100 % failures reach the default 85 % too: failure percentage detects as well (not enforced by
    # default), and both overflow before the enforcement draw.
    assert h2.ejected() == [] and stats.ejections_detected_success_rate == stats.ejections_detected_failure_percentage == 1
    assert stats.ejections_overflow == 2 and stats.ejections_total == 0


def test_failure_percentage_ejects_when_enforced(make):
    h = make(n=5, **{**RATES, "enforcing_success_rate": 0, "enforcing_failure_percentage": 100,
                     "failure_percentage_threshold": 40})
    h.serve(0, 6, 4)  # 40 % failures: at the threshold
    h.serve(1, 7, 3)  # 30 %: below
    for i in range(2, 5):
        h.serve(i, 10)
    h.advance(1.0)
    assert h.ejected() == [0]
    stats = h.detector.stats
    assert stats.ejections_detected_failure_percentage == stats.ejections_enforced_failure_percentage == 1
    assert stats.ejections_enforced_total == 1 and stats.ejections_enforced_success_rate == 0


def test_failure_percentage_needs_its_own_minimum_hosts_and_volume(make):
    h = make(n=5, **{**RATES, "enforcing_failure_percentage": 100, "failure_percentage_threshold": 40,
                     "failure_percentage_minimum_hosts": 3, "failure_percentage_request_volume": 30,
                     "enforcing_success_rate": 0})
    h.serve(0, 0, 30)
    h.serve(1, 30)
    for i in range(2, 5):
        h.serve(i, 10)
    h.advance(1.0)
    assert h.ejected() == []  # two hosts with 30 requests, three needed
    h.serve(0, 0, 30)
    h.serve(1, 30)
    h.serve(2, 30)
    h.advance(1.0)
    assert h.ejected() == [0]


def test_ejected_hosts_are_not_judged_again(make):
    h = make(n=5, **RATES)
    for _ in range(2):
        h.one_interval((0, 10))
    stats = h.detector.stats
    assert h.ejected() == [0] and stats.ejections_detected_success_rate == 1
    assert h.hosts[0] not in h.detector.success_rates


def test_monitors_count_successes_and_requests_until_taken():
    h = Harness(n=2)
    try:
        h.serve(0, 3, 2, code=500)
        h.serve(1, 0, 1, code=504)
        assert sorted(h.worker.take_request_counts(), key=lambda item: h.hosts.index(item[0])) == [
            (h.hosts[0], 3, 5),
            (h.hosts[1], 0, 1),
        ]
        assert h.worker.take_request_counts() == []
    finally:
        h.close()
