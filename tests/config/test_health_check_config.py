"""Cluster ``health_checks`` and ``outlier_detection``: what ``load_bootstrap`` reads, and how it says no.

The accept/reject cases shared with Envoy 1.40 are in ``health_check_cases``
and ``outlier_detection_cases`` (run by ``test_envoy_parity``).
"""

from __future__ import annotations

import pytest
from config_helpers import CLUSTER_PATH, error_paths, errors_of, load, mutated
from health_check_cases import HC_PATH, HTTP_PATH, INVALID, REFUSED_ONLY, STRICTER, VALID
from outlier_detection_cases import OD_PATH
from outlier_detection_cases import STRICTER as OD_STRICTER
from outlier_detection_cases import VALID as OD_VALID

from pyevent_envoy.config import bootstrap as b


@pytest.mark.parametrize(("mutate", "path"), REFUSED_ONLY.values(), ids=REFUSED_ONLY.keys())
def test_refused_at_path(mutate, path):
    assert path in error_paths(mutated(mutate))


def test_refusals_say_why():
    reasons = dict(errors_of(mutated(INVALID["grpc"][0])))
    assert "grpc_health_check is not supported by pyevent-envoy" in reasons[HC_PATH + ".grpc_health_check"]
    reasons = dict(errors_of(mutated(STRICTER["two-health-checks"][0])))
    assert "one health check per cluster" in reasons[CLUSTER_PATH + ".health_checks[1]"]
    reasons = dict(errors_of(mutated(STRICTER["header-command-operator"][0])))
    assert "command operators" in reasons[HTTP_PATH + ".request_headers_to_add[0].header.value"]


def test_values_are_read_with_envoys_defaults():
    (check,) = load(mutated(VALID["http-minimal"])).static_resources.clusters[0].health_checks
    assert (check.timeout, check.interval, check.unhealthy_threshold, check.healthy_threshold) == (1.0, 0.2, 2, 3)
    assert check.no_traffic_interval == 60.0 and check.reuse_connection is True
    assert check.unhealthy_interval is None and check.healthy_edge_interval is None
    assert check.http_health_check == b.HttpHealthCheck(path="/healthz")
    assert check.tcp_health_check is None

    (check,) = load(mutated(VALID["http-everything"])).static_resources.clusters[0].health_checks
    http = check.http_health_check
    assert (check.unhealthy_edge_interval, check.no_traffic_healthy_interval, check.reuse_connection) == (0.3, 10.0, False)
    assert (http.host, http.expected_statuses, http.retriable_statuses) == ("health.example", ((200, 300),), ((503, 504),))
    assert http.request_headers_to_add[0].key == "x-probe" and http.request_headers_to_remove == ("user-agent",)

    (check,) = load(mutated(VALID["tcp-send-receive"])).static_resources.clusters[0].health_checks
    assert check.tcp_health_check == b.TcpHealthCheck(send=b"PING\n", receive=(b"PO", b"NO"))


def test_outlier_detection_is_read_with_envoys_defaults():
    assert load(mutated(OD_VALID["defaults"])).static_resources.clusters[0].outlier_detection == b.OutlierDetection(
        consecutive_5xx=5,
        consecutive_gateway_failure=5,
        interval=10.0,
        base_ejection_time=30.0,
        max_ejection_time=300.0,
        max_ejection_percent=10,
        enforcing_consecutive_5xx=100,
        enforcing_consecutive_gateway_failure=0,
        enforcing_success_rate=100,
        success_rate_minimum_hosts=5,
        success_rate_request_volume=100,
        success_rate_stdev_factor=1900,
        failure_percentage_threshold=85,
        enforcing_failure_percentage=0,
        failure_percentage_minimum_hosts=5,
        failure_percentage_request_volume=50,
    )
    everything = load(mutated(OD_VALID["everything"])).static_resources.clusters[0].outlier_detection
    assert (everything.success_rate_stdev_factor, everything.failure_percentage_request_volume) == (1000, 10)
    config = load(mutated(OD_VALID["long-base-time-default-max"])).static_resources.clusters[0].outlier_detection
    assert config.max_ejection_time == config.base_ejection_time == 400.0


def test_outlier_refusals_say_why():
    reasons = dict(errors_of(mutated(OD_STRICTER["split-local-origin"][0])))
    assert "local-origin errors are counted as 503" in reasons[OD_PATH + ".split_external_local_origin_errors"]
