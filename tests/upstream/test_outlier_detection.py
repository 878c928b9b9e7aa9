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
from pyevent_envoy.upstream.outlier_detection import OutlierDetectorImpl, OutlierMonitors

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
        self.detector = OutlierDetectorImpl(self.cluster, self.config, self.dispatcher, rng=random.Random(3))
        self.cluster.set_outlier_detector(self.detector)
        self.cluster.initialize(lambda: None)
        self.hosts = self.cluster.host_set.hosts
        self.worker = OutlierMonitors(self.detector)

    def fail(self, i: int, code: int = 500, times: int = 1) -> None:
        for _ in range(times):
            self.worker.put_http_response_code(self.hosts[i], code)
        run_nonblock(self.dispatcher, 2)  # the posted reports

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
