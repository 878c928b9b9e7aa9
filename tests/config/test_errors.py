"""Each kind of configuration error, with its exact YAML path and reason; many errors at once."""

from __future__ import annotations

import copy
import pickle

import pytest
from config_helpers import (
    CLUSTER_PATH,
    ENDPOINT_PATH,
    FILE_LOG_TYPE,
    HCM_PATH,
    ROUTE_PATH,
    base_config,
    cluster,
    dump,
    endpoint_address,
    errors_of,
    hcm,
    listener,
    load,
    mutated,
    route,
    route_config,
    vhost,
)

from pyevent_envoy.config import ConfigError, ConfigErrors, load_bootstrap
from pyevent_envoy.errors import PyEventEnvoyError

VH_PATH = HCM_PATH + ".route_config.virtual_hosts[0]"


def only_error(c):
    errors = errors_of(c)
    assert len(errors) == 1, errors
    return errors[0]


def test_the_regex_path_from_the_issue():
    def mutate(c):
        vhost(c)["routes"].append({"match": {"safe_regex": {"regex": "/a(?!b)"}}, "route": {"cluster": "app"}})

    path, reason = only_error(mutated(mutate))
    assert path == (
        "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
        ".route_config.virtual_hosts[0].routes[1].match.safe_regex.regex"
    )
    assert "lookahead" in reason


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [
        # Field names.
        (lambda c: hcm(c).update(stat_prfix="x"), HCM_PATH + ".stat_prfix", "did you mean 'stat_prefix'?"),
        (lambda c: c.update(bogus=1), "bogus", "unknown field of Bootstrap"),
        (
            lambda c: route(c)["route"].update(hedge_policy={}),
            ROUTE_PATH + ".route.hedge_policy",
            "RouteAction.hedge_policy is not supported by pyevent-envoy",
        ),
        (
            lambda c: c["static_resources"].update(secrets=[]),
            "static_resources.secrets",
            "is not supported by pyevent-envoy",
        ),
        (lambda c: hcm(c).update(statPrefix="y"), HCM_PATH + ".statPrefix", "field set twice"),
        # Types.
        (lambda c: hcm(c).update(server_name=1), HCM_PATH + ".server_name", "expected a string, got an integer"),
        (lambda c: hcm(c).update(server_name=1.5), HCM_PATH + ".server_name", "expected a string, got a number"),
        (lambda c: hcm(c).update(use_remote_address="yes"), HCM_PATH + ".use_remote_address", "expected true or false"),
        (lambda c: hcm(c).update(xff_num_trusted_hops="two"), HCM_PATH + ".xff_num_trusted_hops", "expected an integer"),
        (lambda c: hcm(c).update(xff_num_trusted_hops=1.5), HCM_PATH + ".xff_num_trusted_hops", "expected an integer"),
        (lambda c: hcm(c).update(xff_num_trusted_hops=True), HCM_PATH + ".xff_num_trusted_hops", "expected an integer"),
        (lambda c: hcm(c).update(xff_num_trusted_hops=2**32), HCM_PATH + ".xff_num_trusted_hops", "out of range"),
        (lambda c: hcm(c).update(http_filters={}), HCM_PATH + ".http_filters", "expected a list, got a mapping"),
        (lambda c: hcm(c).update(route_config=[]), HCM_PATH + ".route_config", "expected a mapping"),
        (lambda c: vhost(c).update(domains=[None]), VH_PATH + ".domains[0]", "must not be null"),
        (lambda c: vhost(c).update(domains=[1]), VH_PATH + ".domains[0]", "expected a string"),
        # Required fields.
        (lambda c: hcm(c).pop("stat_prefix"), HCM_PATH + ".stat_prefix", "is required"),
        (lambda c: vhost(c).pop("name"), VH_PATH + ".name", "is required"),
        (lambda c: route(c).pop("match"), ROUTE_PATH + ".match", "is required"),
        (lambda c: cluster(c).pop("name"), CLUSTER_PATH + ".name", "is required"),
        (lambda c: listener(c).pop("address"), "static_resources.listeners[0].address", "is required"),
        (lambda c: endpoint_address(c).pop("address"), ENDPOINT_PATH + ".address", "is required"),
        (lambda c: hcm(c).pop("route_config"), HCM_PATH, "one of rds, route_config, scoped_routes is required"),
        # Enumerations.
        (lambda c: cluster(c).update(type="EDS"), CLUSTER_PATH + ".type", "DiscoveryType EDS is not supported"),
        (lambda c: cluster(c).update(type="DYNAMIC"), CLUSTER_PATH + ".type", "unknown DiscoveryType value 'DYNAMIC'"),
        (lambda c: cluster(c).update(lb_policy=9), CLUSTER_PATH + ".lb_policy", "unknown LbPolicy value 9"),
        (lambda c: hcm(c).update(codec_type="HTTP3"), HCM_PATH + ".codec_type", "supported: AUTO, HTTP1"),
        (
            lambda c: cluster(c).update(dns_lookup_family="V5"),
            CLUSTER_PATH + ".dns_lookup_family",
            "unknown DnsLookupFamily",
        ),
        # Ports and addresses.
        (lambda c: endpoint_address(c).update(port_value=65536), ENDPOINT_PATH + ".port_value", "[0, 65535]"),
        (lambda c: endpoint_address(c).pop("port_value"), ENDPOINT_PATH, "port_value, named_port is required"),
        (lambda c: endpoint_address(c).update(protocol="UDP"), ENDPOINT_PATH + ".protocol", "not supported"),
        (
            lambda c: endpoint_address(c).update(address="app.local"),
            ENDPOINT_PATH + ".address",
            "malformed IP address: app.local",
        ),
        (
            lambda c: listener(c)["address"].update(pipe={"path": "/tmp/s"}),
            "static_resources.listeners[0].address.pipe",
            "Address.pipe is not supported",
        ),
        # Durations.
        (lambda c: cluster(c).update(connect_timeout="1"), CLUSTER_PATH + ".connect_timeout", "invalid duration '1'"),
        (lambda c: cluster(c).update(connect_timeout="0s"), CLUSTER_PATH + ".connect_timeout", "greater than 0s"),
        (lambda c: route(c)["route"].update(timeout="-2s"), ROUTE_PATH + ".route.timeout", "negative"),
        # Routes.
        (
            lambda c: route(c)["route"].update(cluster="missing"),
            ROUTE_PATH + ".route.cluster",
            "unknown cluster 'missing'",
        ),
        (lambda c: route(c).pop("route"), ROUTE_PATH, "one of route, redirect, direct_response"),
        (lambda c: route(c).update(redirect={}), ROUTE_PATH + ".redirect", "only one of route, redirect"),
        (lambda c: route(c)["match"].update(path="/x"), ROUTE_PATH + ".match.path", "only one of prefix, path"),
        (lambda c: route(c).update(route={}), ROUTE_PATH + ".route", "one of cluster, cluster_header"),
        (
            lambda c: route(c).update(route={"weighted_clusters": {"clusters": [{"name": "app", "weight": 0}]}}),
            ROUTE_PATH + ".route.weighted_clusters.clusters",
            "must be greater than 0",
        ),
        (
            lambda c: route(c).update(route={"weighted_clusters": {"clusters": [{"weight": 1}]}}),
            ROUTE_PATH + ".route.weighted_clusters.clusters[0]",
            "name is required",
        ),
        (
            lambda c: route(c).update(route={"weighted_clusters": {"clusters": []}}),
            ROUTE_PATH + ".route.weighted_clusters.clusters",
            "at least one cluster",
        ),
        # Regexes.
        (lambda c: route(c).update(match={"safe_regex": {"regex": r"(a)\1"}}), None, "backreferences"),
        (lambda c: route(c).update(match={"safe_regex": {"regex": "(?<=a)b"}}), None, "lookahead and lookbehind"),
        (lambda c: route(c).update(match={"safe_regex": {"regex": "(?>a)"}}), None, "atomic groups"),
        (lambda c: route(c).update(match={"safe_regex": {"regex": "a++"}}), None, "possessive"),
        (lambda c: route(c).update(match={"safe_regex": {"regex": "[a"}}), None, "missing ]"),
        (lambda c: route(c).update(match={"safe_regex": {"regex": "a)"}}), None, "invalid regex"),
        (lambda c: route(c).update(match={"safe_regex": {"regex": ""}}), None, "must not be empty"),
        # Domains.
        (
            lambda c: vhost(c).update(domains=["a.*.com"]),
            VH_PATH + ".domains[0]",
            "'*' may only be the whole domain or a leading or trailing wildcard",
        ),
        (lambda c: vhost(c).update(domains=["*a*"]), VH_PATH + ".domains[0]", "'*' may only be"),
        (lambda c: vhost(c).update(domains=["a.com", "A.com"]), VH_PATH + ".domains[1]", "duplicate domain 'A.com'"),
        (lambda c: vhost(c).update(domains=["*.a", "*.a"]), VH_PATH + ".domains[1]", "duplicate domain"),
        (lambda c: vhost(c).update(domains=["*", "*"]), VH_PATH + ".domains[1]", "only one virtual host may have"),
        # @type.
        (lambda c: hcm(c).pop("@type"), HCM_PATH + ".@type", "is required"),
        (lambda c: hcm(c).update({"@type": 5}), HCM_PATH + ".@type", "expected a string"),
        (
            lambda c: hcm(c).update({"@type": "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"}),
            HCM_PATH + ".@type",
            "type URL must be exactly 'type.googleapis.com/",
        ),
        (
            lambda c: hcm(c)["http_filters"][0]["typed_config"].update(
                {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}
            ),
            HCM_PATH + ".http_filters[0].typed_config.@type",
            "HTTP filter of type 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors' is not supported",
        ),
        # Filters.
        (lambda c: hcm(c).update(http_filters=[]), HCM_PATH + ".http_filters", "must end with the router filter"),
        (
            lambda c: listener(c)["filter_chains"][0]["filters"].append(
                copy.deepcopy(listener(c)["filter_chains"][0]["filters"][0])
            ),
            "static_resources.listeners[0].filter_chains[0].filters[0]",
            "terminal filter",
        ),
        # Headers.
        (
            lambda c: route_config(c).update(response_headers_to_add=[{"header": {"key": ":status", "value": "1"}}]),
            HCM_PATH + ".route_config.response_headers_to_add[0].header.key",
            "may not be modified",
        ),
        (
            lambda c: vhost(c).update(response_headers_to_remove=[":status"]),
            VH_PATH + ".response_headers_to_remove[0]",
            "may not be removed",
        ),
        (
            lambda c: vhost(c).update(request_headers_to_remove=[""]),
            VH_PATH + ".request_headers_to_remove[0]",
            "must not be empty",
        ),
        (
            lambda c: route_config(c).update(request_headers_to_add=[{"header": {"key": "x", "value": "%REQ%"}}]),
            HCM_PATH + ".route_config.request_headers_to_add[0].header.value",
            "requires a header name",
        ),
        (
            lambda c: route_config(c).update(request_headers_to_add=[{"header": {"key": "x"}, "append_action": "NEVER"}]),
            HCM_PATH + ".route_config.request_headers_to_add[0].append_action",
            "unknown HeaderAppendAction",
        ),
        # Direct responses.
        (
            lambda c: (route(c).pop("route"), route(c).update(direct_response={"status": 600})),
            ROUTE_PATH + ".direct_response.status",
            "must be in [200, 600)",
        ),
        (
            lambda c: (route(c).pop("route"), route(c).update(direct_response={"status": 200, "body": {"filename": "/x"}})),
            ROUTE_PATH + ".direct_response.body.filename",
            "DataSource.filename is not supported",
        ),
        (
            lambda c: (route(c).pop("route"), route(c).update(direct_response={"status": 200, "body": {"inline_bytes": "!"}})),
            ROUTE_PATH + ".direct_response.body.inline_bytes",
            "not valid base64",
        ),
        # Clusters.
        (
            lambda c: cluster(c).update(circuit_breakers={"thresholds": [{"max_requests": -1}]}),
            CLUSTER_PATH + ".circuit_breakers.thresholds[0].max_requests",
            "out of range",
        ),
        (
            lambda c: cluster(c).update(typed_extension_protocol_options={"foo.bar": {}}),
            CLUSTER_PATH + '.typed_extension_protocol_options["foo.bar"]',
            "protocol options 'foo.bar' are not supported",
        ),
        (
            lambda c: cluster(c).update(
                typed_extension_protocol_options={
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    }
                }
            ),
            CLUSTER_PATH + '.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]'
            ".explicit_http_config.http2_protocol_options",
            "not supported",
        ),
        (
            lambda c: cluster(c).update(
                typed_extension_protocol_options={
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http_protocol_options": {"accept_http_10": True}},
                    }
                }
            ),
            CLUSTER_PATH + '.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]'
            ".explicit_http_config.http_protocol_options.accept_http_10",
            "not supported",
        ),
        # Access logs and admin.
        (
            lambda c: c["admin"].update(access_log_path="/dev/null"),
            "admin.access_log_path",
            "use access_log",
        ),
        (
            lambda c: hcm(c).update(
                access_log=[{"name": "x", "filter": {}, "typed_config": {"@type": FILE_LOG_TYPE, "path": "/x"}}]
            ),
            HCM_PATH + ".access_log[0].filter",
            "AccessLog.filter is not supported",
        ),
        (lambda c: c.update(node={"id": "a", "locality": {}}), "node.locality", "Node.locality is not supported"),
        # Upgrades.
        (
            lambda c: hcm(c).update(upgrade_configs=[{"upgrade_type": "websocket", "filters": []}]),
            HCM_PATH + ".upgrade_configs[0].filters",
            "HttpConnectionManager.UpgradeConfig.filters is not supported by pyevent-envoy",
        ),
        (
            lambda c: route(c)["route"].update(upgrade_configs=[{"upgrade_type": "websocket", "connect_config": {}}]),
            ROUTE_PATH + ".route.upgrade_configs[0].connect_config",
            "RouteAction.UpgradeConfig.connect_config is not supported by pyevent-envoy",
        ),
        (
            lambda c: hcm(c).update(upgrade_configs=[{"upgrade_type": "websocket"}, {"upgrade_type": "WebSocket"}]),
            HCM_PATH + ".upgrade_configs[1].upgrade_type",
            "multiple upgrade configs with the same name: 'WebSocket'",
        ),
        (
            lambda c: route(c)["route"].update(upgrade_configs=[{"upgrade_type": "a"}, {"upgrade_type": "A"}]),
            ROUTE_PATH + ".route.upgrade_configs[1].upgrade_type",
            "duplicate upgrade 'A'",
        ),
        (
            lambda c: hcm(c).update(upgrade_configs=[{"upgrade_type": "connect"}]),
            HCM_PATH + ".upgrade_configs[0].upgrade_type",
            "CONNECT tunnels are not supported by pyevent-envoy",
        ),
        (
            lambda c: hcm(c).update(upgrade_configs=[{"upgrade_type": "websocket", "enabled": "yes"}]),
            HCM_PATH + ".upgrade_configs[0].enabled",
            "expected true or false",
        ),
        (
            lambda c: hcm(c).update(upgrade_configs={"upgrade_type": "websocket"}),
            HCM_PATH + ".upgrade_configs",
            "expected a list",
        ),
        # Retry policies.
        (
            lambda c: route(c)["route"].update(retry_policy={"retry_back_off": {}}),
            ROUTE_PATH + ".route.retry_policy.retry_back_off.base_interval",
            "is required",
        ),
        (
            lambda c: route(c)["route"].update(retry_policy={"retry_back_off": {"base_interval": "0s"}}),
            ROUTE_PATH + ".route.retry_policy.retry_back_off.base_interval",
            "must be greater than 0s",
        ),
        (
            lambda c: route(c)["route"].update(
                retry_policy={"retry_back_off": {"base_interval": "0.25s", "max_interval": "0.2s"}}
            ),
            ROUTE_PATH + ".route.retry_policy.retry_back_off.max_interval",
            "must be greater than or equal to the base_interval",
        ),
        (
            lambda c: route(c)["route"].update(retry_policy={"per_try_timeout": "soon"}),
            ROUTE_PATH + ".route.retry_policy.per_try_timeout",
            "invalid duration 'soon'",
        ),
        (
            lambda c: route(c)["route"].update(retry_policy={"retriable_status_codes": [503, "x"]}),
            ROUTE_PATH + ".route.retry_policy.retriable_status_codes[1]",
            "expected an unsigned 32-bit integer, got a string",
        ),
        (
            lambda c: route(c)["route"].update(retry_policy={"host_selection_retry_max_attempts": 1.5}),
            ROUTE_PATH + ".route.retry_policy.host_selection_retry_max_attempts",
            "expected a 64-bit integer",
        ),
        (
            lambda c: route(c)["route"].update(retry_policy={"retriable_headers": [{"name": ""}]}),
            ROUTE_PATH + ".route.retry_policy.retriable_headers[0].name",
            "must not be empty",
        ),
        (
            lambda c: route(c)["route"].update(retry_policy={"per_try_idle_timeout": "1s"}),
            ROUTE_PATH + ".route.retry_policy.per_try_idle_timeout",
            "RetryPolicy.per_try_idle_timeout is not supported by pyevent-envoy",
        ),
        (
            lambda c: route(c)["route"].update(retry_policy={"retry_priority": {"name": "x"}}),
            ROUTE_PATH + ".route.retry_policy.retry_priority",
            "RetryPolicy.retry_priority is not supported by pyevent-envoy",
        ),
        (
            lambda c: vhost(c).update(retry_policy={"retry_on": ["5xx"]}),
            VH_PATH + ".retry_policy.retry_on",
            "expected a string, got a list",
        ),
        (
            lambda c: vhost(c).update(retry_policy={"retry_on": "5xx", "retry_backoff": {}}),
            VH_PATH + ".retry_policy.retry_backoff",
            "did you mean 'retry_back_off'?",
        ),
        # Internal addresses.
        (
            lambda c: hcm(c).update(internal_address_config={"cidr_ranges": [{"address_prefix": "10.0.0"}]}),
            HCM_PATH + ".internal_address_config.cidr_ranges[0].address_prefix",
            "invalid ip/mask combo '10.0.0/0'",
        ),
        (
            lambda c: hcm(c).update(
                internal_address_config={"cidr_ranges": [{"address_prefix": "::", "prefix_len": 129}]}
            ),
            HCM_PATH + ".internal_address_config.cidr_ranges[0].prefix_len",
            "must be at most 128",
        ),
        (
            lambda c: hcm(c).update(internal_address_config={"unix_sockets": True}),
            HCM_PATH + ".internal_address_config.unix_sockets",
            "listeners are TCP only",
        ),
    ],
)
def test_error_path_and_reason(mutate, path, reason):
    if path is None:
        path = ROUTE_PATH + ".match.safe_regex.regex"
    errors = errors_of(mutated(mutate))
    assert [r for p, r in errors if p == path and reason in r], errors


def test_unknown_retry_on_values_load_with_a_warning(caplog):
    # Envoy 1.40 accepts and ignores them; the warning names the YAML path and the value.
    c = mutated(lambda c: route(c)["route"].update(retry_policy={"retry_on": "5xx,5XX, connect-failure ,gateway_error"}))
    with caplog.at_level("WARNING", logger="pyevent_envoy.config"):
        policy = load(c).static_resources.listeners[0].filter_chains[0].http_connection_manager.route_config
    assert policy.virtual_hosts[0].routes[0].route.retry_policy.retry_on == "5xx,5XX, connect-failure ,gateway_error"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(ROUTE_PATH + ".route.retry_policy.retry_on: unknown retry_on value '5XX'")
    assert "'gateway_error'" in warnings[1]


def test_errors_inside_a_message_do_not_hide_its_siblings():
    def mutate(c):
        cluster(c).update(connect_timeout="soon", lb_policy="NONE", per_connection_buffer_limit_bytes=-5)
        hcm(c).update(stat_prefix="", max_request_headers_kb=0, bogus=True)
        route(c)["route"].update(cluster="ghost", timeout=3)
        vhost(c).update(domains=["x.*.y"])
        listener(c)["address"]["socket_address"].update(port_value=99999)

    errors = errors_of(mutated(mutate))
    assert [p for p, _ in errors] == [
        "static_resources.listeners[0].address.socket_address.port_value",
        HCM_PATH + ".bogus",
        HCM_PATH + ".stat_prefix",
        ROUTE_PATH + ".route.timeout",
        HCM_PATH + ".route_config.virtual_hosts[0].domains[0]",  # the route table is checked as a whole
        HCM_PATH + ".max_request_headers_kb",
        CLUSTER_PATH + ".connect_timeout",
        CLUSTER_PATH + ".lb_policy",
        CLUSTER_PATH + ".per_connection_buffer_limit_bytes",
        ROUTE_PATH + ".route.cluster",  # routes are checked against clusters last
    ]


def test_all_errors_are_reported_together_and_listed_in_str():
    c = base_config()
    hcm(c)["stat_prefix"] = ""
    route(c)["route"]["cluster"] = "ghost"
    cluster(c)["connect_timeout"] = 5
    c["static_resources"]["clusters"].append(copy.deepcopy(cluster(c)))
    with pytest.raises(ConfigErrors) as info:
        load(c)
    err = info.value
    expected = [
        (HCM_PATH + ".stat_prefix", "must not be empty"),
        (CLUSTER_PATH + ".connect_timeout", "expected a duration"),
        ("static_resources.clusters[1].connect_timeout", "expected a duration"),
        (ROUTE_PATH + ".route.cluster", "unknown cluster 'ghost'"),
    ]
    assert len(err) == len(err.errors) == len(expected)
    for e, (path, reason) in zip(err.errors, expected):
        assert e.path == path and reason in e.reason
    assert str(err).splitlines() == [f"{e.path}: {e.reason}" for e in err.errors]
    assert (err.path, err.reason) == (err.errors[0].path, err.errors[0].reason)
    assert list(err) == list(err.errors)


def test_duplicate_names_across_lists():
    def mutate(c):
        c["static_resources"]["clusters"].append(copy.deepcopy(cluster(c)))
        other = copy.deepcopy(listener(c))
        other["address"]["socket_address"]["port_value"] = 10001
        c["static_resources"]["listeners"].append(other)

    errors = errors_of(mutated(mutate))
    assert errors == [
        (
            "static_resources.listeners[1].name",
            "duplicate listener name 'ingress' (also static_resources.listeners[0])",
        ),
        ("static_resources.clusters[1].name", "duplicate cluster 'app' (also static_resources.clusters[0])"),
    ]


def test_duplicate_listener_address_normalizes_ipv6():
    def mutate(c):
        listener(c)["address"]["socket_address"]["address"] = "::1"
        other = copy.deepcopy(listener(c))
        other["name"] = "other"
        other["address"]["socket_address"]["address"] = "0:0:0:0:0:0:0:1"
        c["static_resources"]["listeners"].append(other)

    assert errors_of(mutated(mutate)) == [
        (
            "static_resources.listeners[1].address",
            "listener has duplicate address [::1]:10000 as static_resources.listeners[0]",
        )
    ]


def test_a_cluster_with_errors_is_not_also_reported_unknown():
    errors = errors_of(mutated(lambda c: cluster(c).update(connect_timeout="0s")))
    assert [p for p, _ in errors] == [CLUSTER_PATH + ".connect_timeout"]


def test_duplicate_yaml_key_is_an_error():
    text = dump(base_config()).replace("stat_prefix: ingress_http", "stat_prefix: a\n          stat_prefix: b", 1)
    assert "stat_prefix: b" in text
    with pytest.raises(ConfigError) as info:
        load_bootstrap(yaml_text=text)
    assert [(e.path, e.reason) for e in info.value.errors] == [(HCM_PATH + ".stat_prefix", "duplicate key")]


def test_exception_hierarchy_and_pickling():
    with pytest.raises(ConfigErrors) as info:
        load({"bogus": 1})
    err = info.value
    assert isinstance(err, ConfigError)
    assert isinstance(err, ValueError)
    assert isinstance(err, PyEventEnvoyError)
    single = err.errors[0]
    assert single.errors == (single,)
    assert str(single) == "bogus: unknown field of Bootstrap"
    assert str(ConfigError("", "whole config")) == "whole config"
    copy_ = pickle.loads(pickle.dumps(err))
    assert [(e.path, e.reason) for e in copy_.errors] == [(e.path, e.reason) for e in err.errors]
    assert (pickle.loads(pickle.dumps(single)).path, str(pickle.loads(pickle.dumps(single)))) == ("bogus", str(single))
    with pytest.raises(ValueError):
        ConfigErrors([])
