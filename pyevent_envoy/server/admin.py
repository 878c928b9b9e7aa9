"""The admin listener (Envoy's ``source/server/admin``), on the main dispatcher.

Served by the same connection manager as the proxy, with an
:class:`AdminFilter` instead of the router.  Endpoints, as Envoy names them:

- ``GET /ready``: ``LIVE`` (200) while serving, ``DRAINING`` (503) while draining;
- ``GET /server_info``: version, state, uptime, concurrency (JSON);
- ``GET /stats``: ``name: value`` lines of every stat kept (see
  ``docs/stats.rst``), sorted by name, then the histograms' quantiles as of
  the last stats flush; ``?format=json`` gives Envoy's
  ``{"stats":[{"name":...,"value":...},...,{"histograms":...}]}``, ``?format=prometheus`` the
  same as ``/stats/prometheus``; ``?filter=<regex>`` keeps the names the
  regex matches (anywhere), ``?usedonly`` the stats that ever changed;
- ``GET /stats/prometheus``: Prometheus text, with Envoy's metric names and
  tags (``envoy_cluster_name``, ``envoy_http_conn_manager_prefix``,
  ``envoy_listener_address``, ``envoy_response_code[_class]``); takes
  ``filter`` and ``usedonly`` too;
- ``POST /quitquitquit``: stop the server;
- ``POST /healthcheck/fail`` / ``/healthcheck/ok``: flip the health state
  ``/ready`` reports; while failed, every proxied response closes its
  connection, as Envoy's drain manager decides;
- ``POST /drain_listeners``: stop accepting and start Envoy's drain
  sequence (responses close their connections with a probability growing
  over ``--drain-time-s``); ``?graceful`` stops accepting only when the
  drain time is over, ``?skip_exit`` never; ``?inboundonly`` only stops
  listeners with ``traffic_direction: INBOUND`` (none here).  The process keeps running (SIGTERM drains and exits);
- ``GET /`` (an HTML page) and ``GET /help`` (text): the commands;
- ``GET /clusters``: each cluster's circuit breakers and each host's
  counters, health flags and weight, as Envoy's text or ``?format=json``;
  ``?filter=<regex>`` keeps the clusters whose name matches;
- ``GET /listeners``: ``name::address`` (or ``?format=json``);
- ``GET /config_dump``: the loaded bootstrap in Envoy's ``ConfigDump``
  shape (:mod:`pyevent_envoy.server.config_dump`), ``?resource=``;
- ``POST /reset_counters``: every counter back to zero (gauges stay);
- ``POST /logging``: the loggers and their levels; ``?level=<level>``,
  ``?<logger>=<level>`` or ``?paths=<logger>:<level>,...`` change them
  (:mod:`pyevent_envoy.server.log_levels`);
- ``GET /memory``: Envoy's memory keys, from glibc's allocator and the kernel;
- ``GET /runtime``: the runtime layers (none).

Mutating endpoints answer any other method with 405 (``Method GET not
allowed, POST required.``), as Envoy does; the others take GET and POST.
Every endpoint but ``/clusters`` answers on the spot; ``/clusters`` first
collects the per-host counters from every worker (posted to them), so it
answers once each worker's loop has run the request.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from typing import Any, Callable

from pyevent_envoy import __version__
from pyevent_envoy.config.bootstrap import RoutingPriority
from pyevent_envoy.http.filter import FilterHeadersStatus, StreamDecoderFilter
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.server import log_levels
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
    to_json,
)
from pyevent_envoy.server.config_dump import ConfigDumpError, build_config_dump, select_resource
from pyevent_envoy.stats import StatsQueryError, render_json, render_prometheus, render_text, select
from pyevent_envoy.upstream.cluster import CircuitBreakerThresholds

__all__ = ["AdminFilter", "AdminHandler", "COMMANDS"]

#: ``(status, content type, body)``: one admin answer.  Instead of a content
#: type, the fields the endpoint sets itself, which go first (as in Envoy,
#: whose admin then adds its own).
Answer = tuple[int, "str | list[tuple[str, str]]", str]
#: Called once with the answer's three parts.
Respond = Callable[[int, "str | list[tuple[str, str]]", str], None]
# Envoy's config dump sets these on its errors, before the admin's own fields.
_CONFIG_DUMP_ERROR_FIELDS = [("x-content-type-options", "nosniff"), ("content-type", "text/plain")]

TEXT = "text/plain; charset=UTF-8"
JSON = "application/json"
HTML = "text/html; charset=UTF-8"

#: The endpoints, in Envoy's order and with its descriptions (of the parameters supported here).
COMMANDS: tuple[AdminCommand, ...] = (
    AdminCommand("/", "Admin home page"),
    AdminCommand("/clusters", "upstream cluster status", params=(
        ("filter", "Regular expression (Google re2) for filtering clusters by name"),
    )),
    AdminCommand("/config_dump", "dump current Envoy configs", params=(("resource", "The resource to dump"),)),
    AdminCommand("/drain_listeners", "drain listeners", mutates=True, params=(
        ("graceful", "When draining listeners, enter a graceful drain period prior to closing listeners. This behaviour"
                     " and duration is configurable via server options or CLI"),
        ("skip_exit", "When draining listeners, drain the connections but never stop the listeners. The graceful"
                      " parameter has no effect when this is set, since the drain period only delays stopping the"
                      " listeners"),
        ("inboundonly", "Drains all inbound listeners. traffic_direction field in"
                        " envoy_v3_api_msg_config.listener.v3.Listener is used to determine whether a listener is"
                        " inbound or outbound."),
    )),
    AdminCommand("/healthcheck/fail", "cause the server to fail health checks", mutates=True),
    AdminCommand("/healthcheck/ok", "cause the server to pass health checks", mutates=True),
    AdminCommand("/help", "print out list of admin commands"),
    AdminCommand("/listeners", "print listener info", params=(("format", "File format to use; One of (text, json)"),)),
    AdminCommand("/logging", "query/change logging levels", mutates=True, params=(
        ("paths", "Change multiple logging levels by setting to "
                  "<logger_name1>:<desired_level1>,<logger_name2>:<desired_level2>."),
        ("level", "desired logging level, this will change all loggers's level; "
                  "One of (, " + ", ".join(log_levels.LEVELS) + ")"),
    )),
    AdminCommand("/memory", "print current allocation/heap usage"),
    AdminCommand("/quitquitquit", "exit the server", mutates=True),
    AdminCommand("/ready", "print server state, return 200 if LIVE, otherwise return 503"),
    AdminCommand("/reset_counters", "reset all counters to zero", mutates=True),
    AdminCommand("/runtime", "print runtime values"),
    AdminCommand("/server_info", "print server version/status information"),
    AdminCommand("/stats", "print server stats", params=(
        ("usedonly", "Only include stats that have been written by system since restart"),
        ("filter", "Regular expression (Google re2) for filtering stats"),
        ("format", "Format to use; One of (text, json, prometheus)"),
    )),
    AdminCommand("/stats/prometheus", "print server stats in prometheus format"),
)

_COMMANDS_BY_PATH = {command.path: command for command in COMMANDS}

_LOGGING_USAGE = (
    "usage: /logging?<name>=<level> (change single level)\n"
    "usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n"
    "usage: /logging?level=<level> (change all levels)\n"
    "levels: " + "".join(f"{name} " for name in log_levels.LEVELS) + "\n"
)


class AdminHandler:
    """What the admin endpoints read and do; shared by every admin connection."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.started = time.monotonic()
        #: When the configuration was loaded (epoch seconds): ``/config_dump``'s ``last_updated``.
        self.loaded_at = time.time()

    def state(self) -> str:
        if self.server.draining:
            return "DRAINING"
        return "LIVE"

    def handle(self, method: str, path: str, respond: Respond) -> None:
        """Answer one request: ``respond(status, content type, body)``, now or later on the main thread."""
        path, _, query = path.partition("?")
        command = _COMMANDS_BY_PATH.get(path)
        if command is not None and command.mutates and method != "POST":
            respond(405, TEXT, f"Method {method} not allowed, POST required.")
            return
        if path == "/clusters":
            self._clusters(query, respond)
            return
        respond(*self._answer(path, query))

    def _answer(self, path: str, query: str) -> Answer:
        if path == "/ready":
            state = self.state()
            failed = self.server.drain_manager.health_check_failed
            # A failed health check reads as DRAINING, Envoy's server state for it.
            return (200 if state == "LIVE" and not failed else 503), TEXT, f"{'DRAINING' if failed else state}\n"
        if path == "/server_info":
            info = {
                "version": f"pyevent-envoy/{__version__}",
                "state": self.state(),
                "uptime_current_epoch": f"{int(time.monotonic() - self.started)}s",
                "command_line_options": {"concurrency": self.server.concurrency},
            }
            return 200, JSON, json.dumps(info, indent=2) + "\n"
        if path in ("/stats", "/stats/prometheus"):
            return self._stats(path, query)
        if path == "/quitquitquit":
            self.server.main.post(self.server.shutdown)
            return 200, TEXT, "OK\n"
        if path in ("/healthcheck/fail", "/healthcheck/ok"):
            self.server.set_health_check_failed(path == "/healthcheck/fail")
            return 200, TEXT, "OK\n"
        if path == "/drain_listeners":
            params = urllib.parse.parse_qs(query, keep_blank_values=True)
            self.server.drain_listeners(
                graceful="graceful" in params, skip_exit="skip_exit" in params, inbound_only="inboundonly" in params
            )
            return 200, TEXT, "OK\n"
        if path == "/":
            return 200, HTML, render_home(COMMANDS)
        if path == "/help":
            return 200, TEXT, render_help(COMMANDS)
        if path == "/listeners":
            listeners = list(self.server.listen_addresses.items())
            if _param(query, "format") == "json":
                return 200, JSON, render_listeners_json(listeners)
            return 200, TEXT, render_listeners_text(listeners)
        if path == "/config_dump":
            return self._config_dump(query)
        if path == "/reset_counters":
            self.server.stats_store.reset_counters()
            return 200, TEXT, "OK\n"
        if path == "/logging":
            return self._logging(query)
        if path == "/memory":
            return 200, JSON, memory_json()
        if path == "/runtime":
            return 200, JSON, runtime_json()
        return 404, TEXT, "invalid path. " + render_help(COMMANDS)

    def _clusters(self, query: str, respond: Respond) -> None:
        name_filter = _param(query, "filter")
        try:
            pattern = re.compile(name_filter) if name_filter else None
        except re.error:
            respond(400, TEXT, "Invalid re2 regex")
            return
        as_json = _param(query, "format") == "json"
        bootstrap = self.server.bootstrap
        statuses = []
        for name, cluster in self.server.cluster_manager.clusters.items():
            if pattern is not None and not pattern.search(name):
                continue
            config = bootstrap.cluster(name)
            high = config.circuit_breakers.for_priority(RoutingPriority.HIGH) if config is not None else None
            hosts = tuple(cluster.host_set.hosts)
            detector = getattr(cluster, "outlier_detector", None)
            statuses.append(
                ClusterStatus(
                    name=name,
                    default_thresholds=cluster.info.circuit_breakers,
                    high_thresholds=_thresholds(high),
                    hosts=hosts,
                    health={host: health_flags(cluster, host) for host in hosts},
                    success_rates=dict(detector.success_rates) if detector is not None else {},
                    outlier=(
                        (detector.success_rate_average, detector.success_rate_ejection_threshold)
                        if detector is not None
                        else None
                    ),
                )
            )

        def render(totals: dict) -> None:
            if as_json:
                respond(200, JSON, render_clusters_json(statuses, totals))
            else:
                respond(200, TEXT, render_clusters_text(statuses, totals))

        self.server.cluster_manager.collect_host_stats(render)

    def _config_dump(self, query: str) -> Answer:
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        for unsupported in ("mask", "name_regex", "include_eds"):
            if unsupported in params:
                return 400, TEXT, (
                    f"/config_dump?{unsupported} is not supported by pyevent-envoy"
                    " (it needs Envoy's proto schemas); ?resource= is\n"
                )
        dump = build_config_dump(self.server.bootstrap.source, self.loaded_at)
        if "resource" in params:
            try:
                dump = select_resource(dump, params["resource"][-1])
            except ConfigDumpError as exc:
                return exc.status, _CONFIG_DUMP_ERROR_FIELDS, f"{exc}\n"
        return 200, JSON, to_json(dump)

    def _logging(self, query: str) -> Answer:
        params = urllib.parse.parse_qsl(query, keep_blank_values=True)
        error = _change_log_levels(params)
        loggers = "active loggers:\n" + "".join(f"  {name}: {level}\n" for name, level in log_levels.active_loggers()) + "\n"
        if error:
            return 400, TEXT, f"error: {error}\n\n{_LOGGING_USAGE}{loggers}"
        return 200, TEXT, loggers

    def _stats(self, path: str, query: str) -> tuple[int, str, str]:
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        fmt = "prometheus" if path == "/stats/prometheus" else params.get("format", ["text"])[-1]
        if fmt not in ("text", "json", "prometheus"):
            return 400, TEXT, f"usage: /stats?format=(text|json|prometheus), got {fmt!r}\n"
        store = self.server.stats_store
        query_filter = params["filter"][-1] if "filter" in params else None
        try:
            stats = select(store.snapshot(), filter=query_filter, used_only="usedonly" in params)
            histograms = select(store.histograms(), filter=query_filter, used_only="usedonly" in params)
        except StatsQueryError as exc:
            return 400, TEXT, f"{exc}\n"
        if fmt == "json":
            return 200, JSON, render_json(stats, histograms)
        if fmt == "prometheus":
            return 200, TEXT, render_prometheus(stats, histograms)
        return 200, TEXT, render_text(stats, histograms)


def _param(query: str, name: str) -> str | None:
    """The last value of query parameter ``name`` (``""`` when it has none), or None."""
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get(name)
    return values[-1] if values else None


def _thresholds(config: Any) -> CircuitBreakerThresholds:
    """A cluster's configured thresholds of one priority (Envoy's defaults without any)."""
    if config is None:
        return CircuitBreakerThresholds()
    return CircuitBreakerThresholds(
        max_connections=config.max_connections,
        max_pending_requests=config.max_pending_requests,
        max_requests=config.max_requests,
        max_retries=config.max_retries,
    )


def _change_log_levels(params: list[tuple[str, str]]) -> str:
    """Apply ``/logging``'s query as Envoy does; return Envoy's error text, or ``""`` on success.

    Every level and logger is checked before any is changed.
    """
    if not params:
        return ""
    if len(params) != 1:
        return "invalid number of parameters"
    key, value = params[0]
    if key == "group":
        return "group parameter requires fine-grain logging to be enabled"
    if key == "level":
        if not value:
            return ""
        if value not in log_levels.LEVELS:
            return "unknown logger level"
        log_levels.set_all_levels(value)
        return ""
    if key == "paths":
        changes = []
        for item in value.split(","):
            name, _, level = item.partition(":")
            if not name or not level:
                return "empty logger name or empty logger level"
            changes.append((name, level))
    else:
        changes = [(key, value)]
    known = {name for name, _ in log_levels.active_loggers()}
    for name, level in changes:
        if level not in log_levels.LEVELS:
            return "unknown logger level"
        if name not in known:
            return "unknown logger name"
    for name, level in changes:
        log_levels.set_level(name, level)
    return ""


class AdminFilter(StreamDecoderFilter):
    """Answers admin requests once their headers are in (bodies are ignored)."""

    def __init__(self, stream: Any, handler: AdminHandler) -> None:
        self.stream = stream
        self.handler = handler

    @classmethod
    def factory(cls, handler: AdminHandler) -> Callable[[Any], "AdminFilter"]:
        return lambda stream: cls(stream, handler)

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        self.handler.handle(headers.get(":method") or "", headers.get(":path") or "/", self._respond)
        return FilterHeadersStatus.STOP_ITERATION

    def _respond(self, status: int, content_type: str | list[tuple[str, str]], body: str) -> None:
        # As Envoy's admin: its caching and sniffing headers, and the body
        # streamed (chunked), not sized.  A late answer (``/clusters``) to a
        # stream that is gone is dropped by the stream.
        self.stream.stream_info.response_code_details = "admin_filter_response"
        own_fields = [("content-type", content_type)] if isinstance(content_type, str) else content_type
        reply = HeaderMap(
            [(":status", str(status))]
            + own_fields
            + [("cache-control", "no-cache, max-age=0"), ("x-content-type-options", "nosniff")]
        )
        payload = body.encode()
        self.stream.encode_headers(reply, not payload)
        if payload:
            self.stream.encode_data(payload, True)
