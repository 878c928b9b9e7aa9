"""Every supported field: its default (Envoy's) when absent, and its value when set."""

from __future__ import annotations

import dataclasses
import re
import uuid

import pytest
from config_helpers import EXAMPLES, base_config, cluster, hcm, listener, load, mutated, route, route_config, vhost

from pyevent_envoy.config import (
    DEFAULT_BUFFER_LIMIT_BYTES,
    AccessLog,
    Bootstrap,
    Cluster,
    CodecType,
    DirectResponseAction,
    DiscoveryType,
    DnsLookupFamily,
    HeaderAppendAction,
    HeaderMatcher,
    HttpConnectionManager,
    LbPolicy,
    RedirectAction,
    RedirectResponseCode,
    RetryBackOff,
    RetryPolicy,
    RouteAction,
    RoutingPriority,
    StringMatcher,
    Thresholds,
    UpgradeConfig,
    load_bootstrap,
)


@pytest.fixture(scope="module")
def defaults() -> Bootstrap:
    return load(base_config())


def _hcm(b: Bootstrap) -> HttpConnectionManager:
    return b.static_resources.listeners[0].filter_chains[0].http_connection_manager


def test_bootstrap_defaults(defaults):
    assert defaults.node.id == "" and defaults.node.cluster == ""
    assert defaults.admin.address.address == "127.0.0.1"
    assert defaults.admin.address.port_value == 9901
    assert defaults.admin.access_log == ()
    assert load({}) == Bootstrap()
    assert Bootstrap().admin is None


def test_listener_defaults(defaults):
    lst = defaults.static_resources.listeners[0]
    assert lst.name == "ingress"
    assert (lst.address.address, lst.address.port_value) == ("127.0.0.1", 10000)
    assert lst.per_connection_buffer_limit_bytes == DEFAULT_BUFFER_LIMIT_BYTES == 1024 * 1024
    assert len(lst.filter_chains) == 1 and lst.filter_chains[0].name == ""
    assert lst.filter_chains[0].filters[0].name == "envoy.filters.network.http_connection_manager"


def test_unnamed_listener_gets_a_uuid():
    b = load(mutated(lambda c: listener(c).pop("name")))
    uuid.UUID(b.static_resources.listeners[0].name)


def test_hcm_defaults(defaults):
    h = _hcm(defaults)
    assert h.stat_prefix == "ingress_http"
    assert h.codec_type is CodecType.AUTO
    assert h.use_remote_address is False
    assert h.xff_num_trusted_hops == 0
    assert h.server_name == "envoy"
    assert h.generate_request_id is True
    assert h.request_timeout == 0.0
    assert h.stream_idle_timeout == 300.0
    assert h.common_http_protocol_options.idle_timeout == 3600.0
    assert h.delayed_close_timeout == 1.0
    assert h.max_request_headers_kb == 60
    assert h.drain_timeout == 5.0
    assert h.access_log == ()
    assert h.http_protocol_options.accept_http_10 is False
    assert h.http_protocol_options.default_host_for_http_10 == ""
    assert [f.name for f in h.http_filters] == ["envoy.filters.http.router"]


def test_hcm_fields_set():
    h = _hcm(load_bootstrap(EXAMPLES / "envoy-tuned.yaml"))
    assert h.stat_prefix == "edge_http"
    assert h.codec_type is CodecType.HTTP1
    assert h.server_name == "edge-proxy"
    assert h.use_remote_address is True
    assert h.xff_num_trusted_hops == 1
    assert h.generate_request_id is False
    assert h.request_timeout == 30.0
    assert h.stream_idle_timeout == 60.0
    assert h.drain_timeout == 2.0
    assert h.delayed_close_timeout == 0.5
    assert h.max_request_headers_kb == 32
    assert h.common_http_protocol_options.idle_timeout == 300.0
    assert h.http_protocol_options.accept_http_10 is True
    assert h.http_protocol_options.default_host_for_http_10 == "example.com"


def test_upgrade_configs():
    assert _hcm(load_bootstrap(EXAMPLES / "envoy-static.yaml")).upgrade_configs == ()
    h = _hcm(load_bootstrap(EXAMPLES / "envoy-websocket.yaml"))
    assert h.upgrade_configs == (UpgradeConfig(upgrade_type="websocket", enabled=True),)
    chat, web = h.route_config.virtual_hosts[0].routes
    assert chat.route.upgrade_configs == ()
    assert web.route.upgrade_configs == (UpgradeConfig(upgrade_type="websocket", enabled=False),)


def test_retry_policies_example():
    h = _hcm(load_bootstrap(EXAMPLES / "envoy-retries.yaml"))
    assert [(r.address_prefix, r.prefix_len) for r in h.internal_address_config.cidr_ranges] == [("10.0.0.0", 8)]
    (vhost,) = h.route_config.virtual_hosts
    assert vhost.retry_policy == RetryPolicy(retry_on="5xx,reset", num_retries=2, per_try_timeout=2.0)
    payments, search, rest = vhost.routes
    assert payments.route.retry_policy == RetryPolicy(retry_on="connect-failure", num_retries=3)
    assert search.route.retry_policy == RetryPolicy(
        retry_on="retriable-status-codes,connect-failure",
        num_retries=3,
        retriable_status_codes=(429, 503),
        retry_back_off=RetryBackOff(base_interval=0.1, max_interval=1.0),
    )
    assert rest.route.retry_policy is None
    (app,) = load_bootstrap(EXAMPLES / "envoy-retries.yaml").static_resources.clusters
    assert app.circuit_breakers.for_priority().max_retries == 10


def test_retry_policy_defaults():
    b = load(mutated(lambda c: route(c)["route"].update(retry_policy={})))
    assert _hcm(b).route_config.virtual_hosts[0].routes[0].route.retry_policy == RetryPolicy()
    assert RetryPolicy() == RetryPolicy(
        retry_on="", num_retries=1, per_try_timeout=0.0, retry_back_off=None, host_selection_retry_max_attempts=1
    )
    assert _hcm(b).internal_address_config is None


def test_zero_timeouts_mean_disabled():
    b = load(
        mutated(
            lambda c: hcm(c).update(
                stream_idle_timeout="0s", common_http_protocol_options={"idle_timeout": "0s"}, delayed_close_timeout="0s"
            )
        )
    )
    h = _hcm(b)
    assert (h.stream_idle_timeout, h.common_http_protocol_options.idle_timeout, h.delayed_close_timeout) == (0, 0, 0)


def test_access_logs():
    b = load_bootstrap(EXAMPLES / "envoy-tuned.yaml")
    file_log, stdout_log = _hcm(b).access_log
    assert isinstance(file_log, AccessLog)
    assert file_log.name == "envoy.access_loggers.file" and file_log.path == "/dev/stdout"
    assert file_log.text_format.startswith("[%START_TIME%]") and file_log.text_format.endswith("\n")
    assert file_log.json_format is None
    assert stdout_log.path == "/dev/stdout" and stdout_log.text_format is None
    assert dict(stdout_log.json_format) == {"time": "%START_TIME%", "status": "%RESPONSE_CODE%", "path": "%REQ(:PATH)%"}
    with pytest.raises(TypeError):
        stdout_log.json_format["time"] = "x"  # read-only
    (admin_log,) = b.admin.access_log
    assert admin_log.path == "/dev/stdout" and admin_log.text_format is None  # Envoy's default format
    assert b.node.id == "proxy-1" and b.node.cluster == "edge"


def test_access_log_formats():
    file_type = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
    stderr_type = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
    b = load(
        mutated(
            lambda c: hcm(c).update(
                access_log=[
                    {"typed_config": {"@type": file_type, "path": "/tmp/a.log", "format": "%PROTOCOL%\n"}},
                    {
                        "name": "f",
                        "typed_config": {
                            "@type": file_type,
                            "path": "/tmp/b.log",
                            "log_format": {"text_format": "%RESPONSE_CODE%", "omit_empty_values": True},
                        },
                    },
                    {"name": "e", "typed_config": {"@type": stderr_type}},
                ]
            )
        )
    )
    a, f, e = _hcm(b).access_log
    assert (a.name, a.path, a.text_format) == ("", "/tmp/a.log", "%PROTOCOL%\n")
    assert (f.text_format, f.omit_empty_values) == ("%RESPONSE_CODE%", True)
    assert (e.path, e.text_format, e.json_format) == ("/dev/stderr", None, None)


def test_route_defaults(defaults):
    vh = _hcm(defaults).route_config.virtual_hosts[0]
    assert _hcm(defaults).route_config.name == "local"
    assert (vh.name, vh.domains) == ("app", ("*",))
    r = vh.routes[0]
    assert r.name == ""
    assert r.match.prefix == "/" and r.match.path is None and r.match.safe_regex is None
    assert r.match.case_sensitive is True and r.match.headers == ()
    assert isinstance(r.action, RouteAction) and r.route is r.action
    assert r.redirect is None and r.direct_response is None
    assert r.route.cluster == "app" and r.route.weighted_clusters is None
    assert r.route.timeout == 15.0
    assert r.route.prefix_rewrite is None and r.route.host_rewrite_literal is None
    assert r.route.auto_host_rewrite is False
    for owner in (_hcm(defaults).route_config, vh, r):
        assert owner.request_headers_to_add == owner.response_headers_to_add == ()
        assert owner.request_headers_to_remove == owner.response_headers_to_remove == ()


def test_routes_example():
    rc = _hcm(load_bootstrap(EXAMPLES / "envoy-routes.yaml")).route_config
    api, legacy, fallback = rc.virtual_hosts
    assert rc.response_headers_to_add[0].key == "x-proxy"
    assert rc.response_headers_to_add[0].append_action is HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD
    assert api.domains == ("api.example.com", "*.api.example.com")
    (added,) = api.request_headers_to_add
    assert added.value == "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
    assert added.append_action is HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
    health, canary, v2, users, static, default = api.routes
    assert health.match.path == "/healthz"
    assert health.direct_response == DirectResponseAction(status=200, body=b"ok\n")
    assert canary.match.headers == (HeaderMatcher(name="x-canary", string_match=StringMatcher(exact="true")),)
    assert canary.route.prefix_rewrite == "/"
    assert [(w.name, w.weight) for w in v2.route.weighted_clusters] == [("app_v1", 90), ("app_v2", 10)]
    assert v2.route.cluster is None and v2.route.timeout == 30.0
    assert users.match.safe_regex.regex == "/users/[0-9]+(/profile)?"
    assert users.match.safe_regex.pattern.fullmatch("/users/42/profile")
    assert not users.match.safe_regex.pattern.fullmatch("/users/x")
    assert users.match.headers[0].present_match is True
    assert users.response_headers_to_remove == ("x-internal-debug",)
    assert static.match.case_sensitive is False
    assert static.route.host_rewrite_literal == "static.internal"
    assert default.route.auto_host_rewrite is True
    assert legacy.domains == ("www.example.org", "legacy.*")
    assert legacy.routes[0].redirect == RedirectAction(
        https_redirect=True, host_redirect="api.example.com", response_code=RedirectResponseCode.PERMANENT_REDIRECT
    )
    docs, not_curl, last = fallback.routes
    assert fallback.request_headers_to_remove == ("x-forwarded-proto",)
    assert docs.redirect.prefix_rewrite == "/documentation/"
    assert docs.redirect.response_code.status == 302 and docs.redirect.strip_query is True
    matcher = not_curl.match.headers[0]
    assert matcher.invert_match is True
    assert matcher.string_match == StringMatcher(contains="curl", ignore_case=True)
    assert last.direct_response == DirectResponseAction(status=404, body=None)


def test_redirect_defaults():
    b = load(mutated(lambda c: (route(c).pop("route"), route(c).update(redirect={}))))
    r = _hcm(b).route_config.virtual_hosts[0].routes[0].redirect
    assert r == RedirectAction()
    assert r.response_code is RedirectResponseCode.MOVED_PERMANENTLY and r.response_code.status == 301
    assert (r.https_redirect, r.scheme_redirect, r.host_redirect, r.port_redirect) == (False, None, "", 0)
    assert (r.path_redirect, r.prefix_rewrite, r.strip_query) == (None, None, False)
    statuses = {code.name: code.status for code in RedirectResponseCode}
    assert statuses == {
        "MOVED_PERMANENTLY": 301,
        "FOUND": 302,
        "SEE_OTHER": 303,
        "TEMPORARY_REDIRECT": 307,
        "PERMANENT_REDIRECT": 308,
    }


def test_redirect_fields():
    redirect = {"scheme_redirect": "https", "port_redirect": 8443, "path_redirect": "/x", "response_code": "SEE_OTHER"}
    b = load(mutated(lambda c: (route(c).pop("route"), route(c).update(redirect=redirect))))
    r = _hcm(b).route_config.virtual_hosts[0].routes[0].redirect
    assert (r.scheme_redirect, r.port_redirect, r.path_redirect) == ("https", 8443, "/x")
    assert r.response_code is RedirectResponseCode.SEE_OTHER


def test_header_matcher_forms():
    headers = [
        {"name": "a"},
        {"name": "b", "present_match": False},
        {"name": "c", "exact_match": ""},
        {"name": "d", "prefix_match": "p"},
        {"name": "e", "suffix_match": "s"},
        {"name": "f", "contains_match": "c"},
        {"name": "g", "safe_regex_match": {"regex": "x+"}},
        {"name": "h", "string_match": {"safe_regex": {"regex": "y+"}}, "treat_missing_header_as_empty": True},
    ]
    b = load(mutated(lambda c: route(c)["match"].update(headers=headers)))
    got = _hcm(b).route_config.virtual_hosts[0].routes[0].match.headers
    assert got[0] == HeaderMatcher(name="a", present_match=True)
    assert got[1] == HeaderMatcher(name="b", present_match=False)
    assert got[2].string_match == StringMatcher(exact="")
    assert got[3].string_match == StringMatcher(prefix="p")
    assert got[4].string_match == StringMatcher(suffix="s")
    assert got[5].string_match == StringMatcher(contains="c")
    assert got[6].string_match.safe_regex.regex == "x+"
    assert got[7].string_match.safe_regex.pattern.fullmatch("yyy")
    assert got[7].treat_missing_header_as_empty is True


def test_header_value_options():
    adds = [
        {"header": {"key": "a", "value": "1"}},
        {"header": {"key": "b", "value": "2"}, "append": True},
        {"header": {"key": "c", "value": "3"}, "append": False},
        {"header": {"key": "d"}, "append_action": "ADD_IF_ABSENT", "keep_empty_value": True},
        {"header": {"key": "e", "value": "5"}, "append_action": "OVERWRITE_IF_EXISTS"},
    ]
    b = load(
        mutated(
            lambda c: (
                route(c).update(response_headers_to_add=adds, request_headers_to_remove=["x-a"]),
                vhost(c).update(response_headers_to_remove=["x-b"]),
            )
        )
    )
    vh = _hcm(b).route_config.virtual_hosts[0]
    got = vh.routes[0].response_headers_to_add
    assert [(h.key, h.value, h.append_action.name, h.keep_empty_value) for h in got] == [
        ("a", "1", "APPEND_IF_EXISTS_OR_ADD", False),
        ("b", "2", "APPEND_IF_EXISTS_OR_ADD", False),
        ("c", "3", "OVERWRITE_IF_EXISTS_OR_ADD", False),
        ("d", "", "ADD_IF_ABSENT", True),
        ("e", "5", "OVERWRITE_IF_EXISTS", False),
    ]
    assert vh.routes[0].request_headers_to_remove == ("x-a",)
    assert vh.response_headers_to_remove == ("x-b",)


def test_direct_response_bodies():
    def body(b):
        return _hcm(b).route_config.virtual_hosts[0].routes[0].direct_response.body

    def direct(spec):
        return mutated(lambda c: (route(c).pop("route"), route(c).update(direct_response=spec)))

    assert body(load(direct({"status": 503}))) is None
    assert body(load(direct({"status": 200, "body": {"inline_string": "héllo"}}))) == "héllo".encode()
    assert body(load(direct({"status": 200, "body": {"inline_bytes": "aGk="}}))) == b"hi"
    assert body(load(direct({"status": 200, "body": {"inline_bytes": "aGk"}}))) == b"hi"  # padding optional


def test_cluster_defaults(defaults):
    c = defaults.static_resources.clusters[0]
    assert c.name == "app"
    assert c.type is DiscoveryType.STATIC
    assert c.connect_timeout == 1.0
    assert Cluster(name="x").connect_timeout == 5.0
    assert load(mutated(lambda c: cluster(c).pop("connect_timeout"))).static_resources.clusters[0].connect_timeout == 5.0
    assert c.lb_policy is LbPolicy.ROUND_ROBIN
    assert c.dns_refresh_rate == 5.0
    assert c.dns_lookup_family is DnsLookupFamily.AUTO
    assert c.per_connection_buffer_limit_bytes == DEFAULT_BUFFER_LIMIT_BYTES
    assert c.http_protocol_options is None
    assert c.circuit_breakers.thresholds == ()
    t = c.circuit_breakers.for_priority()
    assert (t.max_connections, t.max_pending_requests, t.max_requests, t.max_retries) == (1024, 1024, 1024, 3)
    assert c.circuit_breakers.for_priority(RoutingPriority.HIGH) == Thresholds(priority=RoutingPriority.HIGH)
    assert c.load_assignment.cluster_name == "app"
    (ep,) = c.lb_endpoints
    assert (ep.address.address, ep.address.port_value, ep.load_balancing_weight) == ("127.0.0.1", 8080, 1)
    assert defaults.cluster("app") is c and defaults.cluster("nope") is None
    assert defaults.listener("ingress") is defaults.static_resources.listeners[0]


def test_cluster_fields_set():
    b = load_bootstrap(EXAMPLES / "envoy-tuned.yaml")
    c = b.cluster("app")
    assert c.connect_timeout == 0.5
    assert c.per_connection_buffer_limit_bytes == 65536
    assert c.http_protocol_options is not None
    default = c.circuit_breakers.for_priority(RoutingPriority.DEFAULT)
    assert (default.max_connections, default.max_pending_requests, default.max_requests, default.max_retries) == (
        100,
        50,
        200,
        1,
    )
    high = c.circuit_breakers.for_priority(RoutingPriority.HIGH)
    assert (high.max_connections, high.max_pending_requests, high.max_requests, high.max_retries) == (10, 1024, 1024, 3)
    assert b.static_resources.listeners[0].per_connection_buffer_limit_bytes == 32768


def test_dns_clusters():
    b = load_bootstrap(EXAMPLES / "envoy-dns.yaml")
    strict, logical = b.static_resources.clusters
    assert strict.type is DiscoveryType.STRICT_DNS and logical.type is DiscoveryType.LOGICAL_DNS
    assert strict.dns_refresh_rate == 10.0 and logical.dns_refresh_rate == 5.0
    assert strict.dns_lookup_family is DnsLookupFamily.V4_ONLY
    assert strict.lb_policy is LbPolicy.RANDOM
    assert [e.address.port_value for e in strict.lb_endpoints] == [8080, 8081]
    assert logical.lb_endpoints[0].address.address == "localhost"


def test_routes_example_cluster_policies():
    b = load_bootstrap(EXAMPLES / "envoy-routes.yaml")
    assert b.cluster("app_v2").lb_policy is LbPolicy.LEAST_REQUEST
    assert [e.load_balancing_weight for e in b.cluster("app_v1").lb_endpoints] == [1, 2]
    assert b.cluster("app_v1").connect_timeout == 0.25


def test_static_cluster_without_load_assignment():
    c = load(mutated(lambda c: cluster(c).pop("load_assignment"))).static_resources.clusters[0]
    assert c.load_assignment is None and c.lb_endpoints == ()


def test_model_is_frozen_and_slotted(defaults):
    h = _hcm(defaults)
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.stat_prefix = "x"
    for cls in (Bootstrap, HttpConnectionManager, Cluster, RouteAction, AccessLog):
        assert "__slots__" in vars(cls)
    assert not hasattr(h, "__dict__")
    assert hash(defaults.static_resources.clusters[0])
    assert load(base_config()).static_resources.clusters == defaults.static_resources.clusters


def test_camel_case_names_read_like_snake_case():
    b = load(
        mutated(
            lambda c: (
                hcm(c).update(statPrefix=hcm(c).pop("stat_prefix"), useRemoteAddress=True),
                cluster(c).update(connectTimeout=cluster(c).pop("connect_timeout"), lbPolicy="RANDOM"),
            )
        )
    )
    assert _hcm(b).stat_prefix == "ingress_http" and _hcm(b).use_remote_address is True
    assert b.static_resources.clusters[0].lb_policy is LbPolicy.RANDOM


def test_regex_pattern_is_compiled(defaults):
    b = load(mutated(lambda c: route(c).update(match={"safe_regex": {"regex": "/a/[0-9]+"}})))
    m = _hcm(b).route_config.virtual_hosts[0].routes[0].match
    assert m.prefix is None and isinstance(m.safe_regex.pattern, re.Pattern)
    assert m.safe_regex.pattern.fullmatch("/a/12") and not m.safe_regex.pattern.fullmatch("/a/12x")


def test_empty_route_config_and_vhost_without_routes():
    b = load(mutated(lambda c: vhost(c).pop("routes")))
    assert _hcm(b).route_config.virtual_hosts[0].routes == ()
    b = load(mutated(lambda c: hcm(c).update(route_config={})))
    assert _hcm(b).route_config.virtual_hosts == () and _hcm(b).route_config.name == ""
    b = load(mutated(lambda c: route_config(c).update(request_headers_to_remove=[""])))
    assert _hcm(b).route_config.request_headers_to_remove == ("",)
