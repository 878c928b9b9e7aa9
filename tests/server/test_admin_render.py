"""The admin's renderings of plain data: commands, clusters, listeners, memory and runtime."""

from __future__ import annotations

import gc
import json
import os

from pyevent_envoy.network import Address
from pyevent_envoy.server.admin import COMMANDS
from pyevent_envoy.server.admin_render import (
    AdminCommand,
    ClusterStatus,
    health_flags,
    memory_json,
    render_clusters_json,
    render_clusters_text,
    render_help,
    render_home,
    render_listeners_json,
    render_listeners_text,
    runtime_json,
)
from pyevent_envoy.upstream import CircuitBreakerThresholds, HostImpl, HostStats


def _cluster(hosts, health=None, name="web"):
    return ClusterStatus(
        name=name,
        default_thresholds=CircuitBreakerThresholds(max_connections=10),
        high_thresholds=CircuitBreakerThresholds(max_retries=1),
        hosts=tuple(hosts),
        health=health or {host: frozenset() for host in hosts},
    )


def test_help_lists_commands_with_post_marks_and_parameters():
    commands = [AdminCommand("/a", "does a"), AdminCommand("/b", "does b", mutates=True, params=(("x", "the x"),))]
    assert render_help(commands) == "admin commands are:\n  /a: does a\n  /b (POST): does b\n      x: the x\n"


def test_command_table_is_in_envoys_order():
    paths = [command.path for command in COMMANDS]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)


def test_home_page_links_gets_and_posts_forms():
    page = render_home([AdminCommand("/", "home"), AdminCommand("/a", "does <a>"),
                        AdminCommand("/b", "does b", mutates=True), AdminCommand("/c", "c", params=(("f", "the f"),))])
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<a href='a'>a</a>" in page and "does &lt;a&gt;" in page
    assert "<form action='b' method='post'" in page
    assert "<form action='c' method='get'" in page and "name='f'" in page
    assert "href=''" not in page  # the home page does not list itself


def test_clusters_text_prints_every_host_line_in_envoys_order():
    host = HostImpl(Address("10.0.0.1", 80), weight=2, hostname="svc.local")
    stats = HostStats()
    stats.rq_total, stats.rq_success, stats.cx_active = 5, 4, 1
    lines = render_clusters_text([_cluster([host])], {host: stats}).splitlines()
    assert lines[:10] == [
        "web::observability_name::web",
        "web::default_priority::max_connections::10",
        "web::default_priority::max_pending_requests::1024",
        "web::default_priority::max_requests::1024",
        "web::default_priority::max_retries::3",
        "web::high_priority::max_connections::1024",
        "web::high_priority::max_pending_requests::1024",
        "web::high_priority::max_requests::1024",
        "web::high_priority::max_retries::1",
        "web::added_via_api::false",
    ]
    assert [line.split("::", 2)[2] for line in lines[10:]] == [
        "cx_active::1", "cx_connect_fail::0", "cx_total::0", "rq_active::0", "rq_error::0",
        "rq_pending_active::0", "rq_success::4", "rq_timeout::0", "rq_total::5", "hostname::svc.local",
        "health_flags::healthy", "weight::2", "region::", "zone::", "sub_zone::", "canary::false", "priority::0",
        "success_rate::-1", "local_origin_success_rate::-1",
    ]
    assert all(line.startswith("web::10.0.0.1:80::") for line in lines[10:])


def test_clusters_without_counters_show_zeros_and_ipv6_in_brackets():
    host = HostImpl(Address("::1", 8080))
    text = render_clusters_text([_cluster([host])], {})
    assert "web::[::1]:8080::rq_total::0\n" in text
    assert render_clusters_text([], {}) == ""


def test_health_flags_are_healthy_today_and_render_in_both_formats():
    host = HostImpl(Address("10.0.0.1", 80))
    assert health_flags(None, host) == frozenset()
    flagged = _cluster([host], {host: frozenset({"failed_outlier_check", "failed_active_hc"})})
    assert "web::10.0.0.1:80::health_flags::/failed_active_hc/failed_outlier_check\n" in render_clusters_text([flagged], {})
    status = json.loads(render_clusters_json([flagged], {}))["cluster_statuses"][0]["host_statuses"][0]["health_status"]
    assert status == {"eds_health_status": "HEALTHY", "failed_active_health_check": True, "failed_outlier_check": True}
    eds = _cluster([host], {host: frozenset({"failed_eds_health"})})
    status = json.loads(render_clusters_json([eds], {}))["cluster_statuses"][0]["host_statuses"][0]["health_status"]
    assert status == {"eds_health_status": "UNHEALTHY"}


def test_clusters_json_has_envoys_proto_json_shape():
    host = HostImpl(Address("10.0.0.1", 80), weight=3)
    stats = HostStats()
    stats.cx_total, stats.rq_active = 7, 2
    body = render_clusters_json([_cluster([host])], {host: stats})
    assert body.startswith('{\n "cluster_statuses": [\n')  # one-space indent, as Envoy
    [cluster] = json.loads(body)["cluster_statuses"]
    assert cluster["name"] == cluster["observability_name"] == "web"
    assert cluster["circuit_breakers"]["thresholds"] == [
        {"max_connections": 10, "max_pending_requests": 1024, "max_requests": 1024, "max_retries": 3},
        {"priority": "HIGH", "max_connections": 1024, "max_pending_requests": 1024, "max_requests": 1024,
         "max_retries": 1},
    ]
    [status] = cluster["host_statuses"]
    assert status["address"] == {"socket_address": {"address": "10.0.0.1", "port_value": 80}}
    assert status["weight"] == 3 and status["locality"] == {} and "hostname" not in status
    assert status["stats"] == [
        {"name": "cx_connect_fail"}, {"value": "7", "name": "cx_total"}, {"name": "rq_error"},
        {"name": "rq_success"}, {"name": "rq_timeout"}, {"name": "rq_total"},
        {"type": "GAUGE", "name": "cx_active"}, {"type": "GAUGE", "value": "2", "name": "rq_active"},
        {"type": "GAUGE", "name": "rq_pending_active"},
    ]
    assert json.loads(render_clusters_json([], {})) == {}


def test_clusters_show_the_outlier_detectors_success_rates():
    hosts = [HostImpl(Address("10.0.0.1", 80)), HostImpl(Address("10.0.0.2", 80)), HostImpl(Address("10.0.0.3", 80))]
    rated = _cluster(hosts)._replace(success_rates={hosts[0]: 200 / 3, hosts[1]: 0.0}, outlier=(80.0, 4.000000000000007))
    text = render_clusters_text([rated], {})
    # Cluster lines with {:g} (six digits), host lines with the shortest round trip, as Envoy's fmt calls.
    assert "web::outlier::success_rate_average::80\nweb::outlier::success_rate_ejection_threshold::4\n" in text
    assert "web::outlier::local_origin_success_rate_ejection_threshold::-1\nweb::default_priority::" in text
    assert "web::10.0.0.1:80::success_rate::66.66666666666667\n" in text
    assert "web::10.0.0.2:80::success_rate::0\n" in text and "web::10.0.0.3:80::success_rate::-1\n" in text
    [cluster] = json.loads(render_clusters_json([rated], {}))["cluster_statuses"]
    assert list(cluster)[:3] == ["name", "success_rate_ejection_threshold", "host_statuses"]
    assert cluster["success_rate_ejection_threshold"] == {"value": 4.000000000000007}
    assert [status.get("success_rate") for status in cluster["host_statuses"]] == [{"value": 66.66666666666667}, {}, None]
    # JSON doubles as protobuf prints them: 17 digits when 15 do not round-trip.
    body = render_clusters_json([rated], {})
    assert '"value": 4.0000000000000071' in body and '"value": 66.666666666666671' in body
    # No judgement (-1): no threshold in JSON; no detector: no outlier lines.
    [unjudged] = json.loads(render_clusters_json([rated._replace(outlier=(-1.0, -1.0))], {}))["cluster_statuses"]
    assert "success_rate_ejection_threshold" not in unjudged
    assert "::outlier::" not in render_clusters_text([_cluster(hosts)], {})


def test_listeners_text_and_json():
    listeners = [("front", Address("127.0.0.1", 10000)), ("v6", Address("::1", 10001))]
    assert render_listeners_text(listeners) == "front::127.0.0.1:10000\nv6::[::1]:10001\n"
    assert json.loads(render_listeners_json(listeners)) == {"listener_statuses": [
        {"name": "front", "local_address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}}},
        {"name": "v6", "local_address": {"socket_address": {"address": "::1", "port_value": 10001}}},
    ]}
    assert json.loads(render_listeners_json([])) == {}


def test_memory_reports_this_process():
    memory = json.loads(memory_json())
    assert list(memory) == ["allocated", "heap_size", "pageheap_unmapped", "pageheap_free", "total_thread_cache",
                            "total_physical_bytes"]
    assert all(isinstance(value, str) and value.isdigit() for value in memory.values())
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert abs(int(memory["total_physical_bytes"]) - resident) < 0.2 * resident
    # A 32 MiB block from malloc shows in what malloc has in use.  (With the
    # collector paused: a collection between the two readings frees memory
    # of its own and can hide a few hundred bytes of the block.)
    gc.disable()
    try:
        before = int(json.loads(memory_json())["allocated"])
        block = bytearray(32 * 1024 * 1024)
        after = int(json.loads(memory_json())["allocated"])
    finally:
        gc.enable()
    assert after >= before + len(block)
    del block


def test_runtime_has_no_layers():
    assert json.loads(runtime_json()) == {"entries": {}, "layers": []}
