"""Outlier detection (Envoy's ``Outlier::DetectorImpl``): consecutive-error, success-rate and failure-percentage ejections.

Two halves, split by thread as the rest of :mod:`pyevent_envoy.upstream`:

- :class:`OutlierMonitors` (one per worker and cluster, owned by its
  :class:`~pyevent_envoy.upstream.ThreadLocalCluster`): the router records
  the result of every upstream attempt (:meth:`OutlierMonitors.put_http_response_code`,
  a dict lookup and a few int updates), on the worker, without a lock.  A
  connect failure or a reset counts as a 503 and a timeout as a 504, as in
  Envoy without ``split_external_local_origin_errors``.  When a host's
  consecutive 5xx (or gateway failures: 502, 503, 504) reach the configured
  count, the worker resets that count and posts the host to the detector on
  the main thread.  The counts are per worker (Envoy shares one count per
  host across workers): with ``--concurrency 1`` they are the same.  The
  worker also counts each host's requests and successes (below 500) since
  the last interval; the detector takes and sums those counts from every
  worker at each interval (by posting to the workers,
  :meth:`OutlierMonitors.take_request_counts`), as Envoy swaps its
  per-host success-rate buckets.
- :class:`OutlierDetectorImpl` (main thread, owned by its cluster) decides.
  On a consecutive-error report: a host already ejected is ignored;
  otherwise ``ejections_detected_*`` counts it, and it is ejected
  (``FAILED_OUTLIER_CHECK``) if the ejected share, this host included,
  stays within ``max_ejection_percent`` (else ``ejections_overflow``) and
  the ``enforcing_*`` percentage draws it.  The cluster then publishes a
  new host set, as for a health change.  Every ``interval``, once the
  workers' counts are in: hosts whose ejection time is over return
  (``base_ejection_time`` times the host's back-off, at most
  ``max_ejection_time``; the back-off grows by one per ejection and shrinks
  by one per interval the host spends in service); then the hosts not
  ejected with requests in the last interval get a success rate
  (successes / requests * 100, what ``/clusters`` shows as the host's
  ``success_rate`` until the next interval, from
  ``min(success_rate_request_volume, failure_percentage_request_volume)``
  requests), and

  * success rate, when at least ``success_rate_minimum_hosts`` hosts had
    ``success_rate_request_volume`` requests: the mean and (population)
    standard deviation of their rates give the threshold
    ``mean - stdev * success_rate_stdev_factor / 1000``, and each host
    below it is detected and ejected as above (``enforcing_success_rate``);
  * failure percentage, when at least ``failure_percentage_minimum_hosts``
    hosts had ``failure_percentage_request_volume`` requests: each host
    whose failure share (100 - success rate) reaches
    ``failure_percentage_threshold`` is detected and ejected
    (``enforcing_failure_percentage``).  A host the success-rate pass has
    just ejected is not counted again.

Stats (``cluster.<name>.outlier_detection.``) carry Envoy's names
(:class:`OutlierDetectionStats`), the deprecated ``ejections_total``,
``ejections_consecutive_5xx`` and ``ejections_success_rate`` counted as
Envoy counts them; the local-origin ones are kept at 0.
"""

from __future__ import annotations

import enum
import math
import random
from typing import TYPE_CHECKING, Any, Callable, Optional

from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.stats.scopes import MainThreadStats
from pyevent_envoy.upstream.host import HealthFlag, HostImpl

if TYPE_CHECKING:
    from pyevent_envoy.upstream.cluster import Cluster

__all__ = [
    "EjectionType",
    "OutlierDetectionStats",
    "OutlierDetectorImpl",
    "OutlierMonitors",
    "RequestCounts",
    "success_rate_ejection_threshold",
]

_EJECTED = HealthFlag.FAILED_OUTLIER_CHECK
#: The 5xx codes that are gateway failures.
_GATEWAY_FAILURES = frozenset((502, 503, 504))


class EjectionType(enum.Enum):
    """Why a host was ejected (Envoy's ``OutlierEjectionType``, the kinds detected here)."""

    CONSECUTIVE_5XX = "consecutive_5xx"
    CONSECUTIVE_GATEWAY_FAILURE = "consecutive_gateway_failure"
    SUCCESS_RATE = "success_rate"
    FAILURE_PERCENTAGE = "failure_percentage"


#: Per host: (requests that succeeded, requests) over one interval.
RequestCounts = dict[HostImpl, tuple[int, int]]
#: ``collect(on_done)``: sum every worker's counts since the last call and
#: run ``on_done(counts)`` on the main thread.
RequestCountsCollector = Callable[[Callable[[RequestCounts], None]], None]


def success_rate_ejection_threshold(rates: list[float], stdev_factor: float) -> tuple[float, float]:
    """``(mean, mean - stdev_factor * stdev)`` of ``rates`` (Envoy's ``successRateEjectionThreshold``).

    The standard deviation is the population one (divided by ``len(rates)``),
    as in Envoy: for ``[50, 100, 100, 100, 100]`` and 1.9, ``(90.0, 52.0)``.
    ``rates`` must not be empty.
    """
    mean = sum(rates) / len(rates)
    variance = sum((rate - mean) ** 2 for rate in rates) / len(rates)
    return mean, mean - stdev_factor * math.sqrt(variance)


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
            ``enforcing_consecutive_gateway_failure``, ``enforcing_success_rate``,
            ``success_rate_minimum_hosts``, ``success_rate_request_volume``,
            ``success_rate_stdev_factor``, ``failure_percentage_threshold``,
            ``enforcing_failure_percentage``, ``failure_percentage_minimum_hosts``,
            ``failure_percentage_request_volume``).
        dispatcher: the main dispatcher (its clock times ejections).
        rng: draws the ``enforcing_*`` percentages.
        collect_request_counts: gathers the workers' request counts at each
            interval (the cluster manager posts to its workers); None: no
            counts, so no success-rate or failure-percentage ejection.

    Only :meth:`report` may be called from another thread.

    Attributes:
        success_rates: each host's success rate over the last interval, for
            the hosts that had enough requests (the admin's ``success_rate``;
            -1 for the others).
        success_rate_average: the mean rate of the last interval's
            success-rate judgement, -1 when there was none (the admin's
            ``outlier::success_rate_average``).
        success_rate_ejection_threshold: its threshold, -1 likewise.
    """

    def __init__(
        self,
        cluster: "Cluster",
        config: Any,
        dispatcher: Dispatcher,
        *,
        rng: Optional[random.Random] = None,
        collect_request_counts: Optional[RequestCountsCollector] = None,
    ) -> None:
        self.cluster = cluster
        self.config = config
        self.dispatcher = dispatcher
        self.stats = OutlierDetectionStats()
        self.consecutive_5xx = int(config.consecutive_5xx)
        self.consecutive_gateway_failure = int(config.consecutive_gateway_failure)
        self._rng = rng if rng is not None else random.Random()
        self._hosts: dict[HostImpl, _HostEjections] = {}
        self._callbacks: list[Callable[[HostImpl], None]] = []
        self._collect_request_counts = collect_request_counts
        self.success_rates: dict[HostImpl, float] = {}
        self.success_rate_average = -1.0
        self.success_rate_ejection_threshold = -1.0
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
        if ejection_type is EjectionType.CONSECUTIVE_5XX or ejection_type is EjectionType.SUCCESS_RATE:
            stats.ejections_total += 1  # deprecated, as Envoy counts it
        if self._rng.randrange(100) >= int(getattr(self.config, "enforcing_" + ejection_type.value)):
            return  # detected, not enforced
        stats.add("ejections_active", 1)
        stats.ejections_enforced_total += 1
        enforced = "ejections_enforced_" + ejection_type.value
        setattr(stats, enforced, getattr(stats, enforced) + 1)
        record = self._hosts[host]
        host.health_flag_set(_EJECTED)
        record.num_ejections += 1
        record.last_ejection_time = self.dispatcher.approximate_monotonic_time()
        base, maximum = float(self.config.base_ejection_time), float(self.config.max_ejection_time)
        if record.backoff * base < maximum + base:
            record.backoff += 1
        self._run_callbacks(host)

    def _on_interval(self) -> None:
        if self._collect_request_counts is None:
            self._on_request_counts({})
        else:
            self._collect_request_counts(self._on_request_counts)

    def _on_request_counts(self, counts: RequestCounts) -> None:
        """The interval's work, once the workers' counts are in: returns, then rate-based ejections."""
        if self._closed:
            return
        self._uneject_expired()
        self._process_success_rates(counts)
        self._timer.enable_timer(float(self.config.interval))

    def _uneject_expired(self) -> None:
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

    def _process_success_rates(self, counts: RequestCounts) -> None:
        """Envoy's ``processSuccessRateEjections`` for external-origin results."""
        config = self.config
        sr_hosts, sr_volume = int(config.success_rate_minimum_hosts), int(config.success_rate_request_volume)
        fp_hosts, fp_volume = int(config.failure_percentage_minimum_hosts), int(config.failure_percentage_request_volume)
        self.success_rates = {}
        self.success_rate_average = self.success_rate_ejection_threshold = -1.0
        if len(self._hosts) < sr_hosts and len(self._hosts) < fp_hosts:
            return
        shown_volume = min(sr_volume, fp_volume)
        sr_candidates: list[tuple[HostImpl, float]] = []
        fp_candidates: list[tuple[HostImpl, float]] = []
        for host in self._hosts:
            successes, total = counts.get(host, (0, 0))
            if not total or host.health_flags & _EJECTED:
                continue
            rate = successes * 100.0 / total
            if total >= shown_volume:
                self.success_rates[host] = rate
            if total >= sr_volume:
                sr_candidates.append((host, rate))
            if total >= fp_volume:
                fp_candidates.append((host, rate))
        stats = self.stats
        if sr_candidates and len(sr_candidates) >= sr_hosts:
            mean, threshold = success_rate_ejection_threshold(
                [rate for _, rate in sr_candidates], int(config.success_rate_stdev_factor) / 1000.0
            )
            self.success_rate_average, self.success_rate_ejection_threshold = mean, threshold
            for host, rate in sr_candidates:
                if rate < threshold:
                    stats.ejections_success_rate += 1  # deprecated, as Envoy counts it
                    stats.ejections_detected_success_rate += 1
                    self._eject(host, EjectionType.SUCCESS_RATE)
        if fp_candidates and len(fp_candidates) >= fp_hosts:
            threshold_percent = int(config.failure_percentage_threshold)
            for host, rate in fp_candidates:
                if 100.0 - rate >= threshold_percent and not host.health_flags & _EJECTED:
                    stats.ejections_detected_failure_percentage += 1
                    self._eject(host, EjectionType.FAILURE_PERCENTAGE)

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
    """One worker's consecutive-error and request counts for one cluster's hosts.  Owned by that worker's thread.

    Args:
        detector: the cluster's detector, told (through a post) when a host
            reaches a count.
    """

    __slots__ = ("_detector", "_by_host", "_max_5xx", "_max_gateway")

    def __init__(self, detector: OutlierDetectorImpl) -> None:
        self._detector = detector
        #: host -> [consecutive 5xx, consecutive gateway failures, successes, requests]
        #: (the last two since the last take_request_counts())
        self._by_host: dict[HostImpl, list[int]] = {}
        self._max_5xx = detector.consecutive_5xx
        self._max_gateway = detector.consecutive_gateway_failure

    def put_http_response_code(self, host: HostImpl, code: int) -> None:
        """The outcome of one attempt on ``host``: its status, 503 for a connect failure or reset, 504 for a timeout."""
        counts = self._by_host.get(host)
        if counts is None:
            counts = self._by_host[host] = [0, 0, 0, 0]
        counts[3] += 1
        if code < 500 or code > 599:
            counts[0] = counts[1] = 0
            counts[2] += 1
            return
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

    def take_request_counts(self) -> list[tuple[HostImpl, int, int]]:
        """``(host, successes, requests)`` since the last call, for each host with requests; the counts restart at 0.

        Owning thread only (the detector posts here at each interval).
        """
        taken = []
        for host, counts in self._by_host.items():
            if counts[3]:
                taken.append((host, counts[2], counts[3]))
                counts[2] = counts[3] = 0
        return taken

    def retain(self, hosts: tuple[HostImpl, ...]) -> None:
        """Forget the hosts no longer in the cluster."""
        keep = set(hosts)
        for host in [h for h in self._by_host if h not in keep]:
            del self._by_host[host]
