"""Outlier detection: consecutive-error ejections (Envoy's ``Outlier::DetectorImpl``).

Two halves, split by thread as the rest of :mod:`pyevent_envoy.upstream`:

- :class:`OutlierMonitors` (one per worker and cluster, owned by its
  :class:`~pyevent_envoy.upstream.ThreadLocalCluster`): the router records
  the result of every upstream attempt (:meth:`OutlierMonitors.put_http_response_code`,
  a dict lookup and two int updates), on the worker, without a lock.  A
  connect failure or a reset counts as a 503 and a timeout as a 504, as in
  Envoy without ``split_external_local_origin_errors``.  When a host's
  consecutive 5xx (or gateway failures: 502, 503, 504) reach the configured
  count, the worker resets that count and posts the host to the detector on
  the main thread.  The counts are per worker (Envoy shares one count per
  host across workers): with ``--concurrency 1`` they are the same.
- :class:`OutlierDetectorImpl` (main thread, owned by its cluster) decides:
  a host already ejected is ignored; otherwise ``ejections_detected_*``
  counts it, and it is ejected (``FAILED_OUTLIER_CHECK``) if the ejected
  share, this host included, stays within ``max_ejection_percent`` (else
  ``ejections_overflow``) and the ``enforcing_*`` percentage draws it.  The
  cluster then publishes a new host set, as for a health change.  Every
  ``interval`` the detector returns hosts whose ejection time is over:
  ``base_ejection_time`` times the host's back-off, at most
  ``max_ejection_time``; the back-off grows by one per ejection and shrinks
  by one per interval the host spends in service.

Stats (``cluster.<name>.outlier_detection.``) carry Envoy's names
(:class:`OutlierDetectionStats`); the success-rate and failure-percentage
ones are kept at 0.
"""

from __future__ import annotations

import enum
import random
from typing import TYPE_CHECKING, Any, Callable, Optional

from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.stats.scopes import MainThreadStats
from pyevent_envoy.upstream.host import HealthFlag, HostImpl

if TYPE_CHECKING:
    from pyevent_envoy.upstream.cluster import Cluster

__all__ = ["EjectionType", "OutlierDetectionStats", "OutlierDetectorImpl", "OutlierMonitors"]

_EJECTED = HealthFlag.FAILED_OUTLIER_CHECK
#: The 5xx codes that are gateway failures.
_GATEWAY_FAILURES = frozenset((502, 503, 504))


class EjectionType(enum.Enum):
    """Why a host was ejected (Envoy's ``OutlierEjectionType``, the kinds detected here)."""

    CONSECUTIVE_5XX = "consecutive_5xx"
    CONSECUTIVE_GATEWAY_FAILURE = "consecutive_gateway_failure"


class OutlierDetectionStats(MainThreadStats):
    """``cluster.<name>.outlier_detection.*``, written on the main thread only (Envoy's names)."""

    COUNTERS = (
        "ejections_consecutive_5xx",
        "ejections_detected_consecutive_5xx",
        "ejections_detected_consecutive_gateway_failure",
        "ejections_detected_consecutive_local_origin_failure",
        "ejections_detected_degradation",
        "ejections_detected_failure_percentage",
        "ejections_detected_local_origin_failure_percentage",
        "ejections_detected_local_origin_success_rate",
        "ejections_detected_success_rate",
        "ejections_enforced_consecutive_5xx",
        "ejections_enforced_consecutive_gateway_failure",
        "ejections_enforced_consecutive_local_origin_failure",
        "ejections_enforced_failure_percentage",
        "ejections_enforced_local_origin_failure_percentage",
        "ejections_enforced_local_origin_success_rate",
        "ejections_enforced_success_rate",
        "ejections_enforced_total",
        "ejections_overflow",
        "ejections_success_rate",
        "ejections_total",
    )
    GAUGES = ("ejections_active",)
    __slots__ = COUNTERS + GAUGES + ("gauges_used",)


class _HostEjections:
    """The detector's record of one host (main thread)."""

    __slots__ = ("num_ejections", "backoff", "last_ejection_time")

    def __init__(self) -> None:
        self.num_ejections = 0
        self.backoff = 0
        self.last_ejection_time = 0.0


class OutlierDetectorImpl:
    """Ejects and returns the hosts of one cluster, on the main thread.

    Args:
        cluster: the cluster (its member-update callbacks add and remove hosts).
        config: the ``OutlierDetection`` (fields read by name:
            ``consecutive_5xx``, ``consecutive_gateway_failure``,
            ``interval``, ``base_ejection_time``, ``max_ejection_time``,
            ``max_ejection_percent``, ``enforcing_consecutive_5xx``,
            ``enforcing_consecutive_gateway_failure``).
        dispatcher: the main dispatcher (its clock times ejections).
        rng: draws the ``enforcing_*`` percentages.

    Only :meth:`report` may be called from another thread.
    """

    def __init__(self, cluster: "Cluster", config: Any, dispatcher: Dispatcher, *, rng: Optional[random.Random] = None) -> None:
        self.cluster = cluster
        self.config = config
        self.dispatcher = dispatcher
        self.stats = OutlierDetectionStats()
        self.consecutive_5xx = int(config.consecutive_5xx)
        self.consecutive_gateway_failure = int(config.consecutive_gateway_failure)
        self._rng = rng if rng is not None else random.Random()
        self._hosts: dict[HostImpl, _HostEjections] = {}
        self._callbacks: list[Callable[[HostImpl], None]] = []
        self._timer = dispatcher.create_timer(self._on_interval)
        self._closed = False

    def __repr__(self) -> str:
        return f"<OutlierDetectorImpl {self.cluster.info.name!r} {self.stats.ejections_active} ejected>"

    # main thread

    def start(self) -> None:
        """Follow the cluster's hosts and start the interval timer.  Once."""
        self.cluster.add_member_update_cb(self._on_cluster_member_update)
        for host in self.cluster.host_set.hosts:
            self._hosts[host] = _HostEjections()
        self._timer.enable_timer(float(self.config.interval))

    def add_changed_state_cb(self, cb: Callable[[HostImpl], None]) -> None:
        """Call ``cb(host)`` after the host was ejected or returned."""
        self._callbacks.append(cb)

    def close(self) -> None:
        """Stop the timer; later reports are ignored.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._timer.close()
        self._callbacks.clear()
        self.cluster.remove_member_update_cb(self._on_cluster_member_update)

    # any thread

    def report(self, host: HostImpl, ejection_type: EjectionType) -> None:
        """A worker saw ``host`` reach a consecutive-error count: decide on the main thread."""
        self.dispatcher.post(lambda: self._on_consecutive_error(host, ejection_type))

    # internals

    def _on_consecutive_error(self, host: HostImpl, ejection_type: EjectionType) -> None:
        if self._closed or host not in self._hosts or host.health_flags & _EJECTED:
            return  # gone, or ejected already (several workers may report the same bout)
        stats = self.stats
        if ejection_type is EjectionType.CONSECUTIVE_5XX:
            stats.ejections_detected_consecutive_5xx += 1
            stats.ejections_consecutive_5xx += 1  # Envoy's deprecated counter, kept as Envoy keeps it
        else:
            stats.ejections_detected_consecutive_gateway_failure += 1
        self._eject(host, ejection_type)

    def _eject(self, host: HostImpl, ejection_type: EjectionType) -> None:
        stats = self.stats
        max_percent = min(100, int(self.config.max_ejection_percent))
        # Envoy 1.40 counts the host about to go: with two hosts, the default 10 % ejects none.
        if 100.0 * (stats.ejections_active + 1) / len(self._hosts) > max_percent:
            stats.ejections_overflow += 1
            return
        if ejection_type is EjectionType.CONSECUTIVE_5XX:
            stats.ejections_total += 1  # deprecated, as Envoy counts it
            enforcing = int(self.config.enforcing_consecutive_5xx)
        else:
            enforcing = int(self.config.enforcing_consecutive_gateway_failure)
        if self._rng.randrange(100) >= enforcing:
            return  # detected, not enforced
        stats.add("ejections_active", 1)
        stats.ejections_enforced_total += 1
        if ejection_type is EjectionType.CONSECUTIVE_5XX:
            stats.ejections_enforced_consecutive_5xx += 1
        else:
            stats.ejections_enforced_consecutive_gateway_failure += 1
        record = self._hosts[host]
        host.health_flag_set(_EJECTED)
        record.num_ejections += 1
        record.last_ejection_time = self.dispatcher.approximate_monotonic_time()
        base, maximum = float(self.config.base_ejection_time), float(self.config.max_ejection_time)
        if record.backoff * base < maximum + base:
            record.backoff += 1
        self._run_callbacks(host)

    def _on_interval(self) -> None:
        now = self.dispatcher.approximate_monotonic_time()
        base, maximum = float(self.config.base_ejection_time), float(self.config.max_ejection_time)
        for host, record in list(self._hosts.items()):
            if not host.health_flags & _EJECTED:
                if record.backoff:
                    record.backoff -= 1  # in service a whole interval: the next ejection is shorter
                continue
            if min(base * record.backoff, maximum) <= now - record.last_ejection_time:
                self.stats.add("ejections_active", -1)
                host.health_flag_clear(_EJECTED)
                self._run_callbacks(host)
        if not self._closed:
            self._timer.enable_timer(float(self.config.interval))

    def _run_callbacks(self, host: HostImpl) -> None:
        for cb in list(self._callbacks):
            cb(host)

    def _on_cluster_member_update(self, _cluster: Any, added: tuple[HostImpl, ...], removed: tuple[HostImpl, ...]) -> None:
        for host in added:
            self._hosts[host] = _HostEjections()
        for host in removed:
            if self._hosts.pop(host, None) is not None and host.health_flags & _EJECTED:
                self.stats.add("ejections_active", -1)


class OutlierMonitors:
    """One worker's consecutive-error counts for one cluster's hosts.  Owned by that worker's thread.

    Args:
        detector: the cluster's detector, told (through a post) when a host
            reaches a count.
    """

    __slots__ = ("_detector", "_by_host", "_max_5xx", "_max_gateway")

    def __init__(self, detector: OutlierDetectorImpl) -> None:
        self._detector = detector
        #: host -> [consecutive 5xx, consecutive gateway failures]
        self._by_host: dict[HostImpl, list[int]] = {}
        self._max_5xx = detector.consecutive_5xx
        self._max_gateway = detector.consecutive_gateway_failure

    def put_http_response_code(self, host: HostImpl, code: int) -> None:
        """The outcome of one attempt on ``host``: its status, 503 for a connect failure or reset, 504 for a timeout."""
        if code < 500 or code > 599:
            counts = self._by_host.get(host)
            if counts is not None:
                counts[0] = counts[1] = 0
            return
        counts = self._by_host.get(host)
        if counts is None:
            counts = self._by_host[host] = [0, 0]
        if code in _GATEWAY_FAILURES:
            counts[1] += 1
            if counts[1] == self._max_gateway:
                counts[1] = 0
                self._detector.report(host, EjectionType.CONSECUTIVE_GATEWAY_FAILURE)
        else:
            counts[1] = 0
        counts[0] += 1
        if counts[0] == self._max_5xx:
            counts[0] = 0
            self._detector.report(host, EjectionType.CONSECUTIVE_5XX)

    def retain(self, hosts: tuple[HostImpl, ...]) -> None:
        """Forget the hosts no longer in the cluster."""
        keep = set(hosts)
        for host in [h for h in self._by_host if h not in keep]:
            del self._by_host[host]
