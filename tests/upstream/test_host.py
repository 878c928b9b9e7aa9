"""HostImpl, LogicalHost, HostSet (panic mode), HostStats / HostStatsMap."""

import pytest

from pyevent_envoy.network import Address
from pyevent_envoy.upstream import HostImpl, HostSet, HostStats, HostStatsMap, LogicalHost

pytestmark = pytest.mark.timeout(30)


def test_host_impl_carries_address_weight_cluster_and_hostname():
    host = HostImpl(Address("10.0.0.1", 8080), weight=3, cluster_name="backend", hostname="db.internal")
    assert host.address == Address("10.0.0.1", 8080)
    assert (host.weight, host.cluster_name, host.hostname) == (3, "backend", "db.internal")
    assert "10.0.0.1:8080" in repr(host) and "weight=3" in repr(host)


def test_host_impl_compares_and_hashes_by_identity():
    a = HostImpl(Address("10.0.0.1", 80))
    b = HostImpl(Address("10.0.0.1", 80))
    assert a != b and a == a
    assert len({a, b}) == 2


def test_host_impl_rejects_bad_weight_and_address():
    with pytest.raises(ValueError):
        HostImpl(Address("10.0.0.1", 80), weight=0)
    with pytest.raises(TypeError):
        HostImpl(("10.0.0.1", 80))


def test_host_impl_is_read_only():
    host = HostImpl(Address("10.0.0.1", 80))
    with pytest.raises(AttributeError):
        host.address = Address("10.0.0.2", 80)
    with pytest.raises(AttributeError):
        host.anything = 1


def test_logical_host_moves_its_address_and_keeps_its_identity():
    host = LogicalHost(Address("10.0.0.1", 80), cluster_name="c", hostname="svc")
    pools = {host: "pool"}
    host.set_address(Address("10.0.0.9", 80))
    assert host.address == Address("10.0.0.9", 80)
    assert pools[host] == "pool"


def test_host_set_is_an_immutable_tuple_snapshot():
    hosts = [HostImpl(Address(f"10.0.0.{i}", 80)) for i in range(3)]
    host_set = HostSet(hosts)
    hosts.append(HostImpl(Address("10.0.0.9", 80)))
    assert isinstance(host_set.hosts, tuple) and len(host_set) == 3
    assert host_set.healthy_hosts == host_set.hosts == host_set.hosts_to_use
    assert hosts[0] in host_set and list(host_set) == hosts[:3]
    with pytest.raises(AttributeError):
        host_set.hosts = ()


def test_host_set_uses_every_host_when_fewer_than_half_are_healthy():
    hosts = tuple(HostImpl(Address(f"10.0.0.{i}", 80)) for i in range(4))
    assert HostSet(hosts, healthy_hosts=hosts[:2]).hosts_to_use == hosts[:2]  # 50 %: not panic
    assert HostSet(hosts, healthy_hosts=hosts[:1]).hosts_to_use == hosts  # 25 %: panic
    assert HostSet().hosts_to_use == ()


def test_host_stats_map_counts_per_host_and_forgets_removed_hosts():
    a, b = HostImpl(Address("10.0.0.1", 80)), HostImpl(Address("10.0.0.2", 80))
    stats = HostStatsMap()
    assert stats.active_requests(a) == 0 and a not in stats  # reading creates nothing
    stats.for_host(a).rq_active += 2
    stats.for_host(b).rq_active += 1
    assert stats.for_host(a) is stats.for_host(a)
    assert (stats.active_requests(a), stats.active_requests(b)) == (2, 1)
    stats.retain([b])
    assert a not in stats and b in stats and len(stats) == 1


def test_host_stats_charge_responses_as_envoy_and_add_up():
    stats = HostStats()
    for code in (200, 404, 499, 500, 503, 599):
        stats.charge_response(code)
    assert (stats.rq_success, stats.rq_error) == (3, 3)
    other = HostStats()
    other.rq_total, other.cx_connect_fail, other.rq_active = 4, 2, 1
    stats.add(other)
    assert (stats.rq_total, stats.cx_connect_fail, stats.rq_active, stats.rq_success) == (4, 2, 1, 3)
    assert set(HostStats.COUNTERS) | set(HostStats.GAUGES) == set(HostStats.__slots__)


def test_host_stats_map_items_lists_hosts_with_counters():
    host = HostImpl(Address("10.0.0.1", 80))
    stats_map = HostStatsMap()
    assert stats_map.items() == []
    stats_map.for_host(host).rq_total += 1
    [(seen_host, seen_stats)] = stats_map.items()
    assert seen_host is host and seen_stats.rq_total == 1
