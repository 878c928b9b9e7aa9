"""Load balancers: round robin order and weights, least request, random, empty host sets, degraded hosts' share."""

import collections
import random

import pytest

from pyevent_envoy.network import Address
from pyevent_envoy.upstream import (
    DegradedSplitLoadBalancer,
    HealthFlag,
    HostImpl,
    HostSet,
    HostStatsMap,
    LbPolicy,
    LeastRequestLoadBalancer,
    RandomLoadBalancer,
    RoundRobinLoadBalancer,
    create_load_balancer,
)

pytestmark = pytest.mark.timeout(30)


def make_hosts(n, weights=None):
    weights = weights or [1] * n
    return tuple(HostImpl(Address(f"10.0.0.{i + 1}", 80), weight=w, cluster_name="c") for i, w in enumerate(weights))


def picks(lb, n):
    return [lb.choose_host() for _ in range(n)]


ALL_POLICIES = [
    lambda hs, rng: RoundRobinLoadBalancer(hs, rng=rng),
    lambda hs, rng: LeastRequestLoadBalancer(hs, rng=rng),
    lambda hs, rng: RandomLoadBalancer(hs, rng=rng),
]
POLICY_IDS = ["round_robin", "least_request", "random"]


# every policy


@pytest.mark.parametrize("make_lb", ALL_POLICIES, ids=POLICY_IDS)
def test_load_balancer_empty_host_set_returns_none(make_lb):
    lb = make_lb(HostSet(), random.Random(1))
    assert lb.choose_host() is None
    assert lb.choose_host(context={"anything": 1}) is None


@pytest.mark.parametrize("make_lb", ALL_POLICIES, ids=POLICY_IDS)
@pytest.mark.parametrize("weights", [[1], [7]], ids=["weight1", "weight7"])
def test_load_balancer_single_host_always_chosen(make_lb, weights):
    hosts = make_hosts(1, weights)
    lb = make_lb(HostSet(hosts), random.Random(2))
    assert set(picks(lb, 20)) == {hosts[0]}


def test_load_balancer_rejects_a_plain_tuple_of_hosts():
    with pytest.raises(TypeError):
        RoundRobinLoadBalancer(make_hosts(2))


# round robin


def test_round_robin_equal_weights_exact_rotation_from_a_seeded_offset():
    hosts = make_hosts(4)
    seed = 1234
    start = random.Random(seed).getrandbits(32) % len(hosts)
    lb = RoundRobinLoadBalancer(HostSet(hosts), rng=random.Random(seed))
    expected = [hosts[(start + i) % 4] for i in range(12)]
    assert picks(lb, 12) == expected


def test_round_robin_equal_weights_are_not_weighted_even_when_not_one():
    hosts = make_hosts(3, [5, 5, 5])
    lb = RoundRobinLoadBalancer(HostSet(hosts), rng=random.Random(7))
    first = picks(lb, 3)
    assert sorted(first, key=hosts.index) == list(hosts)  # one of each per round
    assert picks(lb, 3) == first


def test_round_robin_workers_start_at_different_offsets():
    hosts = make_hosts(8)
    starts = {RoundRobinLoadBalancer(HostSet(hosts), rng=random.Random(seed)).choose_host() for seed in range(20)}
    assert len(starts) > 1


def test_round_robin_weighted_proportions_are_exact_per_cycle():
    hosts = make_hosts(3, [1, 2, 3])
    lb = RoundRobinLoadBalancer(HostSet(hosts), rng=random.Random(3))
    counts = collections.Counter(picks(lb, 6 * 100))
    assert [counts[h] for h in hosts] == [100, 200, 300]
    # ... and within any single cycle of sum(weights) picks, within one of the share
    window = collections.Counter(picks(lb, 6))
    for host in hosts:
        assert abs(window[host] - host.weight) <= 1


def test_round_robin_weighted_interleaves_instead_of_bursting():
    heavy, light = make_hosts(2, [4, 1])
    lb = RoundRobinLoadBalancer(HostSet((heavy, light)), rng=random.Random(5))
    sequence = picks(lb, 50)
    assert sequence.count(light) == 10
    # the light host is spread out: never twice within 4 picks
    positions = [i for i, h in enumerate(sequence) if h is light]
    assert all(b - a >= 4 for a, b in zip(positions, positions[1:]))


def test_round_robin_weighted_is_deterministic_for_a_seed():
    hosts = make_hosts(3, [1, 2, 5])
    first = picks(RoundRobinLoadBalancer(HostSet(hosts), rng=random.Random(11)), 40)
    second = picks(RoundRobinLoadBalancer(HostSet(hosts), rng=random.Random(11)), 40)
    assert first == second


def test_round_robin_uses_healthy_hosts_only():
    hosts = make_hosts(3)
    lb = RoundRobinLoadBalancer(HostSet(hosts, healthy_hosts=hosts[:2]), rng=random.Random(1))
    assert set(picks(lb, 10)) == set(hosts[:2])


# least request


def test_least_request_prefers_the_less_loaded_of_two_choices():
    busy, idle = make_hosts(2)
    stats = HostStatsMap()
    stats.for_host(busy).rq_active = 5
    lb = LeastRequestLoadBalancer(HostSet((busy, idle)), host_stats=stats, rng=random.Random(42))
    counts = collections.Counter(picks(lb, 2000))
    # busy wins only when both samples are busy: 1/4 of picks
    assert 0.68 < counts[idle] / 2000 < 0.82


def test_least_request_more_choices_avoid_the_busiest_host():
    hosts = make_hosts(4)
    stats = HostStatsMap()
    for load, host in zip([9, 1, 1, 1], hosts):
        stats.for_host(host).rq_active = load
    two_choices = LeastRequestLoadBalancer(HostSet(hosts), host_stats=stats, rng=random.Random(1))
    two = collections.Counter(picks(two_choices, 4000))
    assert two[hosts[0]] / 4000 < 1 / 16 * 1.5  # both samples must be the busy host
    many = collections.Counter(
        picks(LeastRequestLoadBalancer(HostSet(hosts), host_stats=stats, choice_count=8, rng=random.Random(1)), 4000)
    )
    assert many[hosts[0]] < two[hosts[0]]


def test_least_request_follows_live_counter_changes():
    a, b = make_hosts(2)
    stats = HostStatsMap()
    lb = LeastRequestLoadBalancer(HostSet((a, b)), host_stats=stats, choice_count=16, rng=random.Random(9))
    stats.for_host(a).rq_active = 3
    assert collections.Counter(picks(lb, 200))[b] == 200  # 16 samples: b is always among them (p ~ 1)
    stats.for_host(a).rq_active = 0
    stats.for_host(b).rq_active = 3
    assert collections.Counter(picks(lb, 200))[a] == 200


def test_least_request_equal_load_spreads_over_all_hosts():
    hosts = make_hosts(5)
    counts = collections.Counter(picks(LeastRequestLoadBalancer(HostSet(hosts), rng=random.Random(4)), 5000))
    assert set(counts) == set(hosts)
    assert all(700 < counts[h] < 1300 for h in hosts)


def test_least_request_weighted_follows_weights_when_idle_and_load_when_busy():
    light, heavy = make_hosts(2, [1, 3])
    stats = HostStatsMap()
    lb = LeastRequestLoadBalancer(HostSet((light, heavy)), host_stats=stats, rng=random.Random(6))
    counts = collections.Counter(picks(lb, 400))
    assert [counts[light], counts[heavy]] == [100, 300]
    # heavy has 5 active requests: its weight is 3 / 6 = 0.5, light's stays 1
    stats.for_host(heavy).rq_active = 5
    lb = LeastRequestLoadBalancer(HostSet((light, heavy)), host_stats=stats, rng=random.Random(6))
    counts = collections.Counter(picks(lb, 300))
    assert counts[light] == 200 and counts[heavy] == 100


def test_least_request_rejects_fewer_than_two_choices():
    with pytest.raises(ValueError):
        LeastRequestLoadBalancer(HostSet(make_hosts(2)), choice_count=1)


# random


def test_random_covers_every_host_roughly_uniformly():
    hosts = make_hosts(4, [1, 1, 1, 10])  # weights are ignored, as in Envoy
    counts = collections.Counter(picks(RandomLoadBalancer(HostSet(hosts), rng=random.Random(8)), 4000))
    assert set(counts) == set(hosts)
    assert all(800 < counts[h] < 1200 for h in hosts)


def test_random_is_deterministic_for_a_seed():
    hosts = make_hosts(6)
    assert picks(RandomLoadBalancer(HostSet(hosts), rng=random.Random(3)), 30) == picks(
        RandomLoadBalancer(HostSet(hosts), rng=random.Random(3)), 30
    )


# factory


@pytest.mark.parametrize(
    "policy, cls",
    [
        (LbPolicy.ROUND_ROBIN, RoundRobinLoadBalancer),
        ("LEAST_REQUEST", LeastRequestLoadBalancer),
        (LbPolicy.RANDOM, RandomLoadBalancer),
    ],
)
def test_create_load_balancer_by_policy(policy, cls):
    assert type(create_load_balancer(policy, HostSet(make_hosts(2)))) is cls


def test_create_load_balancer_unknown_policy_raises():
    with pytest.raises(ValueError):
        create_load_balancer("MAGLEV", HostSet())


# degraded hosts


def _degraded_set(n, degraded, healthy=None):
    """``n`` hosts, the last ``degraded`` of them degraded, ``healthy`` (default all) passing checks."""
    hosts = make_hosts(n)
    healthy_hosts = hosts if healthy is None else hosts[:healthy] + hosts[n - degraded:]
    return hosts, HostSet(hosts, healthy_hosts=healthy_hosts, degraded_hosts=hosts[n - degraded:])


@pytest.mark.parametrize(
    "n, degraded, healthy_load",
    [
        (2, 1, 70),  # 140 * 1 // 2 = 70 to the healthy host, 30 to the degraded one
        (5, 2, 84),  # 140 * 3 // 5 = 84, degraded 140 * 2 // 5 = 56, normalized to 100: 84 / 16
        (3, 1, 93),  # 93 + 46 capped at 100: 93 / 7
        (4, 1, 100),  # 3 of 4 healthy: 105 capped at 100, nothing left for the degraded host
        (2, 2, 0),  # degraded only: they take everything
    ],
)
def test_host_set_healthy_load_is_envoys_priority_load(n, degraded, healthy_load):
    hosts, host_set = _degraded_set(n, degraded)
    assert host_set.healthy_load == healthy_load
    assert host_set.hosts_to_use == hosts[: n - degraded]
    assert host_set.degraded_hosts_to_use == hosts[n - degraded:]
    assert not host_set.in_panic


def test_host_set_panic_uses_every_host_and_no_split():
    # One healthy-or-degraded host of three: below 50 %, panic (degraded hosts count as available).
    hosts, host_set = _degraded_set(3, 1, healthy=0)
    assert host_set.in_panic and host_set.hosts_to_use == hosts
    assert host_set.healthy_load == 100 and host_set.degraded_hosts_to_use == ()


def test_host_set_from_hosts_reads_the_degraded_flag():
    hosts = make_hosts(2)
    hosts[1].health_flag_set(HealthFlag.DEGRADED_ACTIVE_HC)
    host_set = HostSet.from_hosts(hosts)
    assert host_set.degraded_hosts == (hosts[1],) and host_set.healthy_load == 70


@pytest.mark.parametrize("policy", list(LbPolicy))
def test_degraded_hosts_get_the_remaining_share_of_picks(policy):
    hosts, host_set = _degraded_set(2, 1)
    lb = create_load_balancer(policy, host_set, rng=random.Random(7))
    assert isinstance(lb, DegradedSplitLoadBalancer)
    counts = collections.Counter(picks(lb, 10000))
    assert set(counts) == set(hosts)
    assert 2800 < counts[hosts[1]] < 3200  # 30 %, drawn per pick


def test_round_robin_keeps_a_rotation_per_side():
    hosts, host_set = _degraded_set(5, 2)
    lb = create_load_balancer(LbPolicy.ROUND_ROBIN, host_set, rng=random.Random(3))
    chosen = picks(lb, 5000)
    healthy = [host for host in chosen if host in hosts[:3]]
    degraded = [host for host in chosen if host in hosts[3:]]
    assert 650 < len(degraded) < 950  # 16 %
    # Each side rotates through its own hosts.
    assert all(healthy[i] != healthy[i + 1] for i in range(len(healthy) - 1))
    assert all(degraded[i] != degraded[i + 1] for i in range(len(degraded) - 1))


def test_no_split_without_a_degraded_share():
    _hosts, host_set = _degraded_set(4, 1)  # healthy load 100
    assert isinstance(create_load_balancer(LbPolicy.ROUND_ROBIN, host_set), RoundRobinLoadBalancer)
    assert isinstance(create_load_balancer(LbPolicy.ROUND_ROBIN, HostSet(make_hosts(3))), RoundRobinLoadBalancer)
