"""Clusters on the main thread: ClusterInfo, STATIC, STRICT_DNS, LOGICAL_DNS, from_config."""

import threading
import time
import types

import pytest
from upstream_helpers import StubResolver, resolver_threads_alive

from pyevent_envoy.network import Address
from pyevent_envoy.testing import run_nonblock, run_until
from pyevent_envoy.upstream import (
    CircuitBreakerThresholds,
    ClusterInfo,
    DiscoveryType,
    DnsLookupFamily,
    DnsResolverImpl,
    Endpoint,
    LbPolicy,
    LogicalDnsCluster,
    LogicalHost,
    StaticCluster,
    StrictDnsCluster,
    from_config,
)

pytestmark = pytest.mark.timeout(60)

FAST = 0.05  # seconds between lookups in refresh tests


def addresses(cluster):
    return [str(host.address) for host in cluster.host_set.hosts]


def stat(cluster, name):
    return cluster.stats[f"cluster.{cluster.info.name}.{name}"]


class MemberLog:
    def __init__(self, cluster):
        self.calls = []
        cluster.add_member_update_cb(self)

    def __call__(self, cluster, added, removed):
        self.calls.append(([str(h.address) for h in added], [str(h.address) for h in removed]))


@pytest.fixture
def dns(main_dispatcher, stub_resolver):
    """A resolver over the stub, shut down (threads joined) at teardown."""
    resolver = DnsResolverImpl(main_dispatcher, resolve_fn=stub_resolver)
    yield resolver
    resolver.shutdown()
    assert resolver_threads_alive() == []


def dns_info(name="svc", **kwargs):
    kwargs.setdefault("type", DiscoveryType.STRICT_DNS)
    kwargs.setdefault("dns_refresh_rate", 3600.0)
    return ClusterInfo(name, **kwargs)


def initialize(main, cluster):
    done = []
    cluster.initialize(lambda: done.append(True))
    run_until(main, lambda: done)
    assert cluster.initialized


# ClusterInfo


def test_cluster_info_has_envoys_defaults():
    info = ClusterInfo("backend")
    assert info.type is DiscoveryType.STATIC
    assert info.connect_timeout == 5.0
    assert info.lb_policy is LbPolicy.ROUND_ROBIN
    assert info.per_connection_buffer_limit_bytes == 1024 * 1024
    assert info.circuit_breakers == CircuitBreakerThresholds(1024, 1024, 1024, 3)
    assert info.dns_refresh_rate == 5.0
    assert info.dns_lookup_family is DnsLookupFamily.AUTO
    assert info.least_request_choice_count == 2


def test_cluster_info_is_frozen_and_takes_enum_names():
    info = ClusterInfo("b", type="strict_dns", lb_policy="LEAST_REQUEST", dns_lookup_family="V4_ONLY")
    assert (info.type, info.lb_policy, info.dns_lookup_family) == (
        DiscoveryType.STRICT_DNS,
        LbPolicy.LEAST_REQUEST,
        DnsLookupFamily.V4_ONLY,
    )
    with pytest.raises(AttributeError):
        info.name = "other"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"connect_timeout": 0},
        {"dns_refresh_rate": -1},
        {"lb_policy": "RING_HASH"},
        {"type": "EDS"},
        {"least_request_choice_count": 1},
    ],
)
def test_cluster_info_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        ClusterInfo("b", **kwargs)


def test_circuit_breaker_thresholds_reject_negative():
    with pytest.raises(ValueError):
        CircuitBreakerThresholds(max_connections=-1)


# STATIC


def test_static_cluster_initializes_inline_with_its_endpoints(main_dispatcher):
    cluster = StaticCluster(
        ClusterInfo("web"), [("10.0.0.1", 80), Endpoint("::1", 8080, 3)], main_dispatcher
    )
    assert not cluster.initialized and len(cluster.host_set) == 0
    log = MemberLog(cluster)
    done = []
    cluster.initialize(lambda: done.append(True))
    assert done == [True] and cluster.initialized  # inline: nothing to wait for
    assert addresses(cluster) == ["10.0.0.1:80", "[::1]:8080"]
    assert [h.weight for h in cluster.host_set] == [1, 3]
    assert all(h.cluster_name == "web" and h.hostname == "" for h in cluster.host_set)
    assert log.calls == [(["10.0.0.1:80", "[::1]:8080"], [])]
    assert stat(cluster, "membership_total") == 2 and stat(cluster, "membership_healthy") == 2
    assert stat(cluster, "membership_change") == 1
    cluster.initialize(lambda: done.append("again"))  # already initialized: inline again
    assert done == [True, "again"]
    cluster.shutdown()


def test_static_cluster_rejects_hostnames(main_dispatcher):
    with pytest.raises(ValueError, match="not an IP address"):
        StaticCluster(ClusterInfo("web"), [("example.com", 80)], main_dispatcher)
    with pytest.raises(ValueError):
        StaticCluster(ClusterInfo("web"), [("10.0.0.1", 70000)], main_dispatcher)


# STRICT_DNS


def test_strict_dns_every_address_of_every_endpoint_becomes_a_host(main_dispatcher, stub_resolver, dns):
    stub_resolver.set("a.svc", ["10.0.0.1", "10.0.0.2"])
    stub_resolver.set("b.svc", ["10.0.1.1"])
    cluster = StrictDnsCluster(dns_info(), [("a.svc", 80, 2), ("b.svc", 81)], main_dispatcher, dns)
    initialize(main_dispatcher, cluster)
    assert addresses(cluster) == ["10.0.0.1:80", "10.0.0.2:80", "10.0.1.1:81"]
    assert [(h.hostname, h.weight) for h in cluster.host_set] == [("a.svc", 2), ("a.svc", 2), ("b.svc", 1)]
    assert stat(cluster, "update_attempt") == 2 and stat(cluster, "update_success") == 2
    assert stat(cluster, "membership_total") == 3
    cluster.shutdown()


def test_strict_dns_initializes_only_after_every_endpoints_first_lookup(main_dispatcher, stub_resolver, dns):
    stub_resolver.set("fast", ["10.0.0.1"])
    stub_resolver.set("slow", ["10.0.0.2"])
    slow_gate = threading.Event()
    inner = stub_resolver.__call__

    def resolve(name, family):
        if name == "slow":
            slow_gate.wait(30)
        return inner(name, family)

    resolver = DnsResolverImpl(main_dispatcher, resolve_fn=resolve)
    cluster = StrictDnsCluster(dns_info(), [("fast", 80), ("slow", 80)], main_dispatcher, resolver)
    done = []
    cluster.initialize(lambda: done.append(True))
    run_until(main_dispatcher, lambda: stat(cluster, "update_success") == 1)
    assert addresses(cluster) == ["10.0.0.1:80"] and not done  # partial hosts, not initialized
    slow_gate.set()
    run_until(main_dispatcher, lambda: done)
    assert addresses(cluster) == ["10.0.0.1:80", "10.0.0.2:80"]
    cluster.shutdown()
    resolver.shutdown()


def test_strict_dns_localhost_with_the_system_resolver(main_dispatcher):
    resolver = DnsResolverImpl(main_dispatcher)
    auto = StrictDnsCluster(dns_info("auto"), [("localhost", 8080)], main_dispatcher, resolver)
    v4 = StrictDnsCluster(dns_info("v4", dns_lookup_family="V4_ONLY"), [("localhost", 8080)], main_dispatcher, resolver)
    initialize(main_dispatcher, auto)
    initialize(main_dispatcher, v4)
    assert addresses(v4) == ["127.0.0.1:8080"]
    assert addresses(auto) and set(addresses(auto)) <= {"127.0.0.1:8080", "[::1]:8080"}
    assert all(h.hostname == "localhost" for h in auto.host_set)
    auto.shutdown()
    v4.shutdown()
    resolver.shutdown()
    assert resolver_threads_alive() == []


@pytest.mark.parametrize(
    "family, expected",
    [
        ("AUTO", ["[fd00::1]:80"]),
        ("V4_ONLY", ["10.0.0.1:80"]),
        ("V6_ONLY", ["[fd00::1]:80"]),
        ("V4_PREFERRED", ["10.0.0.1:80"]),
        ("ALL", ["10.0.0.1:80", "[fd00::1]:80"]),
    ],
)
def test_strict_dns_honours_dns_lookup_family(main_dispatcher, stub_resolver, dns, family, expected):
    stub_resolver.set("svc", ["10.0.0.1", "fd00::1"])
    cluster = StrictDnsCluster(dns_info(dns_lookup_family=family), [("svc", 80)], main_dispatcher, dns)
    initialize(main_dispatcher, cluster)
    assert addresses(cluster) == expected
    cluster.shutdown()


def test_strict_dns_refresh_updates_hosts_and_keeps_surviving_ones(main_dispatcher, stub_resolver, dns):
    stub_resolver.set("svc", ["10.0.0.1", "10.0.0.2"])
    cluster = StrictDnsCluster(dns_info(dns_refresh_rate=FAST), [("svc", 80)], main_dispatcher, dns)
    initialize(main_dispatcher, cluster)
    survivor = cluster.host_set.hosts[1]
    log = MemberLog(cluster)
    stub_resolver.set("svc", ["10.0.0.2", "10.0.0.3"])
    run_until(main_dispatcher, lambda: log.calls)
    assert addresses(cluster) == ["10.0.0.2:80", "10.0.0.3:80"]
    assert cluster.host_set.hosts[0] is survivor  # same object: its pools survive
    assert log.calls == [(["10.0.0.3:80"], ["10.0.0.1:80"])]
    assert stat(cluster, "membership_change") == 2
    cluster.shutdown()


def test_strict_dns_unchanged_answer_is_no_rebuild(main_dispatcher, stub_resolver, dns):
    stub_resolver.set("svc", ["10.0.0.1"])
    cluster = StrictDnsCluster(dns_info(dns_refresh_rate=FAST), [("svc", 80)], main_dispatcher, dns)
    initialize(main_dispatcher, cluster)
    snapshot = cluster.host_set
    log = MemberLog(cluster)
    run_until(main_dispatcher, lambda: stat(cluster, "update_no_rebuild") >= 2)
    assert cluster.host_set is snapshot and log.calls == []
    assert stat(cluster, "membership_change") == 1
    cluster.shutdown()


def test_strict_dns_failed_lookup_keeps_hosts_and_retries(main_dispatcher, stub_resolver, dns):
    stub_resolver.set("svc", ["10.0.0.1"])
    cluster = StrictDnsCluster(dns_info(dns_refresh_rate=FAST), [("svc", 80)], main_dispatcher, dns)
    initialize(main_dispatcher, cluster)
    hosts = cluster.host_set.hosts
    stub_resolver.set("svc", OSError("SERVFAIL"))
    run_until(main_dispatcher, lambda: stat(cluster, "update_failure") >= 2)
    assert cluster.host_set.hosts == hosts  # kept through failures
    stub_resolver.set("svc", ["10.0.0.5"])
    run_until(main_dispatcher, lambda: addresses(cluster) == ["10.0.0.5:80"])
    assert stat(cluster, "update_success") >= 2
    assert stat(cluster, "update_attempt") >= stat(cluster, "update_success") + stat(cluster, "update_failure")
    cluster.shutdown()


def test_strict_dns_first_lookup_failing_initializes_with_no_hosts(main_dispatcher, stub_resolver, dns):
    cluster = StrictDnsCluster(dns_info(dns_refresh_rate=FAST), [("missing", 80)], main_dispatcher, dns)
    initialize(main_dispatcher, cluster)
    assert len(cluster.host_set) == 0 and stat(cluster, "update_failure") == 1
    stub_resolver.set("missing", ["10.0.0.7"])
    run_until(main_dispatcher, lambda: addresses(cluster) == ["10.0.0.7:80"])
    cluster.shutdown()


def test_strict_dns_without_endpoints_initializes_at_once(main_dispatcher, dns):
    cluster = StrictDnsCluster(dns_info(), [], main_dispatcher, dns)
    done = []
    cluster.initialize(lambda: done.append(True))
    assert done == [True] and len(cluster.host_set) == 0
    cluster.shutdown()


def test_strict_dns_slow_resolver_does_not_delay_a_main_timer(main_dispatcher):
    def slow(name, family):
        time.sleep(1.0)
        return ["10.0.0.1"]

    resolver = DnsResolverImpl(main_dispatcher, resolve_fn=slow)
    cluster = StrictDnsCluster(dns_info(), [("svc", 80)], main_dispatcher, resolver)
    done = []
    fired = []
    start = time.monotonic()
    cluster.initialize(lambda: done.append(time.monotonic() - start))
    timer = main_dispatcher.create_timer(lambda: fired.append(time.monotonic() - start))
    timer.enable_timer(0.010)
    run_until(main_dispatcher, lambda: fired)
    assert fired[0] < 0.5 and not done  # the timer ran while the lookup was still sleeping
    run_until(main_dispatcher, lambda: done)
    assert done[0] >= 0.9
    timer.close()
    cluster.shutdown()
    resolver.shutdown()


def test_strict_dns_shutdown_cancels_lookups_and_closes_timers(main_dispatcher, stub_resolver, dns):
    stub_resolver.set("svc", ["10.0.0.1"])
    created = main_dispatcher.statistics().events_live
    cluster = StrictDnsCluster(dns_info(dns_refresh_rate=FAST), [("svc", 80), ("svc", 81)], main_dispatcher, dns)
    assert main_dispatcher.statistics().events_live == created + 2  # one refresh timer per endpoint
    initialize(main_dispatcher, cluster)
    stub_resolver.gate = threading.Event()
    run_until(main_dispatcher, lambda: dns.pending == 2)  # both refreshes in flight
    cluster.shutdown()
    cluster.shutdown()  # idempotent
    assert dns.pending == 0
    assert main_dispatcher.statistics().events_live == created
    stub_resolver.gate.set()
    hosts = cluster.host_set
    attempts = stat(cluster, "update_attempt")
    time.sleep(2 * FAST)
    run_nonblock(main_dispatcher, 3)  # late answers and old timers: nothing may run any more
    assert cluster.host_set is hosts and stat(cluster, "update_attempt") == attempts
    with pytest.raises(RuntimeError):
        cluster.initialize(lambda: None)


# LOGICAL_DNS


def test_logical_dns_one_host_at_the_first_address(main_dispatcher, stub_resolver, dns):
    stub_resolver.set("api.svc", ["10.0.0.1", "10.0.0.2"])
    info = dns_info("api", type="LOGICAL_DNS", dns_refresh_rate=FAST)
    cluster = LogicalDnsCluster(info, [("api.svc", 443, 2)], main_dispatcher, dns)
    initialize(main_dispatcher, cluster)
    (host,) = cluster.host_set.hosts
    assert isinstance(host, LogicalHost) and host is cluster.logical_host
    assert (str(host.address), host.hostname, host.weight) == ("10.0.0.1:443", "api.svc", 2)
    log = MemberLog(cluster)
    stub_resolver.set("api.svc", ["10.0.0.9", "10.0.0.1"])
    run_until(main_dispatcher, lambda: host.address == Address("10.0.0.9", 443))
    assert cluster.host_set.hosts == (host,)  # same host, moved: no membership change
    assert log.calls == [] and stat(cluster, "membership_change") == 1
    stub_resolver.set("api.svc", OSError("down"))
    run_until(main_dispatcher, lambda: stat(cluster, "update_failure") >= 1)
    assert host.address == Address("10.0.0.9", 443)
    cluster.shutdown()


def test_logical_dns_needs_exactly_one_endpoint(main_dispatcher, dns):
    info = dns_info("api", type="LOGICAL_DNS")
    with pytest.raises(ValueError, match="exactly one"):
        LogicalDnsCluster(info, [("a", 80), ("b", 80)], main_dispatcher, dns)
    with pytest.raises(ValueError, match="exactly one"):
        LogicalDnsCluster(info, [], main_dispatcher, dns)


def test_logical_dns_failing_first_lookup_then_success(main_dispatcher, stub_resolver, dns):
    info = dns_info("api", type="LOGICAL_DNS", dns_refresh_rate=FAST)
    cluster = LogicalDnsCluster(info, [("api.svc", 80)], main_dispatcher, dns)
    initialize(main_dispatcher, cluster)
    assert cluster.logical_host is None and len(cluster.host_set) == 0
    stub_resolver.set("api.svc", ["10.0.0.3"])
    run_until(main_dispatcher, lambda: cluster.logical_host is not None)
    assert addresses(cluster) == ["10.0.0.3:80"]
    cluster.shutdown()


# from_config


def test_from_config_reads_a_duck_typed_cluster():
    socket_address = types.SimpleNamespace(address="backend.svc", port_value=8080)
    cfg = types.SimpleNamespace(
        name="backend",
        type="STRICT_DNS",
        connect_timeout=0.25,
        lb_policy="RANDOM",
        per_connection_buffer_limit_bytes=32768,
        circuit_breakers=types.SimpleNamespace(
            thresholds=[types.SimpleNamespace(priority="HIGH", max_connections=1),
                        types.SimpleNamespace(priority="DEFAULT", max_connections=7, max_retries=1)]
        ),
        dns_refresh_rate=2.0,
        dns_lookup_family="V4_ONLY",
        lb_endpoints=[types.SimpleNamespace(address=socket_address, load_balancing_weight=4)],
    )
    info, endpoints = from_config(cfg)
    assert info == ClusterInfo(
        "backend",
        type=DiscoveryType.STRICT_DNS,
        connect_timeout=0.25,
        lb_policy=LbPolicy.RANDOM,
        per_connection_buffer_limit_bytes=32768,
        circuit_breakers=CircuitBreakerThresholds(max_connections=7, max_retries=1),
        high_priority_circuit_breakers=CircuitBreakerThresholds(max_connections=1),
        dns_refresh_rate=2.0,
        dns_lookup_family=DnsLookupFamily.V4_ONLY,
    )
    assert endpoints == (Endpoint("backend.svc", 8080, 4),)
    assert (info.resource_manager.connections.max, info.high_priority_resource_manager.connections.max) == (7, 1)


def test_from_config_reads_the_config_model():
    config = pytest.importorskip("pyevent_envoy.config")
    cfg = config.Cluster(
        name="web",
        type=config.DiscoveryType.LOGICAL_DNS,
        lb_policy=config.LbPolicy.LEAST_REQUEST,
        dns_lookup_family=config.DnsLookupFamily.V4_PREFERRED,
        load_assignment=config.ClusterLoadAssignment(
            cluster_name="web",
            endpoints=(
                config.LocalityLbEndpoints(
                    lb_endpoints=(config.LbEndpoint(address=config.SocketAddress("web.svc", 80)),)
                ),
            ),
        ),
        circuit_breakers=config.CircuitBreakers(thresholds=(config.Thresholds(max_pending_requests=10),)),
    )
    info, endpoints = from_config(cfg)
    assert info.type is DiscoveryType.LOGICAL_DNS
    assert info.lb_policy is LbPolicy.LEAST_REQUEST
    assert info.dns_lookup_family is DnsLookupFamily.V4_PREFERRED
    assert info.connect_timeout == 5.0 and info.dns_refresh_rate == 5.0
    assert info.circuit_breakers == CircuitBreakerThresholds(max_pending_requests=10)
    assert endpoints == (Endpoint("web.svc", 80, 1),)
