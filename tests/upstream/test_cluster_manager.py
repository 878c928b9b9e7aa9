"""ClusterManagerImpl with real workers: snapshots through the TLS slot, per-worker LBs and pools, shutdown."""

import threading
import time

import pytest
from upstream_helpers import StubResolver, drain_main, on_each_worker, resolver_threads_alive

from pyevent_envoy.event import DispatcherImpl
from pyevent_envoy.network import Address
from pyevent_envoy.testing import run_until
from pyevent_envoy.thread_local import InstanceImpl
from pyevent_envoy.upstream import (
    ClusterInfo,
    ClusterManagerImpl,
    DiscoveryType,
    LbPolicy,
    LeastRequestLoadBalancer,
    RoundRobinLoadBalancer,
    ThreadLocalCluster,
    from_config,
)

pytestmark = pytest.mark.timeout(60)

FAST = 0.05


class FakePool:
    """Stands in for an HTTP connection pool: records drain() and the thread it ran on."""

    def __init__(self, host):
        self.host = host
        self.drained_on = None

    def drain(self):
        self.drained_on = threading.current_thread().name


@pytest.fixture
def cm_setup(threading_setup, stub_resolver):
    """A cluster manager over two started workers and the stub resolver; shut down first at teardown."""
    tls, main, workers = threading_setup
    cm = ClusterManagerImpl(main, tls, resolve_fn=stub_resolver)
    yield cm, tls, main, workers
    cm.shutdown()


def ips(tlc, picks=40):
    return {str(tlc.choose_host().address) for _ in range(picks)}


def wait_initialized(cm, main, timeout=None):
    done = []
    if timeout is None:
        cm.initialize(lambda: done.append(True))
    else:
        cm.initialize(lambda: done.append(True), timeout=timeout)
    run_until(main, lambda: done)
    return done


def sync_workers(cm, main, workers):
    """Wait until every worker has run what the main thread pushed so far."""
    on_each_worker(workers, lambda: None)


# STATIC


def test_static_cluster_is_visible_on_main_and_every_worker(cm_setup):
    cm, tls, main, workers = cm_setup
    cluster = cm.add_cluster(ClusterInfo("web"), [("10.0.0.1", 80), ("10.0.0.2", 80)])
    assert cluster.initialized and cm.initialized
    done = []
    cm.initialize(lambda: done.append(True))
    assert done == [True]  # nothing to wait for: inline
    main_tlc = cm.get_thread_local_cluster("web")
    assert isinstance(main_tlc, ThreadLocalCluster)
    assert main_tlc.info is cluster.info and main_tlc.host_set is cluster.host_set
    assert ips(main_tlc) == {"10.0.0.1:80", "10.0.0.2:80"}

    def on_worker():
        tlc = cm.get_thread_local_cluster("web")
        return tlc, tlc.load_balancer, ips(tlc), tlc.info, tls.dispatcher().name

    seen = on_each_worker(workers, on_worker)
    assert [s[4] for s in seen] == ["worker_0", "worker_1"]
    assert all(s[2] == {"10.0.0.1:80", "10.0.0.2:80"} for s in seen)
    assert all(s[3] is cluster.info for s in seen)  # the immutable info is shared
    tlcs = {id(s[0]) for s in seen} | {id(main_tlc)}
    lbs = {id(s[1]) for s in seen} | {id(main_tlc.load_balancer)}
    assert len(tlcs) == 3 and len(lbs) == 3  # each thread has its own cluster view and balancer
    assert isinstance(seen[0][1], RoundRobinLoadBalancer)


def test_unknown_cluster_and_unregistered_thread_give_none(cm_setup):
    cm, _tls, _main, workers = cm_setup
    cm.add_cluster(ClusterInfo("web"), [("10.0.0.1", 80)])
    assert cm.get_thread_local_cluster("nope") is None
    assert on_each_worker(workers, lambda: cm.get_thread_local_cluster("nope")) == [None, None]
    result = []
    thread = threading.Thread(target=lambda: result.append(cm.get_thread_local_cluster("web")))
    thread.start()
    thread.join()
    assert result == [None]


def test_add_cluster_rejects_duplicates(cm_setup):
    cm, *_ = cm_setup
    cm.add_cluster(ClusterInfo("web"), [("10.0.0.1", 80)])
    with pytest.raises(ValueError, match="already exists"):
        cm.add_cluster(ClusterInfo("web"), [("10.0.0.2", 80)])
    assert cm.stats["cluster_manager.cluster_added"] == 1


def test_least_request_cluster_uses_each_workers_own_counters(cm_setup):
    cm, _tls, _main, workers = cm_setup
    cm.add_cluster(ClusterInfo("lr", lb_policy=LbPolicy.LEAST_REQUEST, least_request_choice_count=16),
                   [("10.0.0.1", 80), ("10.0.0.2", 80)])

    def load_first_host_then_pick():
        tlc = cm.get_thread_local_cluster("lr")
        assert isinstance(tlc.load_balancer, LeastRequestLoadBalancer)
        busy = tlc.host_set.hosts[0] if threading.current_thread().name == "wrk:worker_0" else tlc.host_set.hosts[1]
        tlc.host_stats.for_host(busy).rq_active = 10
        return ips(tlc, 100)

    # each worker loads a different host; 16 samples always find the other one
    assert on_each_worker(workers, load_first_host_then_pick) == [{"10.0.0.2:80"}, {"10.0.0.1:80"}]
    main_tlc = cm.get_thread_local_cluster("lr")
    assert len(main_tlc.host_stats) == 0  # the main thread's counters were never touched


# STRICT_DNS through the manager


def test_strict_dns_cluster_appears_after_first_resolution(cm_setup, stub_resolver):
    cm, _tls, main, workers = cm_setup
    stub_resolver.set("svc", ["10.0.0.1"])
    stub_resolver.gate = threading.Event()
    cm.add_cluster(ClusterInfo("svc", type=DiscoveryType.STRICT_DNS), [("svc", 80)])
    assert not cm.initialized
    assert cm.stats["cluster_manager.warming_clusters"] == 1
    assert cm.get_thread_local_cluster("svc") is None
    done = []
    cm.initialize(lambda: done.append(True))
    assert done == []
    stub_resolver.gate.set()
    run_until(main, lambda: done)
    assert cm.initialized
    assert cm.stats["cluster_manager.warming_clusters"] == 0 and cm.stats["cluster_manager.active_clusters"] == 1
    assert ips(cm.get_thread_local_cluster("svc")) == {"10.0.0.1:80"}
    assert on_each_worker(workers, lambda: ips(cm.get_thread_local_cluster("svc"))) == [{"10.0.0.1:80"}] * 2


def test_dns_update_reaches_both_workers_and_drains_pools_of_removed_hosts(cm_setup, stub_resolver):
    cm, _tls, main, workers = cm_setup
    stub_resolver.set("svc", ["10.0.0.1", "10.0.0.2"])
    cluster = cm.add_cluster(ClusterInfo("svc", type="STRICT_DNS", dns_refresh_rate=FAST), [("svc", 80)])
    wait_initialized(cm, main)

    def make_pools():
        tlc = cm.get_thread_local_cluster("svc")
        pools = {}
        for host in tlc.host_set.hosts:
            pools[str(host.address)] = tlc.conn_pools[host] = FakePool(host)
        tlc.conn_pools[object()] = "pool without drain()"  # dropped, not drained
        tlc.host_stats.for_host(tlc.host_set.hosts[0]).rq_active = 1
        return tlc, pools

    before = on_each_worker(workers, make_pools)
    stub_resolver.set("svc", ["10.0.0.2", "10.0.0.3"])
    run_until(main, lambda: cluster.stats["cluster.svc.membership_change"] == 2)
    sync_workers(cm, main, workers)

    def after():
        tlc = cm.get_thread_local_cluster("svc")
        return tlc, ips(tlc), {str(h.address) for h in tlc.conn_pools}, len(tlc.host_stats)

    seen = on_each_worker(workers, after)
    for i, ((tlc_before, pools), (tlc_after, picked, pool_hosts, counted)) in enumerate(zip(before, seen)):
        assert tlc_after is tlc_before  # the same per-worker object, new snapshot inside
        assert picked == {"10.0.0.2:80", "10.0.0.3:80"}
        assert pools["10.0.0.1:80"].drained_on == f"wrk:worker_{i}"  # drained on its own worker
        assert pools["10.0.0.2:80"].drained_on is None  # surviving host: pool kept
        assert pool_hosts == {"10.0.0.2:80"}
        assert counted == 0  # counters of the removed host forgotten
    assert ips(cm.get_thread_local_cluster("svc")) == {"10.0.0.2:80", "10.0.0.3:80"}


def test_failed_resolution_keeps_workers_hosts(cm_setup, stub_resolver):
    cm, _tls, main, workers = cm_setup
    stub_resolver.set("svc", ["10.0.0.1"])
    cluster = cm.add_cluster(ClusterInfo("svc", type="STRICT_DNS", dns_refresh_rate=FAST), [("svc", 80)])
    wait_initialized(cm, main)
    snapshots = on_each_worker(workers, lambda: cm.get_thread_local_cluster("svc").snapshot)
    stub_resolver.set("svc", OSError("SERVFAIL"))
    run_until(main, lambda: cluster.stats["cluster.svc.update_failure"] >= 2)
    sync_workers(cm, main, workers)
    assert on_each_worker(workers, lambda: cm.get_thread_local_cluster("svc").snapshot) == snapshots
    assert on_each_worker(workers, lambda: ips(cm.get_thread_local_cluster("svc"))) == [{"10.0.0.1:80"}] * 2


def test_initialize_bound_publishes_clusters_still_resolving(cm_setup, stub_resolver):
    cm, _tls, main, workers = cm_setup
    stub_resolver.set("slow", ["10.0.0.1"])
    stub_resolver.gate = threading.Event()
    cm.add_cluster(ClusterInfo("static"), [("10.0.0.9", 80)])
    cm.add_cluster(ClusterInfo("slow", type="STRICT_DNS"), [("slow", 80)])
    start = time.monotonic()
    wait_initialized(cm, main, timeout=0.1)
    assert time.monotonic() - start < 5
    assert cm.initialized
    # published with no hosts yet: the cluster is known, choose_host() has nothing
    assert on_each_worker(workers, lambda: cm.get_thread_local_cluster("slow").choose_host()) == [None, None]
    stub_resolver.gate.set()
    run_until(main, lambda: cm.get_cluster("slow").initialized)
    sync_workers(cm, main, workers)
    assert on_each_worker(workers, lambda: ips(cm.get_thread_local_cluster("slow"))) == [{"10.0.0.1:80"}] * 2


def test_initialize_waits_for_clusters_added_meanwhile(cm_setup, stub_resolver):
    cm, _tls, main, _workers = cm_setup
    stub_resolver.set("a", ["10.0.0.1"])
    stub_resolver.set("b", ["10.0.0.2"])
    stub_resolver.gate = threading.Event()
    cm.add_cluster(ClusterInfo("a", type="STRICT_DNS"), [("a", 80)])
    done = []
    cm.initialize(lambda: done.append(True))
    cm.add_cluster(ClusterInfo("b", type="STRICT_DNS"), [("b", 80)])
    stub_resolver.gate.set()
    run_until(main, lambda: done)
    assert cm.get_cluster("a").initialized and cm.get_cluster("b").initialized


def test_dns_resolution_never_blocks_the_main_loop(threading_setup):
    tls, main, _workers = threading_setup

    def slow(name, family):
        time.sleep(1.0)
        return ["10.0.0.1"]

    cm = ClusterManagerImpl(main, tls, resolve_fn=slow)
    start = time.monotonic()
    cm.add_cluster(ClusterInfo("svc", type="STRICT_DNS"), [("svc", 80)])
    fired = []
    timer = main.create_timer(lambda: fired.append(time.monotonic() - start))
    timer.enable_timer(0.010)
    done = []
    cm.initialize(lambda: done.append(time.monotonic() - start))
    run_until(main, lambda: fired)
    assert fired[0] < 0.5 and not done
    run_until(main, lambda: done)
    assert done[0] >= 0.9
    timer.close()
    cm.shutdown()


# LOGICAL_DNS through the manager


def test_logical_dns_address_change_keeps_host_and_pools_on_workers(cm_setup, stub_resolver):
    cm, _tls, main, workers = cm_setup
    stub_resolver.set("api", ["10.0.0.1", "10.0.0.2"])
    cluster = cm.add_cluster(ClusterInfo("api", type="LOGICAL_DNS", dns_refresh_rate=FAST), [("api", 443)])
    wait_initialized(cm, main)

    def add_pool():
        tlc = cm.get_thread_local_cluster("api")
        (host,) = tlc.host_set.hosts
        pool = tlc.conn_pools[host] = FakePool(host)
        return host, pool

    pools = on_each_worker(workers, add_pool)
    assert pools[0][0] is pools[1][0] is cluster.logical_host
    stub_resolver.set("api", ["10.0.0.7"])
    run_until(main, lambda: cluster.logical_host.address == Address("10.0.0.7", 443))

    def check():
        tlc = cm.get_thread_local_cluster("api")
        return ips(tlc, 5), list(tlc.conn_pools.values())

    for (_host, pool), (picked, kept) in zip(pools, on_each_worker(workers, check)):
        assert picked == {"10.0.0.7:443"}
        assert kept == [pool] and pool.drained_on is None


# removal, shutdown


def test_remove_cluster_drains_pools_everywhere(cm_setup):
    cm, _tls, main, workers = cm_setup
    cm.add_cluster(ClusterInfo("web"), [("10.0.0.1", 80)])

    def add_pool():
        tlc = cm.get_thread_local_cluster("web")
        host = tlc.host_set.hosts[0]
        tlc.conn_pools[host] = FakePool(host)
        return tlc.conn_pools[host]

    pools = on_each_worker(workers, add_pool)
    assert cm.remove_cluster("web") is True
    assert cm.remove_cluster("web") is False
    assert cm.get_thread_local_cluster("web") is None and cm.get_cluster("web") is None
    assert on_each_worker(workers, lambda: cm.get_thread_local_cluster("web")) == [None, None]
    assert [p.drained_on for p in pools] == ["wrk:worker_0", "wrk:worker_1"]
    assert cm.stats["cluster_manager.cluster_removed"] == 1 and cm.stats["cluster_manager.active_clusters"] == 0


def test_shutdown_drains_pools_stops_timers_and_threads_and_frees_the_slot(threading_setup, stub_resolver):
    tls, main, workers = threading_setup
    live_before = main.statistics().events_live
    cm = ClusterManagerImpl(main, tls, resolve_fn=stub_resolver)
    stub_resolver.set("svc", ["10.0.0.1"])
    stub_resolver.set("api", ["10.0.0.2"])
    cm.add_cluster(ClusterInfo("web"), [("10.0.0.9", 80)])
    cm.add_cluster(ClusterInfo("svc", type="STRICT_DNS", dns_refresh_rate=FAST), [("svc", 80), ("svc", 81)])
    cm.add_cluster(ClusterInfo("api", type="LOGICAL_DNS", dns_refresh_rate=FAST), [("api", 80)])
    wait_initialized(cm, main)
    run_until(main, lambda: stub_resolver.call_count() >= 6)  # refreshes are running
    assert resolver_threads_alive()

    def add_pool():
        tlc = cm.get_thread_local_cluster("svc")
        host = tlc.host_set.hosts[0]
        tlc.conn_pools[host] = FakePool(host)
        return tlc.conn_pools[host]

    pools = on_each_worker(workers, add_pool)
    cm.shutdown()
    cm.shutdown()  # idempotent
    assert main.statistics().events_live == live_before
    assert resolver_threads_alive() == []
    assert cm.get_thread_local_cluster("svc") is None
    sync_workers(cm, main, workers)
    assert [p.drained_on for p in pools] == ["wrk:worker_0", "wrk:worker_1"]
    assert on_each_worker(workers, lambda: cm.get_thread_local_cluster("svc")) == [None, None]
    calls = stub_resolver.call_count()
    time.sleep(3 * FAST)
    drain_main(main)
    assert stub_resolver.call_count() == calls  # no refresh after shutdown
    with pytest.raises(RuntimeError):
        cm.add_cluster(ClusterInfo("late"), [("10.0.0.1", 80)])


def test_shutdown_in_the_servers_order_after_workers_stopped(stub_resolver):
    tls = InstanceImpl()
    main = DispatcherImpl("main_thread")
    tls.register_thread(main, main=True)
    from pyevent_envoy.server import WorkerImpl

    workers = [WorkerImpl(f"worker_{i}", tls=tls) for i in range(2)]
    for worker in workers:
        worker.start()
    stub_resolver.set("svc", ["10.0.0.1"])
    cm = ClusterManagerImpl(main, tls, resolve_fn=stub_resolver)
    cm.add_cluster(ClusterInfo("svc", type="STRICT_DNS", dns_refresh_rate=FAST), [("svc", 80)])
    wait_initialized(cm, main)
    main_tlc = cm.get_thread_local_cluster("svc")
    pool = main_tlc.conn_pools[main_tlc.host_set.hosts[0]] = FakePool(None)
    on_each_worker(workers, lambda: None)  # the workers took the snapshots already posted
    # Envoy's order: global threading off, workers stopped, then the cluster manager.
    tls.shutdown_global_threading()
    for worker in workers:
        worker.stop()
    cm.shutdown()
    assert pool.drained_on == threading.current_thread().name  # the main thread's pools still drained
    tls.shutdown_thread()
    drain_main(main)
    assert main.statistics().events_live == 0
    main.close()
    assert resolver_threads_alive() == []
    assert not any(t.name.startswith("wrk:") for t in threading.enumerate())


def test_updates_after_global_threading_shutdown_are_not_posted(cm_setup, stub_resolver):
    cm, tls, main, workers = cm_setup
    stub_resolver.set("svc", ["10.0.0.1"])
    cluster = cm.add_cluster(ClusterInfo("svc", type="STRICT_DNS", dns_refresh_rate=FAST), [("svc", 80)])
    wait_initialized(cm, main)
    tls.shutdown_global_threading()
    stub_resolver.set("svc", ["10.0.0.2"])
    run_until(main, lambda: cluster.stats["cluster.svc.membership_change"] == 2)
    # the cluster moved on; the threads keep their last snapshot
    assert on_each_worker(workers, lambda: ips(cm.get_thread_local_cluster("svc"))) == [{"10.0.0.1:80"}] * 2


# config


def test_add_cluster_from_the_config_model(cm_setup):
    config = pytest.importorskip("pyevent_envoy.config")
    cm, _tls, main, workers = cm_setup
    cfg = config.Cluster(
        name="backend",
        lb_policy=config.LbPolicy.RANDOM,
        load_assignment=config.ClusterLoadAssignment(
            cluster_name="backend",
            endpoints=(
                config.LocalityLbEndpoints(
                    lb_endpoints=(
                        config.LbEndpoint(address=config.SocketAddress("127.0.0.1", 8001)),
                        config.LbEndpoint(address=config.SocketAddress("127.0.0.1", 8002), load_balancing_weight=2),
                    )
                ),
            ),
        ),
    )
    cluster = cm.add_cluster(*from_config(cfg))
    assert cluster.info.lb_policy is LbPolicy.RANDOM
    assert [h.weight for h in cluster.host_set] == [1, 2]
    assert on_each_worker(workers, lambda: ips(cm.get_thread_local_cluster("backend"), 200)) == [
        {"127.0.0.1:8001", "127.0.0.1:8002"}
    ] * 2


# per-host counters for the admin


def test_collect_host_stats_sums_every_threads_counters_on_main(cm_setup):
    cm, _tls, main, workers = cm_setup
    cm.add_cluster(ClusterInfo("web"), [("10.0.0.1", 80), ("10.0.0.2", 80)])
    first, second = cm.clusters["web"].host_set.hosts

    def count_on_worker():
        tlc = cm.get_thread_local_cluster("web")
        index = int(threading.current_thread().name[-1])  # "wrk:worker_<n>"
        tlc.host_stats.for_host(first).rq_total += 1 + index
        tlc.host_stats.for_host(first).cx_active += 1
        if index == 1:
            tlc.host_stats.for_host(second).cx_connect_fail += 3

    on_each_worker(workers, count_on_worker)
    cm.get_thread_local_cluster("web").host_stats.for_host(second).rq_success += 1  # the main thread's own
    results = []
    cm.collect_host_stats(results.append)
    run_until(main, lambda: results)
    [totals] = results
    assert set(totals) == {first, second}
    assert (totals[first].rq_total, totals[first].cx_active) == (3, 2)
    assert (totals[second].cx_connect_fail, totals[second].rq_success, totals[second].rq_total) == (3, 1, 0)


def test_collect_host_stats_after_shutdown_answers_empty(threading_setup, stub_resolver):
    tls, main, _workers = threading_setup
    cm = ClusterManagerImpl(main, tls, resolve_fn=stub_resolver)
    cm.add_cluster(ClusterInfo("web"), [("10.0.0.1", 80)])
    cm.shutdown()
    results = []
    cm.collect_host_stats(results.append)
    run_until(main, lambda: results)
    assert results == [{}]
