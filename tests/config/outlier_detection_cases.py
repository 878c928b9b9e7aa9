"""Cases for cluster ``outlier_detection``; ``test_envoy_parity`` runs them under Envoy 1.40 and load_bootstrap.

VALID both accept, INVALID both reject (ours at the expected YAML path),
STRICTER Envoy accepts and pyevent-envoy refuses on purpose.
"""

from __future__ import annotations

from config_helpers import CLUSTER_PATH, cluster

OD_PATH = CLUSTER_PATH + ".outlier_detection"


def _with(**fields):
    def mutate(c):
        cluster(c)["outlier_detection"] = dict(fields)

    return mutate


VALID = {
    "defaults": _with(),
    "everything": _with(
        consecutive_5xx=3,
        consecutive_gateway_failure=2,
        interval="1s",
        base_ejection_time="5s",
        max_ejection_time="60s",
        max_ejection_percent=50,
        enforcing_consecutive_5xx=80,
        enforcing_consecutive_gateway_failure=100,
        enforcing_success_rate=50,
        success_rate_minimum_hosts=3,
        success_rate_request_volume=20,
        success_rate_stdev_factor=1000,
        failure_percentage_threshold=50,
        enforcing_failure_percentage=100,
        failure_percentage_minimum_hosts=2,
        failure_percentage_request_volume=10,
    ),
    "long-base-time-default-max": _with(base_ejection_time="400s"),
}

INVALID = {
    "percent-over-100": (_with(max_ejection_percent=101), OD_PATH + ".max_ejection_percent"),
    "enforcing-over-100": (_with(enforcing_consecutive_5xx=101), OD_PATH + ".enforcing_consecutive_5xx"),
    "enforcing-success-rate-over-100": (_with(enforcing_success_rate=101), OD_PATH + ".enforcing_success_rate"),
    "failure-threshold-over-100": (
        _with(failure_percentage_threshold=101),
        OD_PATH + ".failure_percentage_threshold",
    ),
    "enforcing-failure-percentage-over-100": (
        _with(enforcing_failure_percentage=101),
        OD_PATH + ".enforcing_failure_percentage",
    ),
    "negative-request-volume": (
        _with(success_rate_request_volume=-1),
        OD_PATH + ".success_rate_request_volume",
    ),
    "zero-interval": (_with(interval="0s"), OD_PATH + ".interval"),
    "zero-base-time": (_with(base_ejection_time="0s"), OD_PATH + ".base_ejection_time"),
    "unknown-field": (_with(consecutive_500=3), OD_PATH + ".consecutive_500"),
    "max-time-below-base": (
        _with(base_ejection_time="60s", max_ejection_time="30s"),
        OD_PATH + ".max_ejection_time",
    ),
}

STRICTER = {
    "local-origin-success-rate": (
        _with(enforcing_local_origin_success_rate=50),
        OD_PATH + ".enforcing_local_origin_success_rate",
    ),
    "local-origin-failure-percentage": (
        _with(enforcing_failure_percentage_local_origin=50),
        OD_PATH + ".enforcing_failure_percentage_local_origin",
    ),
    "split-local-origin": (
        _with(split_external_local_origin_errors=True),
        OD_PATH + ".split_external_local_origin_errors",
    ),
    "always-eject-one-host": (_with(always_eject_one_host=True), OD_PATH + ".always_eject_one_host"),
}
