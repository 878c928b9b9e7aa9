"""Per-thread stats scopes: Envoy-named counters and gauges as plain ints.

A *scope* is one thread's share of the stats of one Envoy stats scope
(``http.<stat_prefix>.``, ``listener.<address>.``, ``cluster.<name>.``).
Each stat is an ``int`` attribute (a ``__slots__`` field) named exactly as
the stat's last component in Envoy, so the hot path is an attribute
increment on an object it already holds::

    stats.downstream_rq_total += 1

Threading contract (what makes this lock-free):

- A scope object is **written by one thread only**, its owner (a worker's
  connection manager, listener, cluster pool or router).  ``+=`` on a
  slot is a read-modify-write, which is only safe because nobody else
  writes it.
- Any thread may **read** it at any time (the admin, on the main thread,
  sums the scopes of every worker).  Under the GIL a read sees a whole
  ``int``, some value the owner stored recently; a sum over workers is
  approximately current, which is what Envoy's flushed stats are too.
- Gauges are ints that go up and down; on a given scope they may be
  negative for a moment (a connection counted on one worker and released
  on none never happens: each gauge is raised and lowered by its owner),
  but their sum over workers is the gauge's value.

Status-code counters are lists indexed by code (``upstream_rq_code[200]``)
or by class (``downstream_rq_xx[2]``): a list index is as cheap as an
attribute and needs no name formatting on the hot path.
"""

from __future__ import annotations

from typing import Any, Iterator

__all__ = [
    "ClusterTrafficStats",
    "HttpConnManagerStats",
    "ListenerStats",
    "MainThreadStats",
    "StatsScope",
    "WorkerListenerStats",
]

COUNTER = "counter"
GAUGE = "gauge"


class StatsScope:
    """Base class: ``COUNTERS`` and ``GAUGES`` name the int fields a subclass declares in ``__slots__``.

    Subclasses with dynamic stats (per status code) override :meth:`dynamic`.
    """

    __slots__ = ()

    #: Counter fields, named as the stat's last component in Envoy.
    COUNTERS: tuple[str, ...] = ()
    #: Gauge fields, named as the stat's last component in Envoy.
    GAUGES: tuple[str, ...] = ()
    #: For each gauge, the counter that is non-zero once the gauge has
    #: moved: Envoy marks a gauge *used* on its first change, which is what
    #: ``/stats?usedonly`` shows.
    GAUGE_USED_WITH: dict[str, str] = {}

    def __init__(self) -> None:
        for name in self.COUNTERS:
            setattr(self, name, 0)
        for name in self.GAUGES:
            setattr(self, name, 0)

    def __repr__(self) -> str:
        fields = " ".join(f"{name}={getattr(self, name)}" for name in self.COUNTERS + self.GAUGES if getattr(self, name))
        return f"<{type(self).__name__} {fields}>"

    def values(self) -> Iterator[tuple[str, str, int]]:
        """``(name within the scope, kind, value)`` of every stat this scope shows now.

        Read from any thread (see the module docstring).  Stats that Envoy
        creates on first use are yielded only when non-zero.
        """
        for name in self.COUNTERS:
            yield name, COUNTER, getattr(self, name)
        for name in self.GAUGES:
            yield name, GAUGE, getattr(self, name)


class MainThreadStats(StatsScope):
    """A scope kept by one main-thread component (a health checker, an outlier detector).

    Its gauges move through :meth:`add`, which remembers that they moved:
    Envoy's ``usedonly`` shows a gauge once it changed, whatever its value.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        #: The gauges that ever changed.
        self.gauges_used: set[str] = set()

    def add(self, gauge: str, amount: int) -> None:
        """Move gauge ``gauge`` by ``amount``."""
        setattr(self, gauge, getattr(self, gauge) + amount)
        self.gauges_used.add(gauge)


class _StatusClassCounters(list):
    """``[unused, 1xx, 2xx, 3xx, 4xx, 5xx]``: index a response code's class with ``code // 100``."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__([0] * 6)


class HttpConnManagerStats(StatsScope):
    """One worker's ``http.<stat_prefix>.`` stats of one listener's connection manager.

    Written by the connection manager (``ConnectionManagerImpl``, its
    streams) and the router filter of that worker; see the module docstring
    for the threading contract.  ``downstream_rq_xx[n]`` is
    ``downstream_rq_<n>xx`` (Envoy creates all five up front, so they are
    always shown).
    """

    COUNTERS = (
        "downstream_cx_total",
        "downstream_cx_destroy",
        "downstream_cx_protocol_error",
        "downstream_cx_idle_timeout",
        "downstream_rq_total",
        "downstream_rq_http1_total",
        "downstream_rq_completed",
        "downstream_rq_timeout",
        "downstream_rq_idle_timeout",
        "no_route",
        "rq_direct_response",
        "rq_total",
    )
    GAUGES = ("downstream_cx_active", "downstream_rq_active")
    GAUGE_USED_WITH = {"downstream_cx_active": "downstream_cx_total", "downstream_rq_active": "downstream_rq_total"}

    __slots__ = COUNTERS + GAUGES + ("downstream_rq_xx",)

    def __init__(self) -> None:
        super().__init__()
        self.downstream_rq_xx = _StatusClassCounters()

    def charge_response(self, code: Any) -> None:
        """A response's headers went downstream (Envoy's ``chargeStats``): completed, and its class."""
        self.downstream_rq_completed += 1
        if code is not None and 100 <= code < 600:
            self.downstream_rq_xx[code // 100] += 1

    def values(self) -> Iterator[tuple[str, str, int]]:
        yield from super().values()
        for n in range(1, 6):
            yield f"downstream_rq_{n}xx", COUNTER, self.downstream_rq_xx[n]


class ListenerStats(StatsScope):
    """One worker's ``listener.<address>.`` connection counts (written by its ``ActiveTcpListener``)."""

    COUNTERS = ("downstream_cx_total", "downstream_cx_destroy")
    GAUGES = ("downstream_cx_active",)
    GAUGE_USED_WITH = {"downstream_cx_active": "downstream_cx_total"}

    __slots__ = COUNTERS + GAUGES


class WorkerListenerStats(StatsScope):
    """``listener.<address>.worker_<n>.``: a read-only view of one worker's :class:`ListenerStats`.

    Envoy shows each worker's ``downstream_cx_total`` and
    ``downstream_cx_active`` under the listener; the view reads the
    worker's own counters, so nothing is counted twice on the hot path.
    """

    GAUGE_USED_WITH = {"downstream_cx_active": "downstream_cx_total"}

    __slots__ = ("_of",)

    def __init__(self, of: ListenerStats) -> None:
        self._of = of

    def values(self) -> Iterator[tuple[str, str, int]]:
        yield "downstream_cx_active", GAUGE, self._of.downstream_cx_active
        yield "downstream_cx_total", COUNTER, self._of.downstream_cx_total


class ClusterTrafficStats(StatsScope):
    """One worker's ``cluster.<name>.`` traffic stats (Envoy's ``ClusterTrafficStats``).

    Written by that worker's connection pools of the cluster (connections,
    pending requests, ``upstream_rq_total``) and by its router filters
    (response codes, timeouts, retries).  ``upstream_rq_code[c]`` is
    ``upstream_rq_<c>`` and ``upstream_rq_xx[n]`` is ``upstream_rq_<n>xx``;
    ``retry_rq_code``, ``retry_rq_xx`` and ``retry_rq_completed`` are the
    same for the responses a retry replaced (``retry.upstream_rq_<c>``...).
    Envoy creates those on first use, so only non-zero ones are shown.
    """

    COUNTERS = (
        "upstream_cx_total",
        "upstream_cx_destroy",
        "upstream_cx_connect_fail",
        "upstream_cx_connect_timeout",
        "upstream_cx_overflow",
        "upstream_cx_none_healthy",
        "lb_healthy_panic",
        "upstream_rq_total",
        "upstream_rq_completed",
        "upstream_rq_pending_total",
        "upstream_rq_pending_overflow",
        "upstream_rq_pending_failure_eject",
        "upstream_rq_timeout",
        "upstream_rq_per_try_timeout",
        "upstream_rq_retry",
        "upstream_rq_retry_success",
        "upstream_rq_retry_limit_exceeded",
        "upstream_rq_retry_overflow",
        "upstream_rq_retry_backoff_exponential",
        "upstream_rq_retry_backoff_ratelimited",
        "retry_or_shadow_abandoned",
    )
    GAUGES = ("upstream_cx_active", "upstream_rq_active", "upstream_rq_pending_active")
    GAUGE_USED_WITH = {
        "upstream_cx_active": "upstream_cx_total",
        "upstream_rq_active": "upstream_rq_total",
        "upstream_rq_pending_active": "upstream_rq_pending_total",
    }

    __slots__ = COUNTERS + GAUGES + ("upstream_rq_code", "upstream_rq_xx", "retry_rq_code", "retry_rq_xx", "retry_rq_completed")

    def __init__(self) -> None:
        super().__init__()
        self.upstream_rq_code = [0] * 600
        self.upstream_rq_xx = _StatusClassCounters()
        # Few requests are retried: the per-code list is made on first use.
        self.retry_rq_code: list[int] = []
        self.retry_rq_xx = _StatusClassCounters()
        self.retry_rq_completed = 0

    def charge_response(self, code: int) -> None:
        """The router got (or made, for an upstream failure) response ``code`` (Envoy's ``chargeUpstreamCode``)."""
        self.upstream_rq_completed += 1
        if 100 <= code < 600:
            self.upstream_rq_code[code] += 1
            self.upstream_rq_xx[code // 100] += 1

    def charge_retried_response(self, code: int) -> None:
        """The router retried instead of relaying response ``code`` (Envoy's ``retry.`` response stats)."""
        self.retry_rq_completed += 1
        if 100 <= code < 600:
            if not self.retry_rq_code:
                self.retry_rq_code = [0] * 600
            self.retry_rq_code[code] += 1
            self.retry_rq_xx[code // 100] += 1

    def values(self) -> Iterator[tuple[str, str, int]]:
        yield from super().values()
        yield from _code_stats("", self.upstream_rq_code, self.upstream_rq_xx)
        if self.retry_rq_completed:
            yield "retry.upstream_rq_completed", COUNTER, self.retry_rq_completed
            yield from _code_stats("retry.", self.retry_rq_code, self.retry_rq_xx)


def _code_stats(prefix: str, codes: list[int], classes: list[int]) -> Iterator[tuple[str, str, int]]:
    """The non-zero ``<prefix>upstream_rq_<code>`` and ``<prefix>upstream_rq_<n>xx`` counters."""
    if codes:
        for code in range(100, 600):
            if codes[code]:
                yield f"{prefix}upstream_rq_{code}", COUNTER, codes[code]
    for n in range(1, 6):
        if classes[n]:
            yield f"{prefix}upstream_rq_{n}xx", COUNTER, classes[n]
