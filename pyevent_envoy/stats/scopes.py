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

Histograms are :class:`~pyevent_envoy.stats.histogram.HistogramRecorder`
fields, written by the owner the same way (``stats.downstream_rq_time.record_duration(seconds)``)
and merged by the stats flush (:mod:`pyevent_envoy.stats.histogram`).
Byte counts are kept by the connections themselves, in the scope's
:class:`ConnectionStats`.
"""

from __future__ import annotations

from typing import Any, Iterator

from pyevent_envoy.stats.histogram import HistogramRecorder

__all__ = [
    "ClusterTrafficStats",
    "ConnectionStats",
    "HttpConnManagerStats",
    "ListenerStats",
    "MainThreadStats",
    "ServerStats",
    "SslStats",
    "StatsScope",
    "WorkerListenerStats",
]

COUNTER = "counter"
GAUGE = "gauge"


class StatsScope:
    """Base class: ``COUNTERS`` and ``GAUGES`` name the int fields a subclass declares in
    ``__slots__``, ``HISTOGRAMS`` its :class:`HistogramRecorder` fields.

    Subclasses with stats made on first use (per status code) extend
    :meth:`values` and :meth:`histograms`.
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
    #: Histogram fields (Envoy creates them with the scope, so they are
    #: shown, as ``No recorded values``, before their first value).
    HISTOGRAMS: tuple[str, ...] = ()

    def __init__(self) -> None:
        for name in self.COUNTERS:
            setattr(self, name, 0)
        for name in self.GAUGES:
            setattr(self, name, 0)
        for name in self.HISTOGRAMS:
            setattr(self, name, HistogramRecorder())

    def __repr__(self) -> str:
        fields = " ".join(f"{name}={getattr(self, name)}" for name in self.COUNTERS + self.GAUGES if getattr(self, name))
        return f"<{type(self).__name__} {fields}>"

    def values(self) -> Iterator[tuple]:
        """``(name within the scope, kind, value)`` of every counter and gauge this scope shows now.

        Read from any thread (see the module docstring).  Stats that Envoy
        creates on first use are yielded only when non-zero.  A gauge whose
        use :attr:`GAUGE_USED_WITH` cannot tell comes as
        ``(name, GAUGE, value, used)``.
        """
        for name in self.COUNTERS:
            yield name, COUNTER, getattr(self, name)
        for name in self.GAUGES:
            yield name, GAUGE, getattr(self, name)

    def histograms(self) -> Iterator[tuple[str, HistogramRecorder]]:
        """``(name within the scope, recorder)`` of every histogram this scope shows now (any thread)."""
        for name in self.HISTOGRAMS:
            yield name, getattr(self, name)


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


def _status_class_counters() -> list[int]:
    """``[unused, 1xx, 2xx, 3xx, 4xx, 5xx]``: index a response code's class with ``code // 100``.

    A plain list, not a subclass: CPython specializes indexing for exact
    lists only, and these are counted on every response.
    """
    return [0] * 6


class ConnectionStats:
    """The byte stats one scope's connections keep (Envoy's ``Network::Connection::ConnectionStats``).

    A connection given this object (``ConnectionImpl.set_connection_stats``)
    counts, on its own thread, as Envoy's ``ConnectionImpl`` does: after each
    read, the bytes read (``read_total``) and the change in its read buffer's
    length (``read_current``, before the filters consume the bytes); after
    each write, the bytes written (``write_total``) and the change in its
    write buffer's length (``write_current``); when it closes, its share of
    both gauges goes back to 0.  ``write_current_moved`` records that the
    write gauge ever changed (a write left bytes behind), which is when
    Envoy counts it as used.  One object per scope, so one writing thread.
    """

    __slots__ = (
        "read_total",
        "read_current",
        "write_total",
        "write_current",
        "write_current_moved",
        "delayed_close_timeouts",
    )

    def __init__(self) -> None:
        self.read_total = 0
        self.read_current = 0
        self.write_total = 0
        self.write_current = 0
        self.write_current_moved = False
        #: Closes that waited for the peer until the delayed close timeout
        #: (Envoy's ``delayed_close_timeouts``; only the connection manager's
        #: scope shows it, as ``downstream_cx_delayed_close_timeout``).
        self.delayed_close_timeouts = 0

    def values(self, prefix: str) -> Iterator[tuple]:
        """Envoy's ``<prefix>_cx_{rx,tx}_bytes_{buffered,total}`` stats, with their use."""
        yield f"{prefix}_cx_rx_bytes_buffered", GAUGE, self.read_current, self.read_total > 0
        yield f"{prefix}_cx_rx_bytes_total", COUNTER, self.read_total
        yield f"{prefix}_cx_tx_bytes_buffered", GAUGE, self.write_current, self.write_current_moved
        yield f"{prefix}_cx_tx_bytes_total", COUNTER, self.write_total


class HttpConnManagerStats(StatsScope):
    """One worker's ``http.<stat_prefix>.`` stats of one listener's connection manager.

    Written by the connection manager (``ConnectionManagerImpl``, its
    streams) and the router filter of that worker; see the module docstring
    for the threading contract.  ``downstream_rq_xx[n]`` is
    ``downstream_rq_<n>xx`` (Envoy creates all five up front, so they are
    always shown).  ``connection_stats`` holds the downstream connections'
    ``downstream_cx_{rx,tx}_bytes_*``.
    """

    COUNTERS = (
        "downstream_cx_total",
        "downstream_cx_destroy",
        # Who closed (the close event's side); with requests still active, on top.
        "downstream_cx_destroy_local",
        "downstream_cx_destroy_remote",
        "downstream_cx_destroy_active_rq",
        "downstream_cx_destroy_local_active_rq",
        "downstream_cx_destroy_remote_active_rq",
        "downstream_cx_http1_total",
        "downstream_cx_protocol_error",
        "downstream_cx_idle_timeout",
        "downstream_cx_drain_close",
        "downstream_cx_ssl_total",
        "downstream_rq_total",
        "downstream_rq_http1_total",
        "downstream_rq_completed",
        "downstream_rq_response_before_rq_complete",
        "downstream_rq_rx_reset",
        "downstream_rq_timeout",
        "downstream_rq_idle_timeout",
        "downstream_rq_too_large",
        "no_route",
        "rq_direct_response",
        "rq_total",
    )
    GAUGES = ("downstream_cx_active", "downstream_cx_http1_active", "downstream_cx_ssl_active", "downstream_rq_active")
    GAUGE_USED_WITH = {
        "downstream_cx_active": "downstream_cx_total",
        "downstream_cx_http1_active": "downstream_cx_http1_total",
        "downstream_cx_ssl_active": "downstream_cx_ssl_total",
        "downstream_rq_active": "downstream_rq_total",
    }
    HISTOGRAMS = ("downstream_cx_length_ms", "downstream_rq_time")

    __slots__ = COUNTERS + GAUGES + HISTOGRAMS + ("downstream_rq_xx", "connection_stats")

    def __init__(self) -> None:
        super().__init__()
        self.downstream_rq_xx = _status_class_counters()
        self.connection_stats = ConnectionStats()

    def charge_response(self, code: Any) -> None:
        """A response's headers went downstream (Envoy's ``chargeStats``): completed, and its class."""
        self.downstream_rq_completed += 1
        if code is not None and 100 <= code < 600:
            self.downstream_rq_xx[code // 100] += 1

    def values(self) -> Iterator[tuple]:
        yield from super().values()
        for n in range(1, 6):
            yield f"downstream_rq_{n}xx", COUNTER, self.downstream_rq_xx[n]
        yield from self.connection_stats.values("downstream")
        yield "downstream_cx_delayed_close_timeout", COUNTER, self.connection_stats.delayed_close_timeouts


class ListenerStats(StatsScope):
    """One worker's ``listener.<address>.`` connection stats (written by its ``ActiveTcpListener``)."""

    COUNTERS = ("downstream_cx_total", "downstream_cx_destroy")
    GAUGES = ("downstream_cx_active",)
    GAUGE_USED_WITH = {"downstream_cx_active": "downstream_cx_total"}
    HISTOGRAMS = ("connections_accepted_per_socket_event", "downstream_cx_length_ms")

    __slots__ = COUNTERS + GAUGES + HISTOGRAMS


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

    def values(self) -> Iterator[tuple]:
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
    Envoy creates those on first use, so only non-zero ones are shown; the
    same goes for the ``upstream_rq_time``, ``external.upstream_rq_time`` and
    ``internal.upstream_rq_time`` histograms.  ``connection_stats`` holds the
    upstream connections' ``upstream_cx_{rx,tx}_bytes_*``.
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
        "upstream_rq_active_overflow",
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

    HISTOGRAMS = ("upstream_cx_connect_ms", "upstream_cx_length_ms", "upstream_rq_per_cx")

    __slots__ = COUNTERS + GAUGES + HISTOGRAMS + (
        "upstream_rq_code",
        "upstream_rq_xx",
        "retry_rq_code",
        "retry_rq_xx",
        "retry_rq_completed",
        "upstream_rq_time",
        "external_upstream_rq_time",
        "internal_upstream_rq_time",
        "connection_stats",
        "ssl",
    )

    def __init__(self) -> None:
        super().__init__()
        self.upstream_rq_code = [0] * 600
        self.upstream_rq_xx = _status_class_counters()
        # Few requests are retried: the per-code list is made on first use.
        self.retry_rq_code: list[int] = []
        self.retry_rq_xx = _status_class_counters()
        self.retry_rq_completed = 0
        # Envoy's response-timing histograms are made on first use (CodeStats).
        self.upstream_rq_time = HistogramRecorder()
        self.external_upstream_rq_time = HistogramRecorder()
        self.internal_upstream_rq_time = HistogramRecorder()
        self.connection_stats = ConnectionStats()
        #: The ``ssl.`` stats of a TLS cluster (:class:`SslStats`, set by its owner), else None.
        self.ssl: Any = None

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

    def charge_response_timing(self, seconds: float, internal: bool) -> None:
        """An upstream response ended, ``seconds`` after the request did (Envoy's ``chargeResponseTiming``):
        ``upstream_rq_time`` and, by whether the request was internal, ``internal.``/``external.upstream_rq_time``."""
        self.upstream_rq_time.record_duration(seconds)
        (self.internal_upstream_rq_time if internal else self.external_upstream_rq_time).record_duration(seconds)

    def values(self) -> Iterator[tuple]:
        yield from super().values()
        yield from _code_stats("", self.upstream_rq_code, self.upstream_rq_xx)
        if self.ssl is not None:
            for name, kind, value in self.ssl.values():
                yield f"ssl.{name}", kind, value
        if self.retry_rq_completed:
            yield "retry.upstream_rq_completed", COUNTER, self.retry_rq_completed
            yield from _code_stats("retry.", self.retry_rq_code, self.retry_rq_xx)
        yield from self.connection_stats.values("upstream")

    def histograms(self) -> Iterator[tuple[str, HistogramRecorder]]:
        yield from super().histograms()
        for name, recorder in (
            ("upstream_rq_time", self.upstream_rq_time),
            ("external.upstream_rq_time", self.external_upstream_rq_time),
            ("internal.upstream_rq_time", self.internal_upstream_rq_time),
        ):
            if recorder:  # (false until its first value)
                yield name, recorder


class SslStats(StatsScope):
    """One worker's ``ssl.`` stats of one TLS context (Envoy's ``SslStats``), under
    ``listener.<address>.ssl.`` or ``cluster.<name>.ssl.``; written by the TLS connections.

    The counters are the ones this implementation can count truthfully;
    ``ssl.versions.<version>`` and ``ssl.ciphers.<name>`` are made on first use.
    """

    COUNTERS = ("connection_error", "handshake", "session_reused", "no_certificate", "fail_verify_no_cert", "fail_verify_error")

    __slots__ = COUNTERS + ("versions", "ciphers")

    def __init__(self) -> None:
        super().__init__()
        self.versions: dict[str, int] = {}
        self.ciphers: dict[str, int] = {}

    def values(self) -> Iterator[tuple]:
        yield from super().values()
        for version, count in list(self.versions.items()):
            yield f"versions.{version}", COUNTER, count
        for cipher, count in list(self.ciphers.items()):
            yield f"ciphers.{cipher}", COUNTER, count

    def record_handshake(self, sslobj: Any) -> None:
        """A handshake finished: Envoy's ``logHandshake`` counters."""
        self.handshake += 1
        if sslobj.session_reused:
            self.session_reused += 1
        version = sslobj.version()
        if version:
            self.versions[version] = self.versions.get(version, 0) + 1
        cipher = sslobj.cipher()
        if cipher:
            self.ciphers[cipher[0]] = self.ciphers.get(cipher[0], 0) + 1
        if sslobj.getpeercert(binary_form=True) is None:
            self.no_certificate += 1

    def record_failure(self, exc: Any) -> None:
        """A handshake failed with ``exc`` (an ``ssl.SSLError``).

        As in Envoy, a peer certificate that is missing or fails verification
        counts in its ``fail_verify_*`` counter only; any other failure (not
        TLS, no shared version or cipher) is a ``connection_error``.
        """
        if (exc.reason or "") == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            self.fail_verify_no_cert += 1
        elif getattr(exc, "verify_code", None) is not None:
            self.fail_verify_error += 1
        else:
            self.connection_error += 1


class ServerStats(StatsScope):
    """``server.``: the main thread's ``initialization_time_ms`` (from start-up to every worker serving)."""

    HISTOGRAMS = ("initialization_time_ms",)

    __slots__ = HISTOGRAMS


def _code_stats(prefix: str, codes: list[int], classes: list[int]) -> Iterator[tuple]:
    """The non-zero ``<prefix>upstream_rq_<code>`` and ``<prefix>upstream_rq_<n>xx`` counters."""
    if codes:
        for code in range(100, 600):
            if codes[code]:
                yield f"{prefix}upstream_rq_{code}", COUNTER, codes[code]
    for n in range(1, 6):
        if classes[n]:
            yield f"{prefix}upstream_rq_{n}xx", COUNTER, classes[n]
