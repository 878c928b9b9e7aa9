"""ResourceManagerImpl: a cluster's circuit breakers, shared by every thread."""

from __future__ import annotations

import sys
import threading

import pytest

from pyevent_envoy.upstream.cluster import CircuitBreakerThresholds, ClusterInfo
from pyevent_envoy.upstream.resource_manager import (
    UNLIMITED_CONNECTION_POOLS,
    LockedResource,
    Resource,
    ResourceManagerImpl,
)


def test_resource_opens_at_its_max_and_counts_what_remains():
    resource = Resource(2)
    assert (resource.can_create(), resource.open, resource.remaining, resource.used) == (True, False, 2, False)
    resource.inc()
    resource.inc()
    assert (resource.can_create(), resource.open, resource.remaining, resource.used) == (False, True, 0, True)
    resource.inc()  # a racing worker may pass the limit, as in Envoy; remaining stays at 0
    assert (resource.count, resource.remaining) == (3, 0)
    resource.dec()
    resource.dec()
    assert (resource.can_create(), resource.open, resource.remaining) == (True, False, 1)


def test_gauges_have_envoys_names_and_remaining_only_when_tracked():
    manager = ResourceManagerImpl(CircuitBreakerThresholds(max_connections=5, max_requests=7))
    manager.requests.inc()
    names = [name for name, _v, _u in manager.gauges("p.")]
    assert names == ["p.cx_open", "p.cx_pool_open", "p.rq_open", "p.rq_pending_open", "p.rq_retry_open"]
    tracked = ResourceManagerImpl(CircuitBreakerThresholds(max_connections=5, max_requests=7, track_remaining=True))
    tracked.requests.inc()
    assert tracked.gauges("p.") == [
        ("p.cx_open", 0, False), ("p.remaining_cx", 5, True),
        ("p.cx_pool_open", 0, False), ("p.remaining_cx_pools", UNLIMITED_CONNECTION_POOLS, True),
        ("p.rq_open", 0, True), ("p.remaining_rq", 6, True),
        ("p.rq_pending_open", 0, False), ("p.remaining_pending", 1024, True),
        ("p.rq_retry_open", 0, False), ("p.remaining_retries", 3, True),
    ]


def test_cluster_info_owns_one_manager_per_priority():
    info = ClusterInfo("c", circuit_breakers=CircuitBreakerThresholds(max_requests=4),
                       high_priority_circuit_breakers=CircuitBreakerThresholds(max_requests=9))
    assert (info.resource_manager.requests.max, info.high_priority_resource_manager.requests.max) == (4, 9)
    assert info == ClusterInfo("c", circuit_breakers=CircuitBreakerThresholds(max_requests=4),
                               high_priority_circuit_breakers=CircuitBreakerThresholds(max_requests=9))
    with pytest.raises(ValueError):
        CircuitBreakerThresholds(track_remaining=1)


@pytest.mark.parametrize(
    "resource_class",
    [
        # Plain ints are only safe under the GIL (see the module docstring).
        pytest.param(Resource, marks=pytest.mark.skipif(not getattr(sys, "_is_gil_enabled", lambda: True)(), reason="GIL disabled")),
        LockedResource,
    ],
)
def test_updates_from_many_threads_are_not_lost(resource_class):
    resource = resource_class(1 << 30)
    rounds = 20000

    def churn() -> None:
        for _ in range(rounds):
            resource.inc()
            resource.inc()
            resource.dec()

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert resource.count == 4 * rounds
