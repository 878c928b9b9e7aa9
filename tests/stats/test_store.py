"""The stats store: per-thread scopes summed on read, usedonly, and Envoy's three renderings."""

from __future__ import annotations

import json
import threading

import pytest

from pyevent_envoy.stats import (
    COUNTER,
    GAUGE,
    ClusterTrafficStats,
    HttpConnManagerStats,
    ListenerStats,
    Stat,
    StatsQueryError,
    StatsStore,
    listener_stat_prefix,
    render_json,
    render_prometheus,
    render_text,
    select,
)
from pyevent_envoy.stats.render import extract_tags


def test_scopes_of_one_prefix_are_summed():
    store = StatsStore()
    a, b = HttpConnManagerStats(), HttpConnManagerStats()
    store.register("http.ingress.", a)
    store.register("http.ingress.", b)
    a.downstream_rq_total += 2
    b.downstream_rq_total += 3
    a.downstream_rq_active += 1
    b.charge_response(503)
    a.charge_response(200)
    stats = {s.name: s for s in store.snapshot()}
    assert stats["http.ingress.downstream_rq_total"] == Stat("http.ingress.downstream_rq_total", COUNTER, 5, True)
    assert stats["http.ingress.downstream_rq_active"] == Stat("http.ingress.downstream_rq_active", GAUGE, 1, True)
    assert stats["http.ingress.downstream_rq_completed"].value == 2
    assert [stats[f"http.ingress.downstream_rq_{n}xx"].value for n in range(1, 6)] == [0, 1, 0, 0, 1]


def test_snapshot_is_sorted_by_name_as_envoy_sorts():
    store = StatsStore()
    store.register("listener.127.0.0.1_80.", ListenerStats())
    store.register("cluster.b.", ClusterTrafficStats())
    store.register("cluster.a.", ClusterTrafficStats())
    store.add_source(lambda: [Stat("cluster_manager.cluster_added", COUNTER, 2, True)])
    names = [s.name for s in store.snapshot()]
    assert names == sorted(names)
    # '.' sorts before '_': a cluster's stats come before cluster_manager's.
    assert names.index("cluster.b.upstream_rq_total") < names.index("cluster_manager.cluster_added")


def test_per_code_stats_appear_once_used():
    store = StatsStore()
    scope = store.register("cluster.app.", ClusterTrafficStats())
    names = {s.name for s in store.snapshot()}
    assert "cluster.app.upstream_rq_200" not in names and "cluster.app.upstream_rq_2xx" not in names
    scope.charge_response(200)
    scope.charge_response(204)
    scope.charge_response(999)  # not a status Envoy would count by code
    stats = {s.name: s.value for s in store.snapshot()}
    assert stats["cluster.app.upstream_rq_200"] == 1 and stats["cluster.app.upstream_rq_204"] == 1
    assert stats["cluster.app.upstream_rq_2xx"] == 2
    assert stats["cluster.app.upstream_rq_completed"] == 3


def test_usedonly_keeps_changed_counters_and_moved_gauges():
    store = StatsStore()
    scope = store.register("cluster.app.", ClusterTrafficStats())
    scope.upstream_cx_total += 1
    scope.upstream_cx_active += 1
    scope.upstream_cx_active -= 1  # back to 0, but used (Envoy: a gauge that ever changed)
    used = {s.name: s.value for s in select(store.snapshot(), used_only=True)}
    assert used == {"cluster.app.upstream_cx_total": 1, "cluster.app.upstream_cx_active": 0}


def test_filter_is_a_regex_searched_anywhere_in_the_name():
    store = StatsStore()
    store.register("http.ingress.", HttpConnManagerStats())
    names = [s.name for s in select(store.snapshot(), filter=r"rq_\dxx$")]
    assert names == [f"http.ingress.downstream_rq_{n}xx" for n in range(1, 6)]
    with pytest.raises(StatsQueryError):
        select(store.snapshot(), filter="(")


def test_unregister_removes_a_scope_and_empty_prefixes():
    store = StatsStore()
    scope = store.register("cluster.gone.", ClusterTrafficStats())
    store.unregister("cluster.gone.", scope)
    store.unregister("cluster.never.", scope)  # unknown: ignored
    assert store.snapshot() == []
    with pytest.raises(ValueError):
        store.register("cluster.no-dot", scope)


def test_workers_increment_their_own_scopes_while_the_main_thread_reads():
    """The threading contract: one writer per scope, any reader; no update is lost."""
    store = StatsStore()
    workers, per_worker = 4, 20000
    start = threading.Barrier(workers + 1)

    def worker() -> None:
        stats = store.register("http.ingress.", HttpConnManagerStats())
        start.wait()
        for _ in range(per_worker):
            stats.downstream_rq_total += 1
            stats.downstream_rq_active += 1
            stats.charge_response(200)
            stats.downstream_rq_active -= 1

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    start.wait()
    readings = []
    while any(thread.is_alive() for thread in threads):
        readings.append({s.name: s.value for s in store.snapshot()}.get("http.ingress.downstream_rq_total", 0))
    for thread in threads:
        thread.join()
    assert readings == sorted(readings)  # sums of monotonic counters never go back
    stats = {s.name: s.value for s in store.snapshot()}
    assert stats["http.ingress.downstream_rq_total"] == workers * per_worker
    assert stats["http.ingress.downstream_rq_2xx"] == workers * per_worker
    assert stats["http.ingress.downstream_rq_active"] == 0


def test_listener_prefix_is_envoys():
    assert listener_stat_prefix("127.0.0.1", 10000) == "listener.127.0.0.1_10000."
    assert listener_stat_prefix("::1", 10000) == "listener.[__1]_10000."
    assert listener_stat_prefix("0.0.0.0", 80) == "listener.0.0.0.0_80."


@pytest.mark.parametrize(
    "name, extracted, tags",
    [
        ("cluster.app.upstream_rq_200", "cluster.upstream_rq", [("envoy_response_code", "200"), ("envoy_cluster_name", "app")]),
        ("cluster.app.upstream_rq_5xx", "cluster.upstream_rq_xx", [("envoy_response_code_class", "5"), ("envoy_cluster_name", "app")]),
        ("cluster.app.upstream_rq_total", "cluster.upstream_rq_total", [("envoy_cluster_name", "app")]),
        ("http.ingress.downstream_rq_2xx", "http.downstream_rq_xx",
         [("envoy_response_code_class", "2"), ("envoy_http_conn_manager_prefix", "ingress")]),
        ("listener.127.0.0.1_80.downstream_cx_total", "listener.downstream_cx_total", [("envoy_listener_address", "127.0.0.1_80")]),
        ("listener.[__1]_80.downstream_cx_total", "listener.downstream_cx_total", [("envoy_listener_address", "[__1]_80")]),
        ("listener.127.0.0.1_80.worker_1.downstream_cx_total", "listener.worker_downstream_cx_total",
         [("envoy_worker_id", "1"), ("envoy_listener_address", "127.0.0.1_80")]),
        ("cluster_manager.active_clusters", "cluster_manager.active_clusters", []),
        ("server.live", "server.live", []),
    ],
)
def test_tag_extraction_is_envoys(name, extracted, tags):
    assert extract_tags(name) == (extracted, tags)


def test_renderings():
    stats = [
        Stat("cluster.app.upstream_rq_200", COUNTER, 2, True),
        Stat("cluster.app.upstream_rq_503", COUNTER, 1, True),
        Stat("cluster.app.upstream_rq_active", GAUGE, 0, True),
        Stat("cluster.down.upstream_rq_503", COUNTER, 1, True),
        Stat("cluster_manager.cluster_added", COUNTER, 2, True),
        Stat("server.live", GAUGE, 1, True),
    ]
    assert render_text(stats).splitlines()[0] == "cluster.app.upstream_rq_200: 2"
    assert json.loads(render_json(stats)) == {"stats": [{"name": s.name, "value": s.value} for s in stats]}
    assert render_json(stats[:1]) == '{"stats":[{"name":"cluster.app.upstream_rq_200","value":2}]}'
    assert render_prometheus(stats) == (
        "# TYPE envoy_cluster_upstream_rq counter\n"
        'envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="app"} 2\n'
        'envoy_cluster_upstream_rq{envoy_response_code="503",envoy_cluster_name="app"} 1\n'
        'envoy_cluster_upstream_rq{envoy_response_code="503",envoy_cluster_name="down"} 1\n'
        "# TYPE envoy_cluster_manager_cluster_added counter\n"
        "envoy_cluster_manager_cluster_added{} 2\n"
        "# TYPE envoy_cluster_upstream_rq_active gauge\n"
        'envoy_cluster_upstream_rq_active{envoy_cluster_name="app"} 0\n'
        "# TYPE envoy_server_live gauge\n"
        "envoy_server_live{} 1\n"
    )


def test_reset_counters_zeroes_counters_keeps_gauges_and_used():
    store = StatsStore()
    worker_a, worker_b = HttpConnManagerStats(), HttpConnManagerStats()
    store.register("http.ingress.", worker_a)
    store.register("http.ingress.", worker_b)
    worker_a.downstream_rq_total += 2
    worker_b.downstream_rq_total += 3
    worker_a.downstream_cx_active += 1
    worker_b.charge_response(503)
    source_counter = [7]
    store.add_source(lambda: [Stat("cluster_manager.cluster_added", COUNTER, source_counter[0], True),
                              Stat("cluster_manager.active_clusters", GAUGE, 4, True)])
    store.reset_counters()
    stats = {s.name: s for s in store.snapshot()}
    assert stats["http.ingress.downstream_rq_total"] == Stat("http.ingress.downstream_rq_total", COUNTER, 0, True)
    assert stats["http.ingress.downstream_rq_5xx"].value == 0
    assert stats["http.ingress.downstream_cx_active"].value == 1  # a gauge keeps its value
    assert stats["cluster_manager.cluster_added"] == Stat("cluster_manager.cluster_added", COUNTER, 0, True)
    assert stats["cluster_manager.active_clusters"].value == 4
    # Counting goes on from zero, on every worker and in sources.
    worker_a.downstream_rq_total += 1
    worker_b.downstream_rq_total += 4
    source_counter[0] += 2
    stats = {s.name: s.value for s in store.snapshot()}
    assert stats["http.ingress.downstream_rq_total"] == 5
    assert stats["cluster_manager.cluster_added"] == 2
    # usedonly still shows a counter that was used before the reset.
    store.reset_counters()
    used = {s.name for s in select(store.snapshot(), used_only=True)}
    assert "http.ingress.downstream_rq_total" in used and "http.ingress.downstream_rq_timeout" not in used


def test_reset_counters_forgets_unregistered_scopes():
    store = StatsStore()
    old, new = ClusterTrafficStats(), ClusterTrafficStats()
    store.register("cluster.app.", old)
    old.upstream_rq_total += 5
    store.reset_counters()
    store.unregister("cluster.app.", old)
    store.register("cluster.app.", new)  # the cluster came back: its counters start at zero, not below
    new.upstream_rq_total += 1
    assert {s.name: s.value for s in store.snapshot()}["cluster.app.upstream_rq_total"] == 1
