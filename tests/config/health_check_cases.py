"""Cases for cluster ``health_checks``; ``test_envoy_parity`` runs them under Envoy 1.40 and load_bootstrap.

VALID both accept, INVALID both reject (ours at the expected YAML path),
STRICTER Envoy accepts and pyevent-envoy refuses on purpose, naming the
field's YAML path and saying why.
"""

from __future__ import annotations

from config_helpers import CLUSTER_PATH, cluster

HC_PATH = CLUSTER_PATH + ".health_checks[0]"
HTTP_PATH = HC_PATH + ".http_health_check"
TCP_PATH = HC_PATH + ".tcp_health_check"


def _check(**fields):
    base = {"timeout": "1s", "interval": "0.2s", "unhealthy_threshold": 2, "healthy_threshold": 3}
    base.update(fields)
    if not any(key.endswith("_health_check") for key in base):
        base["http_health_check"] = {"path": "/healthz"}
    return {key: value for key, value in base.items() if value is not None}


def _with(*checks):
    def mutate(c):
        cluster(c)["health_checks"] = list(checks)

    return mutate


VALID = {
    "http-minimal": _with(_check()),
    "http-everything": _with(
        _check(
            interval_jitter="0.05s",
            interval_jitter_percent=10,
            initial_jitter="0.1s",
            no_traffic_interval="5s",
            no_traffic_healthy_interval="10s",
            unhealthy_interval="0.5s",
            unhealthy_edge_interval="0.3s",
            healthy_edge_interval="0.4s",
            reuse_connection=False,
            always_log_health_check_failures=True,
            always_log_health_check_success=True,
            http_health_check={
                "path": "/healthz?full=1",
                "host": "health.example",
                "request_headers_to_add": [
                    {"header": {"key": "x-probe", "value": "100%%"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                ],
                "request_headers_to_remove": ["user-agent"],
                "expected_statuses": [{"start": 200, "end": 300}],
                "retriable_statuses": [{"start": 503, "end": 504}],
                "codec_client_type": "HTTP1",
            },
        )
    ),
    "tcp-connect-only": _with(_check(tcp_health_check={})),
    "tcp-send-receive": _with(
        _check(tcp_health_check={"send": {"text": "50494e470a"}, "receive": [{"text": "504f"}, {"text": "4E4F"}]})
    ),
    "zero-thresholds": _with(_check(unhealthy_threshold=0, healthy_threshold=0)),
    "strict-dns": lambda c: (
        cluster(c).update(type="STRICT_DNS"),
        _with(_check(tcp_health_check={}))(c),
    ),
}

INVALID = {
    "no-timeout": (_with(_check(timeout=None)), HC_PATH + ".timeout"),
    "zero-timeout": (_with(_check(timeout="0s")), HC_PATH + ".timeout"),
    "no-interval": (_with(_check(interval=None)), HC_PATH + ".interval"),
    "no-unhealthy-threshold": (_with(_check(unhealthy_threshold=None)), HC_PATH + ".unhealthy_threshold"),
    "no-healthy-threshold": (_with(_check(healthy_threshold=None)), HC_PATH + ".healthy_threshold"),
    "zero-no-traffic-interval": (_with(_check(no_traffic_interval="0s")), HC_PATH + ".no_traffic_interval"),
    "zero-unhealthy-interval": (_with(_check(unhealthy_interval="0s")), HC_PATH + ".unhealthy_interval"),
    "no-checker": (
        _with({"timeout": "1s", "interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1}),
        HC_PATH,
    ),
    "two-checkers": (
        _with(_check(tcp_health_check={}, http_health_check={"path": "/h"})),
        HC_PATH + ".tcp_health_check",
    ),
    "empty-path": (_with(_check(http_health_check={"path": ""})), HTTP_PATH + ".path"),
    "no-path": (_with(_check(http_health_check={"host": "x"})), HTTP_PATH + ".path"),
    "status-range-end-past-600": (
        _with(_check(http_health_check={"path": "/h", "expected_statuses": [{"start": 200, "end": 700}]})),
        HTTP_PATH + ".expected_statuses[0]",
    ),
    "status-range-reversed": (
        _with(_check(http_health_check={"path": "/h", "retriable_statuses": [{"start": 503, "end": 500}]})),
        HTTP_PATH + ".retriable_statuses[0]",
    ),
    "status-range-below-100": (
        _with(_check(http_health_check={"path": "/h", "expected_statuses": [{"start": 0, "end": 200}]})),
        HTTP_PATH + ".expected_statuses[0]",
    ),
    "bad-hex": (_with(_check(tcp_health_check={"send": {"text": "zz"}})), TCP_PATH + ".send.text"),
    "odd-hex": (_with(_check(tcp_health_check={"receive": [{"text": "abc"}]})), TCP_PATH + ".receive[0].text"),
    "unknown-field": (_with(_check(intervall="1s")), HC_PATH + ".intervall"),
    # Envoy: "app cluster must support HTTP/2 for gRPC healthchecking"; ours refuses the field.
    "grpc": (_with(_check(grpc_health_check={})), HC_PATH + ".grpc_health_check"),
    "host-header-added": (
        _with(_check(http_health_check={"path": "/h", "request_headers_to_add": [{"header": {"key": "host", "value": "x"}}]})),
        HTTP_PATH + ".request_headers_to_add[0].header.key",
    ),
}

STRICTER = {
    "custom": (
        _with(_check(custom_health_check={"name": "envoy.health_checkers.redis", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.health_checkers.redis.v3.Redis"}})),
        HC_PATH + ".custom_health_check",
    ),
    "event-log-path": (_with(_check(event_log_path="/dev/null")), HC_PATH + ".event_log_path"),
    "tls-options": (_with(_check(tls_options={"alpn_protocols": ["h2"]})), HC_PATH + ".tls_options"),
    "named": (_with(_check(name="primary")), HC_PATH + ".name"),
    "two-health-checks": (
        _with(_check(name="a"), _check(name="b", tcp_health_check={})),
        CLUSTER_PATH + ".health_checks[1]",
    ),
    "http-method": (_with(_check(http_health_check={"path": "/h", "method": "HEAD"})), HTTP_PATH + ".method"),
    "http-receive": (
        _with(_check(http_health_check={"path": "/h", "receive": [{"text": "4f4b"}]})),
        HTTP_PATH + ".receive",
    ),
    "http-service-name-matcher": (
        _with(_check(http_health_check={"path": "/h", "service_name_matcher": {"exact": "app"}})),
        HTTP_PATH + ".service_name_matcher",
    ),
    "http2": (
        _with(_check(http_health_check={"path": "/h", "codec_client_type": "HTTP2"})),
        HTTP_PATH + ".codec_client_type",
    ),
    "header-command-operator": (
        _with(_check(http_health_check={"path": "/h", "request_headers_to_add": [
            {"header": {"key": "x-up", "value": "%UPSTREAM_REMOTE_ADDRESS%"}}]})),
        HTTP_PATH + ".request_headers_to_add[0].header.value",
    ),
    "payload-binary": (_with(_check(tcp_health_check={"send": {"binary": "AAE="}})), TCP_PATH + ".send.binary"),
    "ignore-health-on-host-removal": (
        lambda c: cluster(c).update(ignore_health_on_host_removal=True),
        CLUSTER_PATH + ".ignore_health_on_host_removal",
    ),
}


# Refused here; not run under Envoy 1.40, whose --mode validate crashes (SIGSEGV) on it.
REFUSED_ONLY = {
    "tcp-proxy-protocol": (
        _with(_check(tcp_health_check={"proxy_protocol_config": {"version": "V1"}})),
        TCP_PATH + ".proxy_protocol_config",
    ),
}
