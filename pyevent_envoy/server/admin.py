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
  ``/ready`` reports;
- ``POST /drain_listeners``: stop accepting and drain the connections; the
  process keeps running (SIGTERM drains and exits).

Mutating endpoints answer a GET with 400 ("use POST"), as Envoy does.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any, Callable

from pyevent_envoy import __version__
from pyevent_envoy.http.filter import FilterHeadersStatus, StreamDecoderFilter
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.stats import StatsQueryError, render_json, render_prometheus, render_text, select

__all__ = ["AdminFilter", "AdminHandler"]

_POST_ONLY = frozenset(("/quitquitquit", "/healthcheck/fail", "/healthcheck/ok", "/drain_listeners"))


class AdminHandler:
    """What the admin endpoints read and do; shared by every admin connection."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.started = time.monotonic()
        self.health_failed = False

    def state(self) -> str:
        if self.server.draining:
            return "DRAINING"
        return "LIVE"

    def handle(self, method: str, path: str) -> tuple[int, str, str]:
        """``(status, content type, body)`` for one request."""
        path, _, query = path.partition("?")
        if path in _POST_ONLY and method != "POST":
            return 400, "text/plain", "This endpoint requires POST.\n"
        if path == "/ready":
            state = self.state()
            ok = state == "LIVE" and not self.health_failed
            return (200 if ok else 503), "text/plain", f"{state if not self.health_failed else 'HEALTH_CHECK_FAILED'}\n"
        if path == "/server_info":
            info = {
                "version": f"pyevent-envoy/{__version__}",
                "state": self.state(),
                "uptime_current_epoch": f"{int(time.monotonic() - self.started)}s",
                "command_line_options": {"concurrency": self.server.concurrency},
            }
            return 200, "application/json", json.dumps(info, indent=2) + "\n"
        if path in ("/stats", "/stats/prometheus"):
            return self._stats(path, query)
        if path == "/quitquitquit":
            self.server.main.post(self.server.shutdown)
            return 200, "text/plain", "OK\n"
        if path == "/healthcheck/fail":
            self.health_failed = True
            return 200, "text/plain", "OK\n"
        if path == "/healthcheck/ok":
            self.health_failed = False
            return 200, "text/plain", "OK\n"
        if path == "/drain_listeners":
            self.server.main.post(lambda: self.server.drain(exit_when_drained=False))
            return 200, "text/plain", "OK\n"
        return 404, "text/plain", (
            "invalid path. admin commands are: /ready /server_info /stats /stats/prometheus"
            " /quitquitquit /healthcheck/fail /healthcheck/ok /drain_listeners\n"
        )

    def _stats(self, path: str, query: str) -> tuple[int, str, str]:
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        fmt = "prometheus" if path == "/stats/prometheus" else params.get("format", ["text"])[-1]
        if fmt not in ("text", "json", "prometheus"):
            return 400, "text/plain", f"usage: /stats?format=(text|json|prometheus), got {fmt!r}\n"
        store = self.server.stats_store
        query_filter = params["filter"][-1] if "filter" in params else None
        try:
            stats = select(store.snapshot(), filter=query_filter, used_only="usedonly" in params)
            histograms = select(store.histograms(), filter=query_filter, used_only="usedonly" in params)
        except StatsQueryError as exc:
            return 400, "text/plain", f"{exc}\n"
        if fmt == "json":
            return 200, "application/json", render_json(stats, histograms)
        if fmt == "prometheus":
            return 200, "text/plain; charset=UTF-8", render_prometheus(stats, histograms)
        return 200, "text/plain; charset=UTF-8", render_text(stats, histograms)


class AdminFilter(StreamDecoderFilter):
    """Answers admin requests once their headers are in (bodies are ignored)."""

    def __init__(self, stream: Any, handler: AdminHandler) -> None:
        self.stream = stream
        self.handler = handler

    @classmethod
    def factory(cls, handler: AdminHandler) -> Callable[[Any], "AdminFilter"]:
        return lambda stream: cls(stream, handler)

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        status, content_type, body = self.handler.handle(headers.get(":method") or "", headers.get(":path") or "/")
        reply = HeaderMap()
        reply.set("content-type", content_type)
        self.stream.send_local_reply(status, body, details="admin_filter_response", headers=reply)
        return FilterHeadersStatus.STOP_ITERATION
