"""The health checker's state machine on a simulated clock (Envoy's ``health_checker_impl_test`` cases).

The sessions here do no I/O: ``on_interval`` records that a check started,
and each test reports the outcome as the HTTP or TCP session would
(``handle_success``, ``handle_failure``).  The real checkers, over real
sockets and against Envoy 1.40, are in ``tests/proxy/test_health_checks.py``.
"""

from __future__ import annotations

import random

import pytest

from pyevent_envoy.config.bootstrap import HealthCheck, HttpHealthCheck
from pyevent_envoy.testing import ReferenceDispatcher, SimulatedClock, run_nonblock
from pyevent_envoy.upstream import (
    ClusterInfo,
    FailureType,
    HealthCheckerImplBase,
    HealthFlag,
    HealthState,
    HealthTransition,
    StaticCluster,
    health_flags_to_string,
)
from pyevent_envoy.upstream.health_checker import ActiveHealthCheckSession, payload_matches

pytestmark = pytest.mark.timeout(60)


class ScriptedSession(ActiveHealthCheckSession):
    __slots__ = ()

    def on_interval(self) -> None:
        self.parent.started.append((self.host, self.parent.dispatcher.approximate_monotonic_time()))

    def on_timeout(self) -> None:
        self.parent.abandoned.append(self.host)


class ScriptedChecker(HealthCheckerImplBase):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.started: list = []
        self.abandoned: list = []
        self.results: list = []
        self.add_host_check_complete_cb(lambda host, transition, state: self.results.append((host, transition, state)))

    def make_session(self, host):
        return ScriptedSession(self, host)


def _config(**overrides) -> HealthCheck:
    fields = dict(
        timeout=1.0,
        interval=10.0,
        unhealthy_threshold=3,
        healthy_threshold=2,
        no_traffic_interval=60.0,
        http_health_check=HttpHealthCheck(path="/healthz"),
    )
    fields.update(overrides)
    return HealthCheck(**fields)


class Harness:
    """A STATIC cluster of ``n`` hosts with a scripted checker, on a simulated clock."""

    def __init__(self, n: int = 2, traffic: bool = True, **config) -> None:
        self.clock = SimulatedClock()
        self.dispatcher = ReferenceDispatcher("main", clock=self.clock)
        self.traffic = traffic
        config = _config(**config)
        info = ClusterInfo("app", health_checks=(config,))
        self.cluster = StaticCluster(info, [(f"127.0.0.{i + 1}", 80) for i in range(n)], self.dispatcher)
        self.checker = ScriptedChecker(
            self.cluster, config, self.dispatcher, traffic_seen=lambda: self.traffic, rng=random.Random(7)
        )
        self.cluster.set_health_checker(self.checker)
        self.updates: list = []
        self.cluster.add_member_update_cb(lambda cluster, added, removed: self.updates.append(cluster.host_set))
        self.initialized: list = []
        self.cluster.initialize(lambda: self.initialized.append(self.clock.monotonic()))
        self.hosts = self.cluster.host_set.hosts

    def session(self, i: int) -> ActiveHealthCheckSession:
        return self.checker.session(self.hosts[i])

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        run_nonblock(self.dispatcher, 3)

    def checks_of(self, i: int) -> list[float]:
        return [when for host, when in self.checker.started if host is self.hosts[i]]

    def close(self) -> None:
        self.cluster.shutdown()
        self.dispatcher.close()


@pytest.fixture
def harness_factory():
    made = []

    def make(**kwargs) -> Harness:
        harness = Harness(**kwargs)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


def test_hosts_start_failed_and_the_cluster_waits_for_every_first_check(harness_factory):
    h = harness_factory()
    assert [host.health_flags for host in h.hosts] == [HealthFlag.FAILED_ACTIVE_HC] * 2
    assert h.cluster.host_set.healthy_hosts == () and h.cluster.host_set.in_panic
    assert len(h.checker.started) == 2 and h.checker.stats.attempt == 2
    assert h.initialized == [] and not h.cluster.initialized
    h.session(0).handle_success()
    assert h.initialized == []  # the other host has not answered yet
    assert h.hosts[0].healthy and h.checker.stats.healthy == 1
    h.session(1).handle_failure(FailureType.NETWORK)
    assert h.initialized == [0.0]
    assert h.cluster.host_set.healthy_hosts == (h.hosts[0],)
    assert h.cluster.stats["cluster.app.membership_healthy"] == 1
    assert not h.hosts[1].healthy and health_flags_to_string(h.hosts[1].health_flags) == "/failed_active_hc"


def test_first_success_is_enough_then_the_healthy_threshold_applies(harness_factory):
    h = harness_factory(n=1, healthy_threshold=3, unhealthy_threshold=1)
    h.session(0).handle_success()
    assert h.checker.results[-1][1:] == (HealthTransition.CHANGED, HealthState.HEALTHY)
    h.advance(10.0)
    h.session(0).handle_failure(FailureType.NETWORK)  # threshold 1: failed at once
    assert h.checker.results[-1][1] is HealthTransition.CHANGED and not h.hosts[0].healthy
    for expected in (HealthTransition.CHANGE_PENDING, HealthTransition.CHANGE_PENDING, HealthTransition.CHANGED):
        h.advance(10.0)
        h.session(0).handle_success()
        assert h.checker.results[-1][1] is expected
    assert h.hosts[0].healthy
    assert (h.checker.stats.success, h.checker.stats.failure, h.checker.stats.network_failure) == (4, 1, 1)


def test_network_failures_count_up_to_the_unhealthy_threshold(harness_factory):
    h = harness_factory(unhealthy_threshold=3)
    h.session(0).handle_success()
    for expected in (HealthTransition.CHANGE_PENDING, HealthTransition.CHANGE_PENDING):
        h.session(0).handle_failure(FailureType.NETWORK)
        assert h.checker.results[-1][1] is expected and h.hosts[0].healthy
    h.session(0).handle_success()  # a pass resets the count
    h.session(0).handle_failure(FailureType.NETWORK)
    h.session(0).handle_failure(FailureType.NETWORK)
    assert h.hosts[0].healthy
    h.session(0).handle_failure(FailureType.NETWORK)
    assert not h.hosts[0].healthy and h.checker.stats.healthy == 0
    assert h.checker.stats.network_failure == 5


def test_an_unexpected_status_fails_at_once_a_retriable_one_counts(harness_factory):
    h = harness_factory(unhealthy_threshold=2)
    h.session(0).handle_success()
    h.session(1).handle_success()
    h.session(0).handle_failure(FailureType.ACTIVE, retriable=True)
    assert h.hosts[0].healthy
    h.session(0).handle_failure(FailureType.ACTIVE, retriable=True)
    assert not h.hosts[0].healthy
    h.session(1).handle_failure(FailureType.ACTIVE)
    assert not h.hosts[1].healthy
    assert h.checker.stats.failure == 3 and h.checker.stats.network_failure == 0


def test_a_timeout_abandons_the_check_and_counts_as_a_network_failure(harness_factory):
    h = harness_factory(unhealthy_threshold=1, timeout=1.0)
    h.advance(0.999)
    assert h.checker.abandoned == []
    h.advance(0.001)
    assert set(h.checker.abandoned) == set(h.hosts)
    assert h.checker.stats.network_failure == 2 and h.initialized == [1.0]
    # Both already failed (never passed): the timeout flag marks why.
    assert health_flags_to_string(h.hosts[0].health_flags) == "/failed_active_hc/active_hc_timeout"
    h.advance(10.0)
    h.session(0).handle_success()  # the first result was the timeout: two passes needed now
    assert h.hosts[0].health_flags & HealthFlag.FAILED_ACTIVE_HC
    h.session(0).handle_success()
    assert h.hosts[0].health_flags == HealthFlag(0) and health_flags_to_string(h.hosts[0].health_flags) == "healthy"


def test_intervals_follow_the_hosts_health_and_the_edges(harness_factory):
    h = harness_factory(
        interval=10.0, unhealthy_interval=20.0, unhealthy_edge_interval=3.0, healthy_edge_interval=4.0,
        unhealthy_threshold=2, healthy_threshold=2,
    )
    h.session(0).handle_success()  # healthy: next after interval
    h.advance(9.9)
    assert h.checks_of(0) == [0.0]
    h.advance(0.1)
    assert h.checks_of(0) == [0.0, 10.0]
    h.session(0).handle_failure(FailureType.NETWORK)  # pending: unhealthy edge interval
    h.advance(3.0)
    assert h.checks_of(0)[-1] == 13.0
    h.session(0).handle_failure(FailureType.NETWORK)  # now failed: unhealthy interval
    h.advance(20.0)
    assert h.checks_of(0)[-1] == 33.0
    h.session(0).handle_success()  # pending the other way: healthy edge interval
    h.advance(4.0)
    assert h.checks_of(0)[-1] == 37.0


def test_without_traffic_checks_run_every_no_traffic_interval(harness_factory):
    h = harness_factory(traffic=False, interval=1.0, no_traffic_interval=30.0, no_traffic_healthy_interval=45.0)
    h.session(0).handle_failure(FailureType.ACTIVE)
    h.session(1).handle_success()
    h.advance(30.0)
    assert h.checks_of(0) == [0.0, 30.0] and h.checks_of(1) == [0.0]
    h.advance(15.0)
    assert h.checks_of(1) == [0.0, 45.0]
    h.traffic = True  # once traffic flowed, the normal intervals apply (and stay)
    h.session(1).handle_success()
    h.advance(1.0)
    assert h.checks_of(1) == [0.0, 45.0, 46.0]


def test_jitter_is_added_in_whole_milliseconds():
    h = Harness(interval=1.0, interval_jitter=0.05, interval_jitter_percent=10)
    try:
        delays = {h.checker.interval(HealthState.HEALTHY, HealthTransition.UNCHANGED) for _ in range(300)}
        assert min(delays) >= 1.0 and max(delays) < 1.0 + 0.1 + 0.05
        assert all(round(d * 1000) == pytest.approx(d * 1000) for d in delays) and len(delays) > 20
    finally:
        h.close()


def test_initial_jitter_delays_the_first_check(harness_factory):
    h = harness_factory(initial_jitter=2.0)
    assert h.checker.started == []
    h.advance(2.0)
    assert len(h.checker.started) == 2 and all(0 < when <= 2.0 for _, when in h.checker.started)


def test_degraded_hosts_are_counted_and_still_take_traffic(harness_factory):
    h = harness_factory()
    h.session(0).handle_success(degraded=True)
    h.session(1).handle_success()
    assert h.checker.stats.degraded == 1 and h.checker.stats.healthy == 2
    assert h.cluster.stats["cluster.app.membership_degraded"] == 1
    assert h.cluster.stats["cluster.app.membership_healthy"] == 1
    assert h.cluster.host_set.healthy_hosts == h.hosts
    assert health_flags_to_string(h.hosts[0].health_flags) == "/degraded_active_hc"
    h.session(0).handle_success()
    assert h.checker.results[-1][1] is HealthTransition.CHANGED and h.checker.stats.degraded == 0


def test_health_changes_publish_host_sets_with_panic_below_half(harness_factory):
    h = harness_factory(n=3, unhealthy_threshold=1)
    for i in range(3):
        h.session(i).handle_success()
    assert h.cluster.host_set.hosts_to_use == h.hosts and not h.cluster.host_set.in_panic
    h.session(0).handle_failure(FailureType.NETWORK)
    assert h.cluster.host_set.hosts_to_use == h.hosts[1:]  # 2 of 3 healthy: no panic
    h.session(1).handle_failure(FailureType.NETWORK)
    assert h.cluster.host_set.in_panic and h.cluster.host_set.hosts_to_use == h.hosts
    assert h.cluster.host_set.hosts == h.hosts  # health changes keep the hosts (and their pools)
    published = len(h.updates)
    h.session(2).handle_success()  # unchanged: nothing published
    assert len(h.updates) == published


def test_excluded_hosts_do_not_count_towards_panic(harness_factory):
    h = harness_factory(n=3)
    h.session(0).handle_success()
    for i in (1, 2):
        h.hosts[i].health_flag_set(HealthFlag.EXCLUDED_VIA_IMMEDIATE_HC_FAIL)  # as a failing answer with the header
        h.session(i).handle_failure(FailureType.ACTIVE)
    host_set = h.cluster.host_set
    assert host_set.excluded_hosts == h.hosts[1:] and h.cluster.stats["cluster.app.membership_excluded"] == 2
    assert not host_set.in_panic and host_set.hosts_to_use == h.hosts[:1]  # 1 healthy of 1 counted
    h.session(0).handle_failure(FailureType.ACTIVE)
    assert h.cluster.host_set.in_panic and h.cluster.host_set.hosts_to_use == h.hosts


def test_passive_failures_and_closing_settle_the_stats(harness_factory):
    h = harness_factory()
    h.session(0).handle_success()
    h.session(0).set_unhealthy(FailureType.PASSIVE)
    assert not h.hosts[0].healthy and h.checker.stats.passive_failure == 1
    h.session(1).handle_success()
    assert h.checker.stats.healthy == 1
    h.checker.close()
    assert h.checker.stats.healthy == 0


def test_a_host_removed_before_its_first_check_is_not_waited_for(harness_factory):
    h = harness_factory()
    h.session(0).handle_success()
    h.cluster._update_hosts(h.hosts[:1])  # the main thread's membership update, as DNS would do
    assert h.initialized == [0.0] and h.checker.session(h.hosts[1]) is None


def test_payload_matching_is_in_order_not_adjacent():
    assert payload_matches((b"PO", b"NG"), b"xxPOyyNGzz")
    assert not payload_matches((b"NG", b"PO"), b"PONG")
    assert payload_matches((), b"")
