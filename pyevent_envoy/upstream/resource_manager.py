"""A cluster's circuit breakers, counted over every worker (Envoy's ``ResourceManagerImpl``).

Envoy keeps one resource manager per cluster and priority, whose counters
(atomics) every worker's connection pools and routers share: a cluster's
``max_connections``, ``max_pending_requests``, ``max_requests`` and
``max_retries`` bound the cluster as a whole, whatever the
``--concurrency``.  Here the same: :class:`ResourceManagerImpl` hangs off
the cluster's (immutable, shared) ``ClusterInfo``, and each worker reads and
updates its :class:`Resource` counters directly.

Like Envoy's, a check and the increment that follows it are two steps, not
one: two workers may both see one place left and both take it, so a limit
can be passed by (at most) one per racing worker -- exactly as in Envoy,
whose ``canCreate()`` and ``inc()`` are separate atomic operations.  What
must not happen is a lost update, which would leak or forge a place for
good.  How that is prevented depends on the build:

- **GIL builds** (the default CPython): a :class:`Resource` is a plain int in
  a ``__slots__`` field.  ``self.count += 1`` is a few bytecodes with no call
  into Python code in between (slot access and small-int addition are C), and
  CPython only hands the GIL to another thread at an "eval breaker" check,
  which these bytecodes do not make; so no other thread runs between the
  read and the write.  Cost: one Python method call per update.
- **Free-threaded builds** (``python3.13t`` and later, GIL disabled): there is
  no such guarantee, so :class:`LockedResource` updates under a
  ``threading.Lock`` (uncontended: about 50 ns more per update).  Reads
  (``can_create``, the stats) stay lock-free: a racy read of an int is
  whole, and only the decision above depends on it.

Per proxied request this costs about four updates (a request place taken
and given back; a pending place when the request waits for a connection),
each an attribute increment; connections and retries add theirs only when
they happen.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["LockedResource", "Resource", "ResourceManagerImpl", "UNLIMITED_CONNECTION_POOLS"]

#: Envoy's default ``max_connection_pools``: no limit (the largest uint64).
UNLIMITED_CONNECTION_POOLS = (1 << 64) - 1


class Resource:
    """One circuit breaker: how many of something the cluster has open, and how many it may.

    Any thread may call every method; see the module docstring for why
    updates are safe on GIL builds.
    """

    __slots__ = ("max", "count", "used")

    def __init__(self, maximum: int) -> None:
        self.max = maximum
        self.count = 0
        #: True once ever taken: Envoy's ``*_open`` gauges show under ``usedonly`` from then on.
        self.used = False

    def can_create(self) -> bool:
        """Whether one more fits (the breaker is closed)."""
        return self.count < self.max

    def inc(self) -> None:
        self.count += 1
        self.used = True

    def dec(self) -> None:
        self.count -= 1

    @property
    def open(self) -> bool:
        """At the limit: Envoy's ``*_open`` gauge is 1."""
        return self.count >= self.max

    @property
    def remaining(self) -> int:
        """Envoy's ``remaining_*`` gauge: places left, never below 0."""
        return max(self.max - self.count, 0)


class LockedResource(Resource):
    """A :class:`Resource` whose updates take a lock (free-threaded builds)."""

    __slots__ = ("_lock",)

    def __init__(self, maximum: int) -> None:
        super().__init__(maximum)
        self._lock = threading.Lock()

    def inc(self) -> None:
        with self._lock:
            self.count += 1
        self.used = True

    def dec(self) -> None:
        with self._lock:
            self.count -= 1


def _gil_enabled() -> bool:
    is_enabled = getattr(sys, "_is_gil_enabled", None)  # Python 3.13+
    return True if is_enabled is None else bool(is_enabled())


#: The resource class this interpreter needs (decided once, at import).
_RESOURCE_CLASS: type[Resource] = Resource if _gil_enabled() else LockedResource


class ResourceManagerImpl:
    """One cluster's circuit breakers for one priority, shared by every thread.

    Args:
        thresholds: the priority's ``max_connections``,
            ``max_pending_requests``, ``max_requests``, ``max_retries`` and
            ``track_remaining`` (a
            :class:`~pyevent_envoy.upstream.cluster.CircuitBreakerThresholds`).

    Attributes:
        connections: upstream connections open (``cx_open``, ``remaining_cx``).
        pending_requests: requests waiting for a connection (``rq_pending_open``,
            ``remaining_pending``).
        requests: requests on a connection (``rq_open``, ``remaining_rq``).
        retries: retries scheduled and not yet started (``rq_retry_open``,
            ``remaining_retries``).
        connection_pools: connection pools, one per worker and host
            (``cx_pool_open``, ``remaining_cx_pools``; never limited here).
        track_remaining: whether Envoy shows the ``remaining_*`` gauges.
    """

    __slots__ = ("connections", "pending_requests", "requests", "retries", "connection_pools", "track_remaining")

    #: ``(gauge suffix, remaining gauge, attribute)`` in the order Envoy names them.
    GAUGES = (
        ("cx_open", "remaining_cx", "connections"),
        ("cx_pool_open", "remaining_cx_pools", "connection_pools"),
        ("rq_open", "remaining_rq", "requests"),
        ("rq_pending_open", "remaining_pending", "pending_requests"),
        ("rq_retry_open", "remaining_retries", "retries"),
    )

    def __init__(self, thresholds: Any) -> None:
        resource = _RESOURCE_CLASS
        self.connections = resource(thresholds.max_connections)
        self.pending_requests = resource(thresholds.max_pending_requests)
        self.requests = resource(thresholds.max_requests)
        self.retries = resource(thresholds.max_retries)
        self.connection_pools = resource(UNLIMITED_CONNECTION_POOLS)
        self.track_remaining = bool(getattr(thresholds, "track_remaining", False))

    def gauges(self, prefix: str) -> list[tuple[str, int, bool]]:
        """``(name, value, used)`` of Envoy's gauges for this priority, names under ``prefix``
        (``cluster.<name>.circuit_breakers.<priority>.``)."""
        out = []
        for open_name, remaining_name, attribute in self.GAUGES:
            resource: Resource = getattr(self, attribute)
            out.append((prefix + open_name, int(resource.open), resource.used))
            if self.track_remaining:
                out.append((prefix + remaining_name, resource.remaining, True))
        return out
