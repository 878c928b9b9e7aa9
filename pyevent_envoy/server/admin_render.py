"""What the admin endpoints print, in Envoy 1.40's formats: pure functions of plain data.

Nothing here reads the server; :mod:`pyevent_envoy.server.admin` gathers
the data (on the main thread) and calls these.  JSON is indented by one
space, as Envoy prints it.
"""

from __future__ import annotations

import ctypes
import html
import json
import os
import re
from typing import Any, Iterable, Mapping, NamedTuple, Optional

from pyevent_envoy.network.address import Address
from pyevent_envoy.upstream.cluster import CircuitBreakerThresholds
from pyevent_envoy.upstream.host import HealthFlag, HostImpl, HostStats

__all__ = [
    "AdminCommand",
    "ClusterStatus",
    "health_flags",
    "memory_json",
    "render_clusters_json",
    "render_clusters_text",
    "render_help",
    "render_home",
    "render_listeners_json",
    "render_listeners_text",
    "runtime_json",
    "to_json",
]


def to_json(value: Any) -> str:
    """``value`` as Envoy prints admin JSON (one-space indent), with a final newline."""
    return json.dumps(value, indent=1) + "\n"


# -- commands --------------------------------------------------------------------------------


class AdminCommand(NamedTuple):
    """One admin endpoint as ``/help`` and the home page describe it.

    Attributes:
        path: ``/clusters``.
        help: Envoy's one-line description.
        mutates: POST only (Envoy refuses other methods with 405).
        params: ``(name, description)`` of each query parameter supported.
    """

    path: str
    help: str
    mutates: bool = False
    params: tuple[tuple[str, str], ...] = ()


def render_help(commands: Iterable[AdminCommand]) -> str:
    """``/help``'s text: ``admin commands are:`` then one line per command and one per parameter."""
    lines = ["admin commands are:"]
    for command in commands:
        post = " (POST)" if command.mutates else ""
        lines.append(f"  {command.path}{post}: {command.help}")
        lines.extend(f"      {name}: {text}" for name, text in command.params)
    return "\n".join(lines) + "\n"


def render_home(commands: Iterable[AdminCommand]) -> str:
    """The ``/`` page: a table with a form per command (GET or POST) and a field per parameter."""
    rows = []
    for command in commands:
        action = html.escape(command.path.lstrip("/"), quote=True)
        if not action:
            continue  # the home page does not list itself
        if command.mutates or command.params:
            # As Envoy's page: a form (POST, or GET with the parameters' fields) ...
            method = "post" if command.mutates else "get"
            button = f"<button>{action}</button>" if command.mutates else f"<button class='button-as-link'>{action}</button>"
            cell = (
                f"<form action='{action}' method='{method}' id='{action}' class='home-form'>\n"
                f"    {button}\n  </form>"
            )
        else:
            cell = f"<a href='{action}'>{action}</a>"  # ... or a plain link
        rows.append(
            "<tr>\n"
            f"  <td class='home-data'>{cell}</td>\n"
            f"  <td class='home-data'>{html.escape(command.help)}</td>\n"
            "</tr>"
        )
        for name, text in command.params:
            field_id = html.escape(f"param-{action}-{name}", quote=True)
            rows.append(
                "<tr>\n"
                f"  <td class='option'><input type='text' name='{html.escape(name, quote=True)}' id='{field_id}'"
                f" form='{action}' /></td>\n"
                f"  <td class='home-data'><label for='{field_id}'>{html.escape(text)}</label></td>\n"
                "</tr>"
            )
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n  <title>pyevent-envoy Admin</title>\n</head>\n<body>\n"
        "  <table class='home-table'>\n    <thead>\n      <tr>\n"
        "        <th class='home-data'>Command</th>\n        <th class='home-data'>Description</th>\n"
        "      </tr>\n    </thead>\n    <tbody>\n" + "\n".join(rows) + "\n    </tbody>\n  </table>\n</body>\n</html>\n"
    )


# -- clusters --------------------------------------------------------------------------------

#: Envoy's health flags in the order it prints them: text name (after ``/``
#: in ``health_flags::``) and the ``HostHealthStatus`` JSON field it sets.
_HEALTH_FLAGS = (
    ("failed_active_hc", "failed_active_health_check"),
    ("failed_outlier_check", "failed_outlier_check"),
    ("failed_eds_health", None),
    ("degraded_active_hc", "failed_active_degraded_check"),
    ("degraded_eds_health", None),
    ("pending_dynamic_removal", "pending_dynamic_removal"),
    ("pending_active_hc", "pending_active_hc"),
    ("excluded_via_immediate_hc_fail", "excluded_via_immediate_hc_fail"),
    ("active_hc_timeout", "active_hc_timeout"),
)


def health_flags(cluster: Any, host: HostImpl) -> frozenset[str]:
    """Envoy's health flags of ``host`` in ``cluster`` (main thread); empty means healthy.

    The names are Envoy's (``failed_active_hc``, ``failed_outlier_check``,
    ``degraded_active_hc``, ...: the first column of ``_HEALTH_FLAGS``), from
    the flags active health checking and outlier detection set on the host
    (:class:`~pyevent_envoy.upstream.host.HealthFlag`).
    """
    flags = host.health_flags
    if not flags:
        return frozenset()
    return frozenset(flag.name.lower() for flag in HealthFlag if flags & flag)


def _health_text(flags: frozenset[str]) -> str:
    if not flags:
        return "healthy"
    return "".join(f"/{name}" for name, _ in _HEALTH_FLAGS if name in flags)


def _health_json(flags: frozenset[str]) -> dict:
    if "failed_eds_health" in flags:
        status = {"eds_health_status": "UNHEALTHY"}
    elif "degraded_eds_health" in flags:
        status = {"eds_health_status": "DEGRADED"}
    else:
        status = {"eds_health_status": "HEALTHY"}
    for name, json_field in _HEALTH_FLAGS:
        if json_field is not None and name in flags:
            status[json_field] = True
    return status


class ClusterStatus(NamedTuple):
    """What ``/clusters`` shows of one cluster (gathered on the main thread).

    Attributes:
        name: the cluster's name.
        default_thresholds: circuit breakers of the DEFAULT priority.
        high_thresholds: circuit breakers of the HIGH priority (as configured;
            pyevent-envoy sends no high-priority requests).
        hosts: the cluster's hosts, in order.
        health: each host's :func:`health_flags`.
        success_rates: the outlier detector's success rate of each host over
            its last interval, for the hosts that have one (the others show -1).
        outlier: ``(success_rate_average, success_rate_ejection_threshold)``
            of the cluster's outlier detector (-1: none), or None without one.
    """

    name: str
    default_thresholds: CircuitBreakerThresholds
    high_thresholds: CircuitBreakerThresholds
    hosts: tuple[HostImpl, ...]
    health: Mapping[HostImpl, frozenset[str]]
    success_rates: Mapping[HostImpl, float] = {}
    outlier: Optional[tuple[float, float]] = None


_THRESHOLDS = ("max_connections", "max_pending_requests", "max_requests", "max_retries")
#: Envoy's per-host stats, counters and gauges together, in name order (its text order).
_HOST_STATS = tuple(sorted(HostStats.COUNTERS + HostStats.GAUGES))


def render_clusters_text(clusters: Iterable[ClusterStatus], host_stats: Mapping[HostImpl, HostStats]) -> str:
    """``/clusters``: Envoy's ``cluster::...`` lines; ``host_stats`` has the summed per-host counters."""
    zero = HostStats()
    lines = []
    for cluster in clusters:
        name = cluster.name
        lines.append(f"{name}::observability_name::{name}")
        if cluster.outlier is not None:
            average, threshold = cluster.outlier
            lines += [
                f"{name}::outlier::success_rate_average::{_fmt_g(average)}",
                f"{name}::outlier::success_rate_ejection_threshold::{_fmt_g(threshold)}",
                f"{name}::outlier::local_origin_success_rate_average::-1",
                f"{name}::outlier::local_origin_success_rate_ejection_threshold::-1",
            ]
        for priority, thresholds in (("default_priority", cluster.default_thresholds), ("high_priority", cluster.high_thresholds)):
            lines.extend(f"{name}::{priority}::{field}::{getattr(thresholds, field)}" for field in _THRESHOLDS)
        lines.append(f"{name}::added_via_api::false")
        for host in cluster.hosts:
            prefix = f"{name}::{host.address}::"
            stats = host_stats.get(host, zero)
            lines.extend(f"{prefix}{stat}::{getattr(stats, stat)}" for stat in _HOST_STATS)
            lines += [
                f"{prefix}hostname::{host.hostname}",
                f"{prefix}health_flags::{_health_text(cluster.health.get(host, frozenset()))}",
                f"{prefix}weight::{host.weight}",
                f"{prefix}region::",
                f"{prefix}zone::",
                f"{prefix}sub_zone::",
                f"{prefix}canary::false",
                f"{prefix}priority::0",
                f"{prefix}success_rate::{_fmt_double(cluster.success_rates.get(host, -1.0))}",
                f"{prefix}local_origin_success_rate::-1",
            ]
    return "".join(line + "\n" for line in lines)


def _fmt_double(value: float) -> str:
    """A double as Envoy's ``fmt::format("{}")`` writes it: shortest round trip, no ``.0``."""
    return str(int(value)) if value.is_integer() else repr(value)


def _fmt_g(value: float) -> str:
    """A double as Envoy's ``fmt::format("{:g}")`` writes it: six significant digits."""
    return f"{value:g}"


#: Stands in a JSON string for a number written by :func:`_proto_double` (the
#: json module writes floats only as Python's shortest repr).  A private-use
#: character, escaped by ``json.dumps``, so no configured name can contain it.
_DOUBLE_MARK = "\ue000double:"
_DOUBLE_MARK_RE = re.compile(r'"\\ue000double:([-+.0-9e]+)"')


def _proto_double(value: float) -> str:
    """A double as protobuf's JSON printer writes it: 15 significant digits, 17 when 15 do not round-trip."""
    text = f"{value:.15g}"
    return text if float(text) == value else f"{value:.17g}"


def _percent_json(value: float) -> dict:
    """An ``envoy.type.v3.Percent`` in proto JSON (zero left out); render with :func:`_to_json_with_doubles`."""
    if not value:
        return {}
    return {"value": _DOUBLE_MARK + _proto_double(value)}


def _to_json_with_doubles(value: Any) -> str:
    """:func:`to_json`, with the marked doubles written as protobuf writes them."""
    return _DOUBLE_MARK_RE.sub(r"\1", to_json(value))


def _socket_address(address: Address) -> dict:
    return {"socket_address": {"address": address.ip, "port_value": address.port}}


def _stat_json(name: str, value: int, gauge: bool) -> dict:
    # Proto JSON: uint64 values as strings, zero values and the default type (COUNTER) left out.
    out: dict[str, Any] = {"type": "GAUGE"} if gauge else {}
    if value:
        out["value"] = str(value)
    out["name"] = name
    return out


def _thresholds_json(thresholds: CircuitBreakerThresholds, priority: Optional[str]) -> dict:
    out: dict[str, Any] = {"priority": priority} if priority else {}
    out.update((field, getattr(thresholds, field)) for field in _THRESHOLDS)
    return out


def render_clusters_json(clusters: Iterable[ClusterStatus], host_stats: Mapping[HostImpl, HostStats]) -> str:
    """``/clusters?format=json``: Envoy's ``admin.v3.Clusters`` message."""
    zero = HostStats()
    statuses = []
    for cluster in clusters:
        hosts = []
        for host in cluster.hosts:
            stats = host_stats.get(host, zero)
            entry: dict[str, Any] = {
                "address": _socket_address(host.address),
                "stats": [_stat_json(name, getattr(stats, name), False) for name in sorted(HostStats.COUNTERS)]
                + [_stat_json(name, getattr(stats, name), True) for name in sorted(HostStats.GAUGES)],
                "health_status": _health_json(cluster.health.get(host, frozenset())),
            }
            success_rate = cluster.success_rates.get(host)
            if success_rate is not None:
                entry["success_rate"] = _percent_json(success_rate)
            entry["weight"] = host.weight
            if host.hostname:
                entry["hostname"] = host.hostname
            entry["locality"] = {}
            hosts.append(entry)
        status: dict[str, Any] = {"name": cluster.name}
        if cluster.outlier is not None and cluster.outlier[1] > 0:
            status["success_rate_ejection_threshold"] = _percent_json(cluster.outlier[1])
        if hosts:
            status["host_statuses"] = hosts
        status["circuit_breakers"] = {
            "thresholds": [
                _thresholds_json(cluster.default_thresholds, None),
                _thresholds_json(cluster.high_thresholds, "HIGH"),
            ]
        }
        status["observability_name"] = cluster.name
        statuses.append(status)
    return _to_json_with_doubles({"cluster_statuses": statuses} if statuses else {})


# -- listeners -------------------------------------------------------------------------------


def render_listeners_text(listeners: Iterable[tuple[str, Address]]) -> str:
    """``/listeners``: ``name::address`` per listener."""
    return "".join(f"{name}::{address}\n" for name, address in listeners)


def render_listeners_json(listeners: Iterable[tuple[str, Address]]) -> str:
    """``/listeners?format=json``: Envoy's ``admin.v3.Listeners`` message."""
    statuses = [{"name": name, "local_address": _socket_address(address)} for name, address in listeners]
    return to_json({"listener_statuses": statuses} if statuses else {})


# -- memory and runtime ----------------------------------------------------------------------


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
    ]


def _mallinfo2() -> Optional[_MallInfo2]:
    """glibc's ``mallinfo2()`` (all arenas), or None where the C library has none."""
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    return function()


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def memory_json() -> str:
    """``/memory``: Envoy's keys, filled from glibc's allocator and the kernel (see ``docs/proxy.rst``).

    ``allocated``: bytes in use in malloc'd blocks (``uordblks + hblkhd``);
    ``heap_size``: bytes malloc got from the system (``arena + hblkhd``);
    ``pageheap_free``: free bytes malloc keeps (``fordblks``);
    ``pageheap_unmapped`` and ``total_thread_cache``: 0 (glibc reports
    neither); ``total_physical_bytes``: the resident set
    (``/proc/self/statm``), which also counts what Python's own allocator
    maps directly.  Without glibc the malloc figures are 0.
    """
    info = _mallinfo2()
    allocated = info.uordblks + info.hblkhd if info else 0
    heap_size = info.arena + info.hblkhd if info else 0
    free = info.fordblks if info else 0
    values = {
        "allocated": allocated,
        "heap_size": heap_size,
        "pageheap_unmapped": 0,
        "pageheap_free": free,
        "total_thread_cache": 0,
        "total_physical_bytes": _resident_bytes(),
    }
    return to_json({key: str(value) for key, value in values.items()})


def runtime_json() -> str:
    """``/runtime``: no runtime layers are configured, so none and no entries (Envoy's shape)."""
    return to_json({"entries": {}, "layers": []})
