"""The admin endpoints, differentially: the same YAML and traffic through Envoy 1.40 and pyevent-envoy.

Each endpoint is compared on status, content type and the shape (most
often the whole body) of its answer: ``/``, ``/help``, an unknown path,
``/clusters`` (text and JSON, with per-host counters from real traffic:
successes, a 5xx, retried responses (5xx and 4xx), a connect failure, a route
timeout), ``/listeners``, ``/config_dump`` (with ``?resource=``),
``/reset_counters``, ``/logging``, ``/memory`` and ``/runtime``, and the
405 Envoy gives a GET on a mutating endpoint.
"""

from __future__ import annotations

import http.client
import json
import re
import time

import pytest

from harness import ENVOY, ProxyProcess, free_port, rss_kb, with_admin
from upstream import Upstream

pytestmark = pytest.mark.timeout(120)

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

# Written as Envoy prints it back (canonical proto JSON), so the clusters'
# config dump can be compared whole.
CONFIG = """\
static_resources:
  listeners:
  - name: front
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm}
          stat_prefix: front
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/down"}}
                route: {{cluster: down}}
              - match: {{path: "/slow"}}
                route: {{cluster: app, timeout: 0.3s, prefix_rewrite: "/sleep/1"}}
              - match: {{prefix: "/flaky"}}
                route: {{cluster: app, retry_policy: {{retry_on: "5xx,retriable-4xx", num_retries: 1}}}}
              - match: {{prefix: "/"}}
                route: {{cluster: app}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": {router}}}
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 1s
    circuit_breakers:
      thresholds:
      - {{max_connections: 100, max_retries: 5}}
      - {{priority: HIGH, max_requests: 7}}
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {app_port}}}}}}}
          load_balancing_weight: 3
  - name: down
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: down
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {down_port}}}}}}}
"""

MUTATING = ("/reset_counters", "/logging", "/healthcheck/fail", "/healthcheck/ok", "/drain_listeners", "/quitquitquit")


def _exchange(port: int, method: str, path: str) -> tuple[tuple[int, str, str], list[tuple[str, str]]]:
    """``(status, content type, body)`` and the response's fields but ``date``, in order."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        fields = [(name.lower(), value) for name, value in response.getheaders() if name.lower() != "date"]
        return (response.status, response.getheader("content-type", ""), response.read().decode()), fields
    finally:
        conn.close()


def _request(port: int, method: str, path: str) -> tuple[int, str, str]:
    return _exchange(port, method, path)[0]


def _drive_traffic(port: int, kind: str) -> None:
    expected = [
        ("/status/200", 200),
        ("/status/404", 404),  # a 4xx is a host success for Envoy
        ("/status/500", 500),
        (f"/flaky/{kind}-admin/1/503", 200),  # a retried 503 (a host error), then a 200
        (f"/flaky/{kind}-admin-409/1/409", 200),  # a retried 409: a host error too
        ("/down", 503),  # connect refused
        ("/slow", 504),  # route timeout
    ]
    assert [(path, _request(port, "GET", path)[0]) for path, _ in expected] == expected


def _wait_idle(admin_port: int) -> None:
    """Until no upstream request is active (the timed-out one is cancelled asynchronously)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "::rq_active::1" not in _request(admin_port, "GET", "/clusters")[2]:
            return
        time.sleep(0.05)


def _text_stats(body: str, listen_port: int) -> dict[str, int]:
    """``name: value`` lines; the listener's port in stat names becomes ``PORT`` (the proxies' ports differ)."""
    out = {}
    for line in body.replace(f"127.0.0.1_{listen_port}", "127.0.0.1_PORT").splitlines():
        name, _, value = line.partition(": ")
        if value.lstrip("-").isdigit():
            out[name] = int(value)
    return out


class _Run:
    """One proxy's admin answers, after the traffic."""

    def __init__(self, kind: str, app_port: int, down_port: int) -> None:
        self.kind = kind
        self.listen_port, self.admin_port = free_port(), free_port()
        config = CONFIG.format(listen_port=self.listen_port, hcm=HCM, router=ROUTER, app_port=app_port, down_port=down_port)
        self.process = ProxyProcess(kind, with_admin(config, self.admin_port), self.listen_port)
        self.answers: dict[tuple[str, str], tuple[int, str, str]] = {}
        self.fields: dict[tuple[str, str], list[tuple[str, str]]] = {}
        try:
            _drive_traffic(self.listen_port, kind)
            _wait_idle(self.admin_port)
            for path in (
                "/", "/help", "/no/such/command", "/clusters", "/clusters?format=json", "/clusters?filter=^ap",
                "/clusters?filter=(", "/listeners", "/listeners?format=json", "/config_dump",
                "/config_dump?resource=static_clusters", "/config_dump?resource=dynamic_active_clusters",
                "/config_dump?resource=bootstrap", "/config_dump?resource=no_such_field", "/memory", "/runtime",
            ):
                self.get(path)
            self.get("/help", "POST")  # read-only endpoints take POST too
            for path in MUTATING:
                self.get(path, "GET")
            for query in ("", "?http=warning", "?paths=http:info,upstream:error", "?no_such_logger=info",
                          "?http=no_such_level", "?http=warn", "?paths=http", "?http=info&upstream=info"):
                self.get(f"/logging{query}", "POST")
            self.stats_before_reset = _text_stats(self.get("/stats")[2], self.listen_port)
            self.get("/reset_counters", "POST")
            self.stats_after_reset = _text_stats(self.get("/stats")[2], self.listen_port)
            self.used_after_reset = _text_stats(self.get("/stats?usedonly")[2], self.listen_port)
            self.clusters_after_reset = self.get("/clusters", "GET", key="/clusters after reset")[2]
            self.rss = rss_kb(self.process.proc.pid) * 1024
            self.memory = json.loads(self.get("/memory", key="/memory again")[2])
            for path in ("/ready", "/server_info", "/stats?format=json", "/stats/prometheus"):
                self.get(path)
            self.get("/healthcheck/fail", "POST")
            self.get("/ready", key="/ready failed")
            self.get("/healthcheck/ok", "POST")
            self.get("/ready", key="/ready ok again")
        finally:
            self.code = self.process.stop()

    def get(self, path: str, method: str = "GET", key: str | None = None) -> tuple[int, str, str]:
        answer, fields = _exchange(self.admin_port, method, path)
        self.answers[(method, key or path)] = answer
        self.fields[(method, key or path)] = fields
        return answer

    def answer(self, path: str, method: str = "GET") -> tuple[int, str, str]:
        return self.answers[(method, path)]


@pytest.fixture(scope="module")
def runs():
    upstream = Upstream("app")
    app_port, down_port = upstream.port, free_port()
    try:
        kinds = ["pyevent-envoy"] + (["envoy"] if ENVOY else [])
        yield {kind: _Run(kind, app_port, down_port) for kind in kinds}
    finally:
        upstream.stop()


def _status_and_type(run: _Run, path: str, method: str = "GET") -> tuple[int, str]:
    return run.answer(path, method)[:2]


# -- commands ----------------------------------------------------------------------------------


def _help_entries(body: str) -> dict[str, set[str]]:
    """``/help``'s commands (their whole line) with the names of their parameters."""
    entries: dict[str, set[str]] = {}
    command = ""
    for line in body.splitlines()[1:]:
        if line.startswith("      "):
            entries[command].add(line.strip().split(":", 1)[0])
        else:
            command = line.strip()
            entries[command] = set()
    return entries


def test_help_lists_our_commands_in_envoys_words(ours, envoy):
    assert _status_and_type(ours, "/help") == _status_and_type(envoy, "/help") == (200, "text/plain; charset=UTF-8")
    body = ours.answer("/help")[2]
    assert body.startswith("admin commands are:\n")
    theirs = _help_entries(envoy.answer("/help")[2])
    mine = _help_entries(body)
    assert len(mine) == 17
    for command, params in mine.items():
        assert command in theirs, command
        assert params <= theirs[command], command
    assert list(mine) == sorted(mine, key=lambda line: line.split(":")[0].split(" ")[0])  # Envoy's order
    assert ours.answer("/help", "POST") == ours.answer("/help")
    assert envoy.answer("/help", "POST")[0] == 200


def test_unknown_path_gets_404_with_the_commands(ours, envoy):
    status, content_type, body = ours.answer("/no/such/command")
    assert (status, content_type) == _status_and_type(envoy, "/no/such/command") == (404, "text/plain; charset=UTF-8")
    assert body == "invalid path. " + ours.answer("/help")[2]
    assert envoy.answer("/no/such/command")[2] == "invalid path. " + envoy.answer("/help")[2]


def _home_entry(page: str, path: str) -> str:
    """How the home page offers ``path``: a ``post`` or ``get`` form, or a ``link``."""
    action = path[1:]
    for kind in ("post", "get"):
        if f"<form action='{action}' method='{kind}'" in page:
            return kind
    return "link" if f"<a href='{action}'>" in page else "missing"


def test_home_page_offers_every_command(ours, envoy):
    assert _status_and_type(ours, "/") == _status_and_type(envoy, "/") == (200, "text/html; charset=UTF-8")
    commands = [line.split(":")[0].split(" ") for line in _help_entries(ours.answer("/help")[2])]
    assert len(commands) == 17
    for path, *post in commands[1:]:  # (not "/" itself)
        allowed = {"post"} if post else {"get", "link"}
        assert _home_entry(ours.answer("/")[2], path) in allowed, path
        assert _home_entry(envoy.answer("/")[2], path) in allowed, path


@pytest.mark.parametrize("path", MUTATING)
def test_get_on_a_mutating_endpoint_is_refused_with_405(ours, envoy, path):
    assert ours.answer(path) == envoy.answer(path) == (
        405, "text/plain; charset=UTF-8", "Method GET not allowed, POST required."
    )


# -- clusters ----------------------------------------------------------------------------------


def test_clusters_text_matches_envoy(ours, envoy):
    assert _status_and_type(ours, "/clusters") == _status_and_type(envoy, "/clusters") == (200, "text/plain; charset=UTF-8")
    mine = ours.answer("/clusters")[2].splitlines()
    theirs = envoy.answer("/clusters")[2].splitlines()
    assert sorted(mine) == sorted(theirs)
    # What the traffic must have produced on the app host, independently of Envoy.
    host = next(line.split("::")[1] for line in mine if line.startswith("app::127.0.0.1:"))
    counts = {line.split("::")[2]: line.split("::")[3] for line in mine if line.startswith(f"app::{host}::")}
    assert counts["rq_total"] == "8" and counts["rq_success"] == "4" and counts["rq_error"] == "4"
    assert counts["rq_timeout"] == "1" and counts["health_flags"] == "healthy" and counts["weight"] == "3"
    assert [line for line in mine if "::cx_connect_fail::" in line and line.startswith("down::")][0].endswith("::1")
    assert "app::high_priority::max_requests::7" in mine and "app::default_priority::max_retries::5" in mine


def test_clusters_json_matches_envoy(ours, envoy):
    status, content_type, body = ours.answer("/clusters?format=json")
    assert (status, content_type) == _status_and_type(envoy, "/clusters?format=json") == (200, "application/json")

    def by_name(text: str) -> dict:
        return {cluster["name"]: cluster for cluster in json.loads(text)["cluster_statuses"]}

    assert by_name(body) == by_name(envoy.answer("/clusters?format=json")[2])


def test_clusters_filter_and_bad_regex(ours, envoy):
    assert _status_and_type(ours, "/clusters?filter=^ap") == _status_and_type(envoy, "/clusters?filter=^ap")
    assert {line.split("::")[0] for line in ours.answer("/clusters?filter=^ap")[2].splitlines()} == {"app"}
    assert sorted(ours.answer("/clusters?filter=^ap")[2].splitlines()) == sorted(
        envoy.answer("/clusters?filter=^ap")[2].splitlines()
    )
    assert ours.answer("/clusters?filter=(") == envoy.answer("/clusters?filter=(") == (
        400, "text/plain; charset=UTF-8", "Invalid re2 regex"
    )


def test_reset_counters_keeps_host_counters_as_envoy_does(ours, envoy):
    assert ours.answer("/clusters after reset")[2] == ours.answer("/clusters")[2]
    assert sorted(envoy.answer("/clusters after reset")[2].splitlines()) == sorted(
        envoy.answer("/clusters")[2].splitlines()
    )


# -- listeners ---------------------------------------------------------------------------------


def _portless(run: _Run, body: str) -> str:
    return body.replace(str(run.listen_port), "PORT")


@pytest.mark.parametrize("query", ["", "?format=json"])
def test_listeners_match_envoy(ours, envoy, query):
    path = "/listeners" + query
    status, content_type, body = ours.answer(path)
    assert (status, content_type) == _status_and_type(envoy, path)
    assert _portless(ours, body) == _portless(envoy, envoy.answer(path)[2])
    if not query:
        assert body == f"front::127.0.0.1:{ours.listen_port}\n"


# -- config dump -------------------------------------------------------------------------------


def test_config_dump_has_envoys_shape(ours, envoy):
    status, content_type, body = ours.answer("/config_dump")
    assert (status, content_type) == _status_and_type(envoy, "/config_dump") == (200, "application/json")
    mine, theirs = json.loads(body)["configs"], json.loads(envoy.answer("/config_dump")[2])["configs"]
    assert [(c["@type"], sorted(c)) for c in mine] == [(c["@type"], sorted(c)) for c in theirs]
    assert sorted(mine[0]["bootstrap"]) == sorted(theirs[0]["bootstrap"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", mine[0]["last_updated"])
    assert mine[1]["static_clusters"][0]["cluster"] == theirs[1]["static_clusters"][0]["cluster"]
    for index, key, inner in ((2, "static_listeners", "listener"), (4, "static_route_configs", "route_config")):
        assert [(e[inner]["@type"], e[inner]["name"], sorted(e)) for e in mine[index][key]] == [
            (e[inner]["@type"], e[inner]["name"], sorted(e)) for e in theirs[index][key]
        ]


def _without_times(value):
    """``value`` without its ``last_updated`` fields (when each proxy loaded its configuration)."""
    if isinstance(value, dict):
        return {key: _without_times(item) for key, item in value.items() if key != "last_updated"}
    if isinstance(value, list):
        return [_without_times(item) for item in value]
    return value


@pytest.mark.parametrize(
    "resource", ["static_clusters", "dynamic_active_clusters", "bootstrap", "no_such_field"]
)
def test_config_dump_resource_matches_envoy(ours, envoy, resource):
    path = f"/config_dump?resource={resource}"
    status, content_type, body = ours.answer(path)
    assert (status, content_type.split(";")[0]) == (envoy.answer(path)[0], envoy.answer(path)[1].split(";")[0])
    if status == 200:
        assert _without_times(json.loads(body)) == _without_times(json.loads(envoy.answer(path)[2]))
    else:
        assert body.strip() == envoy.answer(path)[2].strip()


# -- logging -----------------------------------------------------------------------------------


def _loggers(body: str) -> dict[str, str]:
    lines = body.split("active loggers:\n", 1)[1].splitlines()
    return dict(line.strip().split(": ") for line in lines if line.strip())


@pytest.mark.parametrize(
    "query, error",
    [
        ("", None),
        ("?http=warning", None),
        ("?paths=http:info,upstream:error", None),
        ("?no_such_logger=info", "unknown logger name"),
        ("?http=no_such_level", "unknown logger level"),
        ("?http=warn", "unknown logger level"),
        ("?paths=http", "empty logger name or empty logger level"),
        ("?http=info&upstream=info", "invalid number of parameters"),
    ],
)
def test_logging_matches_envoy(ours, envoy, query, error):
    path = "/logging" + query
    status, content_type, body = ours.answer(path, "POST")
    assert (status, content_type) == _status_and_type(envoy, path, "POST")
    assert status == (400 if error else 200)
    for answer in (body, envoy.answer(path, "POST")[2]):
        if error:
            assert answer.startswith(f"error: {error}\n\nusage: /logging?<name>=<level> (change single level)\n")
        else:
            assert answer.startswith("active loggers:\n")
        assert answer.endswith("\n\n")
    if query.startswith("?paths=http:info"):
        for answer in (body, envoy.answer(path, "POST")[2]):
            assert {k: v for k, v in _loggers(answer).items() if k in ("http", "upstream")} == {
                "http": "info", "upstream": "error"
            }
    elif query == "?http=warning":
        assert _loggers(body)["http"] == _loggers(envoy.answer(path, "POST")[2])["http"] == "warning"


def test_logging_level_change_takes_effect():
    """Raising ``server`` to info at runtime makes the drain message appear (the harness runs at warning)."""
    shown = {}
    for change in (False, True):
        listen_port, admin_port, upstream_port = free_port(), free_port(), free_port()
        config = CONFIG.format(listen_port=listen_port, hcm=HCM, router=ROUTER, app_port=upstream_port, down_port=upstream_port)
        process = ProxyProcess("pyevent-envoy", with_admin(config, admin_port), listen_port)
        try:
            if change:
                status, _, body = _request(admin_port, "POST", "/logging?server=info")
                assert status == 200 and _loggers(body)["server"] == "info"
                assert _loggers(body)["http"] == "warning"
        finally:
            assert process.stop() == 0
        shown[change] = "draining" in process.stderr
    assert shown == {False: False, True: True}


# -- stats reset -------------------------------------------------------------------------------


def test_reset_counters_zeroes_counters_and_keeps_gauges_like_envoy(ours, envoy):
    assert ours.answer("/reset_counters", "POST") == envoy.answer("/reset_counters", "POST") == (
        200, "text/plain; charset=UTF-8", "OK\n"
    )
    before, after = ours.stats_before_reset, ours.stats_after_reset
    assert before["cluster.app.upstream_rq_total"] == 8 and after["cluster.app.upstream_rq_total"] == 0
    assert after["cluster.app.membership_total"] == before["cluster.app.membership_total"] == 1
    differences = {
        name: (value, envoy.stats_after_reset.get(name))
        for name, value in after.items()
        if name != "server.uptime" and envoy.stats_after_reset.get(name) != value
    }
    assert differences == {}, "name: (pyevent-envoy, Envoy)"
    # Counters that were used stay listed by usedonly, at zero.
    assert ours.used_after_reset["cluster.app.upstream_rq_total"] == 0
    assert envoy.used_after_reset["cluster.app.upstream_rq_total"] == 0


# -- memory and runtime ------------------------------------------------------------------------


def test_memory_has_envoys_keys(ours, envoy):
    assert _status_and_type(ours, "/memory") == _status_and_type(envoy, "/memory") == (200, "application/json")
    mine = json.loads(ours.answer("/memory")[2])
    assert list(mine) == list(json.loads(envoy.answer("/memory")[2]))
    assert all(isinstance(value, str) and value.isdigit() for value in mine.values())
    memory = ours.memory
    assert 0 < int(memory["allocated"]) <= int(memory["heap_size"])
    # The resident set, read from the same process a moment apart.
    assert abs(int(memory["total_physical_bytes"]) - ours.rss) < 0.2 * ours.rss


def test_runtime_matches_envoy(ours, envoy):
    assert ours.answer("/runtime")[:2] == envoy.answer("/runtime")[:2] == (200, "application/json")
    assert json.loads(ours.answer("/runtime")[2]) == json.loads(envoy.answer("/runtime")[2]) == {
        "entries": {}, "layers": []
    }


def test_every_answer_has_envoys_header_fields(ours, envoy):
    """Content type, Envoy's admin caching and sniffing headers, chunked framing, in Envoy's order."""
    assert ours.fields.keys() == envoy.fields.keys()
    differences = {key: (fields, envoy.fields[key]) for key, fields in ours.fields.items() if fields != envoy.fields[key]}
    assert differences == {}, "\n".join(f"{key}: ours {a}, envoy {b}" for key, (a, b) in differences.items())
    assert ours.fields[("GET", "/ready")] == [
        ("content-type", "text/plain; charset=UTF-8"),
        ("cache-control", "no-cache, max-age=0"),
        ("x-content-type-options", "nosniff"),
        ("server", "envoy"),
        ("transfer-encoding", "chunked"),
    ]


def test_ready_follows_the_health_check_state_as_envoy_does(ours, envoy):
    for run in (ours, envoy):
        assert run.answer("/healthcheck/fail", "POST")[::2] == (200, "OK\n")
        assert run.answer("/ready failed")[::2] == (503, "DRAINING\n")
        assert run.answer("/ready ok again")[::2] == (200, "LIVE\n")
