"""The same YAML under Envoy 1.40 (``envoy --mode validate``) and under load_bootstrap.

- the shipped examples: both accept;
- VALID: both accept;
- INVALID: both reject, and ours names the expected YAML path;
- STRICTER: Envoy accepts, pyevent-envoy rejects on purpose (unsupported or
  ambiguous configuration), so the documented differences stay true.

The Envoy half is skipped when Envoy 1.40 is not on PATH; the pyevent-envoy
half always runs.
"""

from __future__ import annotations

import copy

import filter_body_cases
import health_check_cases
import http_filter_cases
import outlier_detection_cases
import pytest
import tls_cases
from config_helpers import (
    CLUSTER_PATH,
    ENDPOINT_PATH,
    EXAMPLES,
    FILE_LOG_TYPE,
    HCM_PATH,
    ROUTE_PATH,
    cluster,
    dump,
    endpoint_address,
    envoy_validate,
    error_paths,
    hcm,
    listener,
    load,
    mutated,
    route,
    route_config,
    vhost,
)

from pyevent_envoy.config import load_bootstrap

pytestmark = pytest.mark.timeout(300)

EXAMPLE_FILES = sorted(EXAMPLES.glob("envoy-*.yaml"))
UPSTREAM_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
VH_PATH = HCM_PATH + ".route_config.virtual_hosts[0]"


def _dns_host(kind):
    def mutate(c):
        cluster(c)["type"] = kind
        endpoint_address(c)["address"] = "localhost"

    return mutate


def _second_listener(name, address="127.0.0.1", port=10000):
    def mutate(c):
        other = copy.deepcopy(listener(c))
        other["name"] = name
        other["address"]["socket_address"].update(address=address, port_value=port)
        c["static_resources"]["listeners"].append(other)

    return mutate


def _second_vhost(name, domains):
    def mutate(c):
        other = copy.deepcopy(vhost(c))
        other.update(name=name, domains=domains)
        route_config(c)["virtual_hosts"].append(other)

    return mutate


def _direct(body=None, status=200):
    def mutate(c):
        route(c).pop("route")
        route(c)["direct_response"] = {"status": status, **({"body": body} if body is not None else {})}

    return mutate


def _redirect(**redirect):
    def mutate(c):
        route(c).pop("route")
        route(c)["redirect"] = redirect

    return mutate


def _access_log(**typed):
    return lambda c: hcm(c).update(
        access_log=[{"name": "envoy.access_loggers.file", "typed_config": {"@type": FILE_LOG_TYPE, **typed}}]
    )


def _add_header(key, value, **extra):
    return lambda c: route_config(c).update(request_headers_to_add=[{"header": {"key": key, "value": value}, **extra}])


def _regex(regex):
    return lambda c: route(c).update(match={"safe_regex": {"regex": regex}})


def _upgrades_on_hcm(*configs):
    return lambda c: hcm(c).update(upgrade_configs=list(configs))


def _upgrades_on_route(*configs):
    return lambda c: route(c)["route"].update(upgrade_configs=list(configs))


def _retry_policy(**policy):
    return lambda c: route(c)["route"].update(retry_policy=policy)


def _internal_addresses(*ranges, **extra):
    return lambda c: hcm(c).update(internal_address_config={"cidr_ranges": list(ranges), **extra})


VALID = {
    "base": lambda c: None,
    "hcm-upgrade-websocket": _upgrades_on_hcm({"upgrade_type": "websocket"}),
    "hcm-upgrade-disabled-and-other-type": _upgrades_on_hcm(
        {"upgrade_type": "websocket", "enabled": False}, {"upgrade_type": "x-custom", "enabled": True}
    ),
    "hcm-upgrade-empty-type": _upgrades_on_hcm({}),
    "route-upgrade-override": lambda c: (
        _upgrades_on_hcm({"upgrade_type": "websocket"})(c),
        _upgrades_on_route({"upgrade_type": "WebSocket", "enabled": False})(c),
    ),
    "route-upgrade-without-hcm": _upgrades_on_route({"upgradeType": "websocket"}),
    "camel-case-field-names": lambda c: hcm(c).update(statPrefix=hcm(c).pop("stat_prefix")),
    "enum-by-number": lambda c: cluster(c).update(lb_policy=1),
    "enum-any-case": lambda c: cluster(c).update(lb_policy="least_request"),
    "integer-as-string": lambda c: endpoint_address(c).update(port_value="8080"),
    "bool-as-string": lambda c: hcm(c).update(use_remote_address="true"),
    "duration-object": lambda c: cluster(c).update(connect_timeout={"seconds": 1, "nanos": 500000000}),
    "duration-nanos": lambda c: cluster(c).update(connect_timeout="0.000000001s"),
    "null-is-unset": lambda c: hcm(c).update(server_name=None, common_http_protocol_options=None),
    "unnamed-listener": lambda c: listener(c).pop("name"),
    "listener-port-0-twice": lambda c: (
        listener(c)["address"]["socket_address"].update(port_value=0),
        _second_listener("other", port=0)(c),
    ),
    "ipv6-endpoint": lambda c: endpoint_address(c).update(address="::1"),
    "strict-dns-hostname": _dns_host("STRICT_DNS"),
    "logical-dns-hostname": _dns_host("LOGICAL_DNS"),
    "static-without-endpoints": lambda c: cluster(c).pop("load_assignment"),
    "router-any-name": lambda c: hcm(c)["http_filters"][0].update(name="router"),
    "hcm-any-name": lambda c: listener(c)["filter_chains"][0]["filters"][0].update(name="hcm"),
    "empty-prefix": lambda c: route(c)["match"].update(prefix=""),
    "empty-domain": lambda c: vhost(c).update(domains=[""]),
    "duplicate-vhost-names": _second_vhost("app", ["example.com"]),
    "regex-re2-syntax": _regex(r"/(?<id>[[:digit:]]+)/\Q.x\E\z"),
    "header-matchers": lambda c: route(c)["match"].update(
        headers=[
            {"name": "x-a"},
            {"name": "x-b", "present_match": False},
            {"name": "x-c", "exact_match": "1"},
            {"name": "x-d", "string_match": {"suffix": "z", "ignore_case": True}, "invert_match": True},
            {"name": "x-e", "safe_regex_match": {"regex": "a+"}},
        ]
    ),
    "weighted-clusters": lambda c: route(c).update(
        route={"weighted_clusters": {"clusters": [{"name": "app", "weight": 0}, {"name": "app", "weight": 2}]}}
    ),
    "direct-response-4096-bytes": _direct({"inline_string": "x" * 4096}),
    "direct-response-bytes": _direct({"inline_bytes": "aGk="}),
    "redirect-defaults": _redirect(),
    "redirect-all-fields": _redirect(
        scheme_redirect="https",
        host_redirect="example.com",
        port_redirect=8443,
        prefix_rewrite="/new/",
        response_code="TEMPORARY_REDIRECT",
        strip_query=True,
    ),
    "header-format-commands": _add_header("x-client", "%DOWNSTREAM_REMOTE_ADDRESS% %REQ(user-agent?x-ua):10% 100%%"),
    "deprecated-append": _add_header("x-a", "1", append=False),
    "access-log-json": _access_log(path="/dev/null", log_format={"json_format": {"a": "%PROTOCOL%", "n": {"b": 1}}}),
    "access-log-deprecated-format": _access_log(path="/dev/null", format="%RESPONSE_CODE%\n"),
    "upstream-http1": lambda c: cluster(c).update(
        typed_extension_protocol_options={
            UPSTREAM_OPTIONS: {
                "@type": "type.googleapis.com/" + UPSTREAM_OPTIONS,
                "explicit_http_config": {"http_protocol_options": {}},
            }
        }
    ),
    "empty-bootstrap": lambda c: c.clear(),
    "retry-policy-every-field": _retry_policy(
        retry_on="5xx,gateway-error,reset,reset-before-request,connect-failure,envoy-ratelimited,retriable-4xx,"
        "refused-stream,retriable-status-codes,retriable-headers,http3-post-connect-failure,cancelled,"
        "deadline-exceeded,internal,resource-exhausted,unavailable",
        num_retries=3,
        per_try_timeout="0.5s",
        retry_back_off={"base_interval": "0.1s", "max_interval": "1s"},
        retriable_status_codes=[418, "429"],
        retriable_headers=[{"name": "x-retry"}],
        retriable_request_headers=[{"name": ":method", "string_match": {"exact": "GET"}}],
        host_selection_retry_max_attempts=-3,
    ),
    "retry-policy-empty": _retry_policy(),
    "retry-policy-on-virtual-host": lambda c: vhost(c).update(retry_policy={"retry_on": "5xx", "num_retries": 0}),
    # Envoy ignores values it does not know (case matters): pyevent-envoy too, with a warning.
    "retry-on-unknown-values": _retry_policy(retry_on="5XX, bogus,,reset "),
    "retry-back-off-sub-millisecond": _retry_policy(retry_back_off={"base_interval": "0.0001s"}),
    "retry-back-off-equal": _retry_policy(retry_back_off={"base_interval": "1s", "max_interval": "1s"}),
    "retry-per-try-timeout-zero": _retry_policy(per_try_timeout="0s"),
    "internal-address-config": _internal_addresses(
        {"address_prefix": "10.0.0.0", "prefix_len": 8}, {"address_prefix": "fd00::", "prefix_len": 8}
    ),
    "internal-address-prefix-len-over-32": _internal_addresses({"address_prefix": "127.0.0.1", "prefix_len": 33}),
    "internal-address-no-prefix-len": _internal_addresses({"address_prefix": "127.0.0.1"}),
    "stats-flush-interval": lambda c: c.update(stats_flush_interval="0.25s"),
    "stats-flush-interval-shortest": lambda c: c.update(stats_flush_interval="0.001s"),
    "stats-flush-interval-longest": lambda c: c.update(stats_flush_interval="299.999s"),
}

INVALID = {
    "unknown-field": (lambda c: hcm(c).update(stat_prfix="x"), HCM_PATH + ".stat_prfix"),
    "hcm-upgrade-unknown-field": (
        _upgrades_on_hcm({"upgrade_type": "websocket", "bogus": 1}),
        HCM_PATH + ".upgrade_configs[0].bogus",
    ),
    "hcm-upgrade-duplicate-any-case": (
        _upgrades_on_hcm({"upgrade_type": "websocket"}, {"upgrade_type": "WebSocket"}),
        HCM_PATH + ".upgrade_configs[1].upgrade_type",
    ),
    "route-upgrade-duplicate-any-case": (
        _upgrades_on_route({"upgrade_type": "websocket"}, {"upgrade_type": "WEBSOCKET"}),
        ROUTE_PATH + ".route.upgrade_configs[1].upgrade_type",
    ),
    "route-upgrade-empty-type": (
        _upgrades_on_route({"upgrade_type": ""}),
        ROUTE_PATH + ".route.upgrade_configs[0].upgrade_type",
    ),
    "route-upgrade-missing-type": (
        _upgrades_on_route({"enabled": True}),
        ROUTE_PATH + ".route.upgrade_configs[0].upgrade_type",
    ),
    "route-upgrade-type-with-newline": (
        _upgrades_on_route({"upgrade_type": "web\nsocket"}),
        ROUTE_PATH + ".route.upgrade_configs[0].upgrade_type",
    ),
    "route-upgrade-connect-config-on-websocket": (
        _upgrades_on_route({"upgrade_type": "websocket", "connect_config": {}}),
        ROUTE_PATH + ".route.upgrade_configs[0].connect_config",
    ),
    "duplicate-cluster": (
        lambda c: c["static_resources"]["clusters"].append(copy.deepcopy(cluster(c))),
        "static_resources.clusters[1].name",
    ),
    "duplicate-listener-address": (_second_listener("other"), "static_resources.listeners[1].address"),
    "unknown-cluster": (lambda c: route(c)["route"].update(cluster="nope"), ROUTE_PATH + ".route.cluster"),
    "unknown-weighted-cluster": (
        lambda c: route(c).update(route={"weighted_clusters": {"clusters": [{"name": "nope", "weight": 1}]}}),
        ROUTE_PATH + ".route.weighted_clusters.clusters[0].name",
    ),
    "weights-sum-zero": (
        lambda c: route(c).update(route={"weighted_clusters": {"clusters": [{"name": "app", "weight": 0}]}}),
        ROUTE_PATH + ".route.weighted_clusters.clusters",
    ),
    "weights-overflow": (
        lambda c: route(c).update(
            route={"weighted_clusters": {"clusters": [{"name": "app", "weight": 4294967295}, {"name": "app", "weight": 1}]}}
        ),
        ROUTE_PATH + ".route.weighted_clusters.clusters",
    ),
    "weight-missing": (
        lambda c: route(c).update(route={"weighted_clusters": {"clusters": [{"name": "app"}]}}),
        ROUTE_PATH + ".route.weighted_clusters.clusters[0].weight",
    ),
    "no-action": (lambda c: route(c).pop("route"), ROUTE_PATH),
    "two-actions": (lambda c: route(c).update(direct_response={"status": 200}), ROUTE_PATH + ".direct_response"),
    "no-path-specifier": (lambda c: route(c).update(match={}), ROUTE_PATH + ".match"),
    "regex-backreference": (_regex(r"(a)\1"), ROUTE_PATH + ".match.safe_regex.regex"),
    "regex-lookahead": (_regex("a(?=b)"), ROUTE_PATH + ".match.safe_regex.regex"),
    "regex-syntax": (_regex("a("), ROUTE_PATH + ".match.safe_regex.regex"),
    "regex-repeat-limit": (_regex("a{1,1001}"), ROUTE_PATH + ".match.safe_regex.regex"),
    "duplicate-wildcard-domain": (_second_vhost("other", ["*"]), HCM_PATH + ".route_config.virtual_hosts[1].domains[0]"),
    "duplicate-domain-any-case": (
        lambda c: (vhost(c).update(domains=["Example.com"]), _second_vhost("other", ["example.COM"])(c)),
        HCM_PATH + ".route_config.virtual_hosts[1].domains[0]",
    ),
    "no-domains": (lambda c: vhost(c).update(domains=[]), VH_PATH + ".domains"),
    "router-missing-typed-config": (
        lambda c: hcm(c)["http_filters"][0].pop("typed_config"),
        HCM_PATH + ".http_filters[0].typed_config",
    ),
    "router-not-last": (
        lambda c: hcm(c)["http_filters"].append(copy.deepcopy(hcm(c)["http_filters"][0])),
        HCM_PATH + ".http_filters[0]",
    ),
    "hcm-missing-type": (lambda c: hcm(c).pop("@type"), HCM_PATH + ".@type"),
    "hcm-wrong-type": (lambda c: hcm(c).update({"@type": hcm(c)["@type"] + "X"}), HCM_PATH + ".@type"),
    "no-route-config": (lambda c: hcm(c).pop("route_config"), HCM_PATH),
    "empty-stat-prefix": (lambda c: hcm(c).update(stat_prefix=""), HCM_PATH + ".stat_prefix"),
    "max-request-headers-kb": (lambda c: hcm(c).update(max_request_headers_kb=8193), HCM_PATH + ".max_request_headers_kb"),
    "no-filter-chains": (lambda c: listener(c).update(filter_chains=[]), "static_resources.listeners[0].filter_chains"),
    "two-filter-chains": (
        lambda c: listener(c)["filter_chains"].append(copy.deepcopy(listener(c)["filter_chains"][0])),
        "static_resources.listeners[0].filter_chains[1]",
    ),
    "listener-hostname": (
        lambda c: listener(c)["address"]["socket_address"].update(address="localhost"),
        "static_resources.listeners[0].address.socket_address.address",
    ),
    "listener-no-address": (lambda c: listener(c).pop("address"), "static_resources.listeners[0].address"),
    "admin-hostname": (
        lambda c: c["admin"]["address"]["socket_address"].update(address="localhost"),
        "admin.address.socket_address.address",
    ),
    "port-out-of-range": (lambda c: endpoint_address(c).update(port_value=65536), ENDPOINT_PATH + ".port_value"),
    "port-negative": (lambda c: endpoint_address(c).update(port_value=-1), ENDPOINT_PATH + ".port_value"),
    "port-missing": (lambda c: endpoint_address(c).pop("port_value"), ENDPOINT_PATH),
    "static-hostname": (lambda c: endpoint_address(c).update(address="localhost"), ENDPOINT_PATH + ".address"),
    "ipv4-leading-zero": (lambda c: endpoint_address(c).update(address="127.000.0.1"), ENDPOINT_PATH + ".address"),
    "logical-dns-two-endpoints": (
        lambda c: (
            _dns_host("LOGICAL_DNS")(c),
            cluster(c)["load_assignment"]["endpoints"][0]["lb_endpoints"].append(
                copy.deepcopy(cluster(c)["load_assignment"]["endpoints"][0]["lb_endpoints"][0])
            ),
        ),
        CLUSTER_PATH + ".load_assignment",
    ),
    "connect-timeout-zero": (lambda c: cluster(c).update(connect_timeout="0s"), CLUSTER_PATH + ".connect_timeout"),
    "duration-integer": (lambda c: cluster(c).update(connect_timeout=5), CLUSTER_PATH + ".connect_timeout"),
    "duration-ms-suffix": (lambda c: cluster(c).update(connect_timeout="5ms"), CLUSTER_PATH + ".connect_timeout"),
    "duration-negative": (lambda c: route(c)["route"].update(timeout="-1s"), ROUTE_PATH + ".route.timeout"),
    "duration-out-of-range": (
        lambda c: route(c)["route"].update(timeout="9223372036s"),
        ROUTE_PATH + ".route.timeout",
    ),
    "dns-refresh-1ms": (
        lambda c: (_dns_host("STRICT_DNS")(c), cluster(c).update(dns_refresh_rate="0.001s")),
        CLUSTER_PATH + ".dns_refresh_rate",
    ),
    "enum-undefined": (lambda c: cluster(c).update(lb_policy="FASTEST"), CLUSTER_PATH + ".lb_policy"),
    "enum-undefined-number": (lambda c: cluster(c).update(lb_policy=4), CLUSTER_PATH + ".lb_policy"),
    "string-given-integer": (lambda c: hcm(c).update(server_name=123), HCM_PATH + ".server_name"),
    "bool-given-integer": (lambda c: hcm(c).update(use_remote_address=1), HCM_PATH + ".use_remote_address"),
    "endpoint-weight-zero": (
        lambda c: cluster(c)["load_assignment"]["endpoints"][0]["lb_endpoints"][0].update(load_balancing_weight=0),
        CLUSTER_PATH + ".load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight",
    ),
    "load-assignment-no-name": (
        lambda c: cluster(c)["load_assignment"].pop("cluster_name"),
        CLUSTER_PATH + ".load_assignment.cluster_name",
    ),
    "header-add-pseudo": (_add_header(":path", "/x"), HCM_PATH + ".route_config.request_headers_to_add[0].header.key"),
    "header-add-host": (_add_header("Host", "x"), HCM_PATH + ".route_config.request_headers_to_add[0].header.key"),
    "header-remove-host": (
        lambda c: route_config(c).update(request_headers_to_remove=["host"]),
        HCM_PATH + ".route_config.request_headers_to_remove[0]",
    ),
    "header-append-and-append-action": (
        _add_header("x-a", "1", append=True, append_action="ADD_IF_ABSENT"),
        HCM_PATH + ".route_config.request_headers_to_add[0].append_action",
    ),
    "header-lone-percent": (_add_header("x-a", "50%"), HCM_PATH + ".route_config.request_headers_to_add[0].header.value"),
    "header-unknown-command": (
        _add_header("x-a", "%NO_SUCH_COMMAND%"),
        HCM_PATH + ".route_config.request_headers_to_add[0].header.value",
    ),
    "header-command-bad-argument": (
        _add_header("x-a", "%RESPONSE_CODE(x)%"),
        HCM_PATH + ".route_config.request_headers_to_add[0].header.value",
    ),
    "header-value-newline": (_add_header("x-a", "a\nb"), HCM_PATH + ".route_config.request_headers_to_add[0].header.value"),
    "direct-response-status": (_direct(status=199), ROUTE_PATH + ".direct_response.status"),
    "direct-response-too-big": (_direct({"inline_string": "x" * 4097}), ROUTE_PATH + ".direct_response.body"),
    "redirect-two-schemes": (
        _redirect(https_redirect=True, scheme_redirect="http"),
        ROUTE_PATH + ".redirect.scheme_redirect",
    ),
    "redirect-bad-code": (_redirect(response_code="OK"), ROUTE_PATH + ".redirect.response_code"),
    "host-rewrite-two": (
        lambda c: route(c)["route"].update(host_rewrite_literal="a", auto_host_rewrite=True),
        ROUTE_PATH + ".route.auto_host_rewrite",
    ),
    "access-log-no-path": (_access_log(), HCM_PATH + ".access_log[0].typed_config.path"),
    "access-log-bad-command": (
        _access_log(path="/dev/null", log_format={"text_format": "%NOPE%"}),
        HCM_PATH + ".access_log[0].typed_config.log_format.text_format",
    ),
    "string-matcher-empty-prefix": (
        lambda c: route(c)["match"].update(headers=[{"name": "x", "string_match": {"prefix": ""}}]),
        ROUTE_PATH + ".match.headers[0].string_match.prefix",
    ),
    "upstream-options-wrong-key": (
        lambda c: cluster(c).update(typed_extension_protocol_options={"foo": {}}),
        CLUSTER_PATH + ".typed_extension_protocol_options.foo",
    ),
    "unknown-top-level-field": (lambda c: c.update(stats_sink=[]), "stats_sink"),
    "retry-unknown-field": (_retry_policy(retry_on="5xx", bogus=1), ROUTE_PATH + ".route.retry_policy.bogus"),
    "retry-on-not-a-string": (_retry_policy(retry_on=5), ROUTE_PATH + ".route.retry_policy.retry_on"),
    "retry-num-retries-negative": (_retry_policy(num_retries=-1), ROUTE_PATH + ".route.retry_policy.num_retries"),
    "retry-per-try-timeout-negative": (
        _retry_policy(per_try_timeout="-1s"),
        ROUTE_PATH + ".route.retry_policy.per_try_timeout",
    ),
    "retry-status-code-negative": (
        _retry_policy(retriable_status_codes=[-1]),
        ROUTE_PATH + ".route.retry_policy.retriable_status_codes[0]",
    ),
    "retry-back-off-without-base": (
        _retry_policy(retry_back_off={"max_interval": "1s"}),
        ROUTE_PATH + ".route.retry_policy.retry_back_off.base_interval",
    ),
    "retry-back-off-base-zero": (
        _retry_policy(retry_back_off={"base_interval": "0s"}),
        ROUTE_PATH + ".route.retry_policy.retry_back_off.base_interval",
    ),
    "retry-back-off-max-zero": (
        _retry_policy(retry_back_off={"base_interval": "1s", "max_interval": "0s"}),
        ROUTE_PATH + ".route.retry_policy.retry_back_off.max_interval",
    ),
    "retry-back-off-max-below-base": (
        _retry_policy(retry_back_off={"base_interval": "1s", "max_interval": "0.5s"}),
        ROUTE_PATH + ".route.retry_policy.retry_back_off.max_interval",
    ),
    "retry-policy-on-virtual-host-bad": (
        lambda c: vhost(c).update(retry_policy={"num_retries": "many"}),
        VH_PATH + ".retry_policy.num_retries",
    ),
    "internal-address-malformed": (
        _internal_addresses({"address_prefix": "10.0.0", "prefix_len": 8}),
        HCM_PATH + ".internal_address_config.cidr_ranges[0].address_prefix",
    ),
    "internal-address-host-name": (
        _internal_addresses({"address_prefix": "localhost", "prefix_len": 8}),
        HCM_PATH + ".internal_address_config.cidr_ranges[0].address_prefix",
    ),
    "internal-address-prefix-len-129": (
        _internal_addresses({"address_prefix": "::", "prefix_len": 129}),
        HCM_PATH + ".internal_address_config.cidr_ranges[0].prefix_len",
    ),
    "internal-address-no-prefix": (
        _internal_addresses({"prefix_len": 8}),
        HCM_PATH + ".internal_address_config.cidr_ranges[0].address_prefix",
    ),
    "stats-flush-interval-too-short": (lambda c: c.update(stats_flush_interval="0.0009s"), "stats_flush_interval"),
    "stats-flush-interval-300s": (lambda c: c.update(stats_flush_interval="300s"), "stats_flush_interval"),
    "stats-flush-interval-not-a-duration": (lambda c: c.update(stats_flush_interval=5), "stats_flush_interval"),
}

# Envoy accepts these; pyevent-envoy rejects them on purpose.
STRICTER = {
    # Stats are flushed on the timer only.
    "stats-flush-on-admin": (lambda c: c.update(stats_flush_on_admin=True), "stats_flush_on_admin"),
    "hcm-upgrade-filters": (
        _upgrades_on_hcm({"upgrade_type": "websocket", "filters": []}),
        HCM_PATH + ".upgrade_configs[0].filters",  # a separate filter chain for upgrades
    ),
    "hcm-upgrade-connect": (
        _upgrades_on_hcm({"upgrade_type": "CONNECT"}),
        HCM_PATH + ".upgrade_configs[0].upgrade_type",  # CONNECT tunnels are not supported
    ),
    "route-upgrade-connect": (
        _upgrades_on_route({"upgrade_type": "CONNECT", "connect_config": {}}),
        ROUTE_PATH + ".route.upgrade_configs[0].upgrade_type",
    ),
    "duplicate-listener-name": (
        _second_listener("ingress", port=10001),
        "static_resources.listeners[1].name",  # Envoy silently drops the second listener
    ),
    "wildcard-in-middle": (
        lambda c: vhost(c).update(domains=["api.*.example.com"]),
        VH_PATH + ".domains[0]",  # Envoy treats it as a literal host name
    ),
    "no-http-filters": (
        lambda c: hcm(c).update(http_filters=[]),
        HCM_PATH + ".http_filters",  # Envoy accepts it, then cannot answer any request
    ),
    "unsupported-codec": (lambda c: hcm(c).update(codec_type="HTTP2"), HCM_PATH + ".codec_type"),
    "unsupported-lb-policy": (lambda c: cluster(c).update(lb_policy="RING_HASH"), CLUSTER_PATH + ".lb_policy"),
    "unsupported-field": (
        lambda c: route(c)["route"].update(hedge_policy={"hedge_on_per_try_timeout": True}),
        ROUTE_PATH + ".route.hedge_policy",
    ),
    "retry-per-try-idle-timeout": (
        _retry_policy(retry_on="5xx", per_try_idle_timeout="1s"),
        ROUTE_PATH + ".route.retry_policy.per_try_idle_timeout",
    ),
    "retry-host-predicate": (
        _retry_policy(retry_on="5xx", retry_host_predicate=[]),
        ROUTE_PATH + ".route.retry_policy.retry_host_predicate",
    ),
    "retry-rate-limited-back-off": (
        _retry_policy(retry_on="5xx", rate_limited_retry_back_off={"reset_headers": [{"name": "retry-after"}]}),
        ROUTE_PATH + ".route.retry_policy.rate_limited_retry_back_off",
    ),
    "retry-policy-typed-config": (
        lambda c: vhost(c).update(retry_policy_typed_config={}),
        VH_PATH + ".retry_policy_typed_config",
    ),
    "internal-address-unix-sockets": (
        lambda c: hcm(c).update(internal_address_config={"unix_sockets": True}),
        HCM_PATH + ".internal_address_config.unix_sockets",
    ),
    "router-options": (
        lambda c: hcm(c)["http_filters"][0]["typed_config"].update(suppress_envoy_headers=True),
        HCM_PATH + ".http_filters[0].typed_config.suppress_envoy_headers",
    ),
    "type-url-other-prefix": (
        lambda c: hcm(c).update({"@type": hcm(c)["@type"].replace("type.googleapis.com", "example.com")}),
        HCM_PATH + ".@type",
    ),
    "redirect-port-out-of-range": (_redirect(port_redirect=70000), ROUTE_PATH + ".redirect.port_redirect"),
    "deprecated-total-weight": (
        lambda c: route(c).update(
            route={"weighted_clusters": {"clusters": [{"name": "app", "weight": 1}], "total_weight": 100}}
        ),
        ROUTE_PATH + ".route.weighted_clusters.total_weight",
    ),
    "both-spellings": (lambda c: hcm(c).update(statPrefix="other"), HCM_PATH + ".statPrefix"),
    "empty-network-filters": (
        lambda c: listener(c)["filter_chains"][0].update(filters=[]),
        "static_resources.listeners[0].filter_chains[0].filters",
    ),
    "duplicate-circuit-breaker-priority": (
        lambda c: cluster(c).update(circuit_breakers={"thresholds": [{"max_connections": 1}, {"max_connections": 2}]}),
        CLUSTER_PATH + ".circuit_breakers.thresholds[1].priority",
    ),
    "unicode-regex-class": (_regex(r"/\pL+"), ROUTE_PATH + ".match.safe_regex.regex"),
}


for _prefix, _cases in (
    ("health-check", health_check_cases),
    ("outlier-detection", outlier_detection_cases),
    ("http-filter", http_filter_cases),
    ("filter-body", filter_body_cases),
    ("tls", tls_cases),
):
    VALID.update({f"{_prefix}-{name}": case for name, case in _cases.VALID.items()})
    INVALID.update({f"{_prefix}-{name}": case for name, case in _cases.INVALID.items()})
    STRICTER.update({f"{_prefix}-{name}": case for name, case in _cases.STRICTER.items()})


def _write(tmp_path, c):
    path = tmp_path / "envoy.yaml"
    path.write_text(dump(c))
    return path


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_loads(example):
    bootstrap = load_bootstrap(example)
    assert bootstrap.static_resources.listeners


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_envoy_validates(example):
    accepted, output = envoy_validate(example)
    assert accepted, output


def test_examples_exist():
    assert len(EXAMPLE_FILES) >= 3


@pytest.mark.parametrize("mutate", VALID.values(), ids=VALID.keys())
def test_valid_we_accept(mutate):
    load(mutated(mutate))


@pytest.mark.parametrize("mutate", VALID.values(), ids=VALID.keys())
def test_valid_envoy_accepts(mutate, tmp_path):
    accepted, output = envoy_validate(_write(tmp_path, mutated(mutate)))
    assert accepted, output


@pytest.mark.parametrize(("mutate", "path"), INVALID.values(), ids=INVALID.keys())
def test_invalid_we_reject_at_path(mutate, path):
    assert path in error_paths(mutated(mutate))


@pytest.mark.parametrize(("mutate", "path"), INVALID.values(), ids=INVALID.keys())
def test_invalid_envoy_rejects(mutate, path, tmp_path):
    accepted, _ = envoy_validate(_write(tmp_path, mutated(mutate)))
    assert not accepted


@pytest.mark.parametrize(("mutate", "path"), STRICTER.values(), ids=STRICTER.keys())
def test_stricter_we_reject_at_path(mutate, path):
    assert path in error_paths(mutated(mutate))


@pytest.mark.parametrize(("mutate", "path"), STRICTER.values(), ids=STRICTER.keys())
def test_stricter_envoy_accepts(mutate, path, tmp_path):
    accepted, output = envoy_validate(_write(tmp_path, mutated(mutate)))
    assert accepted, output
