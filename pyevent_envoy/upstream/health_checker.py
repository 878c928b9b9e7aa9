"""Active health checking (Envoy's ``HealthCheckerImplBase`` and the HTTP and TCP checkers).

Everything here runs on the main thread's dispatcher: one
:class:`ActiveHealthCheckSession` per host, each with an interval timer and
a timeout timer, talking to its host through the same non-blocking
connection (:class:`~pyevent_envoy.network.ClientConnectionImpl`) and
HTTP/1.1 codec client as the proxy's upstream requests.  A result that
changes a host's health flags is reported to the checker's callbacks; the
cluster's callback rebuilds its :class:`~pyevent_envoy.upstream.HostSet`,
which the cluster manager publishes to every worker, as it publishes a DNS
change.  Workers never see the checker.

The rules, as Envoy 1.40 applies them (``health_checker_base_impl.cc``):

- Hosts of a health-checked cluster start with ``FAILED_ACTIVE_HC``.  The
  first check of a host decides at once: a pass makes it healthy (the
  ``healthy_threshold`` is not applied to the first check), a failure
  leaves it failed.  The cluster finishes initializing (and so becomes
  visible to workers) once every host has had its first result.
- Afterwards ``healthy_threshold`` consecutive passes make a failed host
  healthy.  A healthy host becomes failed at once on an *active* failure (an
  HTTP status outside ``expected_statuses`` and ``retriable_statuses``), and
  after ``unhealthy_threshold`` consecutive failures of the other kinds: a
  network failure (connect failure, connection closed, no answer within
  ``timeout``) or a retriable status.
- A failing HTTP answer with ``x-envoy-immediate-health-check-fail`` also
  raises ``EXCLUDED_VIA_IMMEDIATE_HC_FAIL``; a passing one with
  ``x-envoy-degraded`` raises ``DEGRADED_ACTIVE_HC`` (counted in the
  ``degraded`` gauge; load balancers send it only the share of traffic the
  healthy hosts cannot take, see :class:`~pyevent_envoy.upstream.HostSet`).
- The next check is due after: ``no_traffic_interval`` (default 60 s;
  ``no_traffic_healthy_interval`` for a healthy host when set) as long as
  the cluster has never opened an upstream connection for traffic (Envoy's
  ``upstream_cx_total`` was never used; health check connections do not
  count); then ``interval`` for a healthy host, ``unhealthy_interval``
  (default ``interval``) for a failed one, and after a result that moves a
  host towards a change without completing it, ``healthy_edge_interval``
  (default ``interval``) or ``unhealthy_edge_interval`` (default
  ``unhealthy_interval``).  ``interval_jitter_percent`` adds up to that
  percentage, ``interval_jitter`` up to that much, at random, in whole
  milliseconds as Envoy computes them; the first check waits a random time
  up to ``initial_jitter``.
- The HTTP check is ``GET path`` with ``Host: host`` (default: the cluster's
  name) and ``User-Agent: Envoy/HC``, then ``request_headers_to_remove`` and
  ``request_headers_to_add``.  The connection is kept for the next check
  unless ``reuse_connection`` is false or the answer closes it.  The TCP
  check connects, writes ``send`` and waits until the bytes read contain
  every ``receive`` block in order; with nothing to receive, connecting is
  the pass and the connection is closed at once.

Stats (``cluster.<name>.health_check.``): ``attempt``, ``success``,
``failure``, ``network_failure``, ``passive_failure``, ``verify_cluster``
(counters) and ``healthy``, ``degraded`` (gauges), kept by the checker on
the main thread (:attr:`HealthCheckerImplBase.stats`).

The checker reads its configuration by field name, so any object with
Envoy's names works (``pyevent_envoy.config.bootstrap.HealthCheck`` is the
one the proxy uses): ``timeout``, ``interval``, ``unhealthy_threshold``,
``healthy_threshold``, ``interval_jitter``, ``interval_jitter_percent``,
``initial_jitter``, ``no_traffic_interval``, ``no_traffic_healthy_interval``,
``unhealthy_interval``, ``unhealthy_edge_interval``,
``healthy_edge_interval`` (seconds, ``None`` when unset),
``reuse_connection`` and one of ``http_health_check`` (``path``, ``host``,
``request_headers_to_add``, ``request_headers_to_remove``,
``expected_statuses``, ``retriable_statuses``) and ``tcp_health_check``
(``send``, ``receive``, as bytes).
"""

from __future__ import annotations

import enum
import logging
import random
from typing import TYPE_CHECKING, Any, Callable, Optional

from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.http.codec import RequestEncoder
from pyevent_envoy.http.conn_pool import CodecClient, StreamResetReason
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.http.router.config_impl import HeaderParser
from pyevent_envoy.network.buffer import OwnedBuffer
from pyevent_envoy.network.connection import ConnectionCallbacks, ConnectionCloseType, ConnectionEvent
from pyevent_envoy.network.connection_impl import ClientConnectionImpl
from pyevent_envoy.network.ssl_socket import client_connection
from pyevent_envoy.network.filter import FilterStatus, ReadFilter
from pyevent_envoy.stats.scopes import MainThreadStats
from pyevent_envoy.upstream.host import HealthFlag, HostImpl

if TYPE_CHECKING:
    from pyevent_envoy.upstream.cluster import Cluster

__all__ = [
    "FailureType",
    "HealthCheckerImplBase",
    "HealthCheckerStats",
    "HealthState",
    "HealthTransition",
    "HostCheckCompleteCb",
    "HttpHealthCheckerImpl",
    "TcpHealthCheckerImpl",
    "create_health_checker",
]

_log = logging.getLogger("pyevent_envoy.upstream")

#: Envoy's ``User-Agent`` of health check requests.
USER_AGENT = "Envoy/HC"
#: Envoy's default ``no_traffic_interval``.
DEFAULT_NO_TRAFFIC_INTERVAL = 60.0

_FAILED = HealthFlag.FAILED_ACTIVE_HC
_DEGRADED = HealthFlag.DEGRADED_ACTIVE_HC


class HealthTransition(enum.Enum):
    """What one check result did to its host (Envoy's ``HealthTransition``)."""

    UNCHANGED = "unchanged"
    #: The host's health flags changed: the cluster rebuilds its host set.
    CHANGED = "changed"
    #: A step towards a change that needs more results (a threshold not reached yet).
    CHANGE_PENDING = "change_pending"


class HealthState(enum.Enum):
    """The result of one check."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class FailureType(enum.Enum):
    """Envoy's ``HealthCheckFailureType``: how a check failed."""

    #: The host answered, and the answer is a failure.
    ACTIVE = "active"
    #: Reported by traffic (outlier detection), not by a check.
    PASSIVE = "passive"
    #: Connect failure, or the connection closed before the answer.
    NETWORK = "network"
    #: No answer within ``timeout``.
    NETWORK_TIMEOUT = "network_timeout"


#: ``cb(host, transition, state)`` on the main thread after every check result.
HostCheckCompleteCb = Callable[[HostImpl, HealthTransition, HealthState], None]


class HealthCheckerStats(MainThreadStats):
    """``cluster.<name>.health_check.*``, written on the main thread only."""

    COUNTERS = ("attempt", "success", "failure", "network_failure", "passive_failure", "verify_cluster")
    GAUGES = ("healthy", "degraded")
    __slots__ = COUNTERS + GAUGES + ("gauges_used",)


def _ms(seconds: Optional[float], default_ms: int) -> int:
    """A duration in whole milliseconds, as Envoy reads durations (``PROTOBUF_GET_MS_OR_DEFAULT``)."""
    if seconds is None:
        return default_ms
    return int(round(seconds * 1000))


class HealthCheckerImplBase:
    """Health checks every host of one cluster, on the main thread.

    Args:
        cluster: the cluster whose hosts are checked (its member-update
            callbacks add and remove sessions).
        config: the ``HealthCheck`` (see the module docstring).
        dispatcher: the main dispatcher.
        traffic_seen: returns True once the cluster has opened an upstream
            connection for traffic; until then checks run every
            ``no_traffic_interval``.  Called once per check, on the main thread.
        rng: the random generator for the jitters.

    Main thread only, like the cluster.
    """

    def __init__(
        self,
        cluster: "Cluster",
        config: Any,
        dispatcher: Dispatcher,
        *,
        traffic_seen: Callable[[], bool] = lambda: False,
        rng: Optional[random.Random] = None,
    ) -> None:
        self.cluster = cluster
        self.config = config
        self.dispatcher = dispatcher
        self.stats = HealthCheckerStats()
        self._traffic_seen = traffic_seen
        self._had_traffic = False
        self._rng = rng if rng is not None else random.Random()
        get = getattr
        self.timeout = float(config.timeout)
        self.unhealthy_threshold = int(config.unhealthy_threshold)
        self.healthy_threshold = int(config.healthy_threshold)
        self.reuse_connection = bool(get(config, "reuse_connection", True))
        self._interval_ms = _ms(config.interval, 0)
        self._no_traffic_ms = _ms(get(config, "no_traffic_interval", None), int(DEFAULT_NO_TRAFFIC_INTERVAL * 1000))
        self._no_traffic_healthy_ms = _ms(get(config, "no_traffic_healthy_interval", None), self._no_traffic_ms)
        self._unhealthy_ms = _ms(get(config, "unhealthy_interval", None), self._interval_ms)
        self._unhealthy_edge_ms = _ms(get(config, "unhealthy_edge_interval", None), self._unhealthy_ms)
        self._healthy_edge_ms = _ms(get(config, "healthy_edge_interval", None), self._interval_ms)
        self._interval_jitter_ms = _ms(get(config, "interval_jitter", None), 0)
        self._interval_jitter_percent = int(get(config, "interval_jitter_percent", 0) or 0)
        self._initial_jitter_ms = _ms(get(config, "initial_jitter", None), 0)
        self._sessions: dict[HostImpl, ActiveHealthCheckSession] = {}
        self._callbacks: list[HostCheckCompleteCb] = []
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.cluster.info.name!r} {len(self._sessions)} hosts>"

    # public interface

    def add_host_check_complete_cb(self, cb: HostCheckCompleteCb) -> None:
        """Call ``cb(host, transition, state)`` after every check result (and when a never-checked host goes)."""
        self._callbacks.append(cb)

    def start(self) -> None:
        """Start checking the cluster's hosts, and every host it gains later.  Once."""
        if self._started:
            return
        self._started = True
        self.cluster.add_member_update_cb(self._on_cluster_member_update)
        self._add_hosts(self.cluster.host_set.hosts)

    def close(self) -> None:
        """Stop every session (timers, connections).  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._callbacks.clear()
        self.cluster.remove_member_update_cb(self._on_cluster_member_update)
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            session.close()

    def session(self, host: HostImpl) -> Optional["ActiveHealthCheckSession"]:
        """The session checking ``host``, if any."""
        return self._sessions.get(host)

    def interval(self, state: HealthState, transition: HealthTransition) -> float:
        """Seconds until the next check after a result (Envoy's ``HealthCheckerImplBase::interval``)."""
        if not self._had_traffic:
            # Sticky, like Envoy's "used" flag on upstream_cx_total.
            self._had_traffic = bool(self._traffic_seen())
        pending = transition is HealthTransition.CHANGE_PENDING
        if self._had_traffic:
            if state is HealthState.UNHEALTHY:
                base_ms = self._unhealthy_edge_ms if pending else self._unhealthy_ms
            else:
                base_ms = self._healthy_edge_ms if pending else self._interval_ms
        elif state is HealthState.HEALTHY and not pending:
            base_ms = self._no_traffic_healthy_ms
        else:
            base_ms = self._no_traffic_ms
        return self._with_jitter(base_ms, self._interval_jitter_ms) / 1000.0

    def initial_delay(self) -> Optional[float]:
        """Seconds before a new host's first check, or None to check at once."""
        if self._initial_jitter_ms == 0:
            return None
        return self._with_jitter(0, self._initial_jitter_ms) / 1000.0

    # for sessions

    def run_callbacks(self, host: HostImpl, transition: HealthTransition, state: HealthState) -> None:
        for cb in list(self._callbacks):
            cb(host, transition, state)

    def make_session(self, host: HostImpl) -> "ActiveHealthCheckSession":
        """A new session for ``host`` (each checker kind has its own)."""
        raise NotImplementedError

    # internals

    def _with_jitter(self, base_ms: int, jitter_ms: int) -> int:
        percent_mod = self._interval_jitter_percent * base_ms // 100
        if percent_mod > 0:
            base_ms += self._rng.randrange(percent_mod)
        if jitter_ms > 0:
            base_ms += self._rng.randrange(jitter_ms)
        return max(1, base_ms)  # never 0: a zero interval would check in a loop

    def _add_hosts(self, hosts: tuple[HostImpl, ...]) -> None:
        for host in hosts:
            session = self.make_session(host)
            self._sessions[host] = session
            session.start()

    def _on_cluster_member_update(self, _cluster: Any, added: tuple[HostImpl, ...], removed: tuple[HostImpl, ...]) -> None:
        if self._closed:
            return
        self._add_hosts(added)
        for host in removed:
            session = self._sessions.pop(host, None)
            if session is not None:
                session.close()


class ActiveHealthCheckSession:
    """The checks of one host (Envoy's ``ActiveHealthCheckSession``): the state machine.

    A subclass does the I/O: :meth:`on_interval` starts a check,
    :meth:`on_timeout` abandons it, and the subclass reports the outcome
    with :meth:`handle_success` or :meth:`handle_failure`.
    """

    __slots__ = ("host", "parent", "_interval_timer", "_timeout_timer", "_num_healthy", "_num_unhealthy",
                 "_first_check", "_closed")

    def __init__(self, parent: HealthCheckerImplBase, host: HostImpl) -> None:
        self.host = host
        self.parent = parent
        self._interval_timer = parent.dispatcher.create_timer(self._on_interval_base)
        self._timeout_timer = parent.dispatcher.create_timer(self._on_timeout_base)
        self._num_healthy = 0
        self._num_unhealthy = 0
        self._first_check = True
        self._closed = False
        if not host.health_flags & _FAILED:
            parent.stats.add("healthy", 1)
        if host.health_flags & _DEGRADED:
            parent.stats.add("degraded", 1)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host.address}>"

    def start(self) -> None:
        delay = self.parent.initial_delay()
        if delay is None:
            self._on_interval_base()
        else:
            self._interval_timer.enable_timer(delay)

    def close(self) -> None:
        """The host left the cluster (or the checker closed): stop, and settle the gauges."""
        if self._closed:
            return
        self._closed = True
        self._interval_timer.close()
        self._timeout_timer.close()
        stats = self.parent.stats
        flags = self.host.health_flags
        if not flags & _FAILED:
            stats.add("healthy", -1)
        if flags & _DEGRADED:
            stats.add("degraded", -1)
        self.on_close()
        if self._first_check:
            # Whoever waits for this host's first result (cluster initialization) must not wait forever.
            state = HealthState.UNHEALTHY if flags & _FAILED else HealthState.HEALTHY
            self.parent.run_callbacks(self.host, HealthTransition.UNCHANGED, state)

    # results

    def handle_success(self, degraded: bool = False) -> None:
        """The check passed (Envoy's ``handleSuccess``)."""
        if self._closed:
            return
        parent = self.parent
        host = self.host
        self._num_unhealthy = 0
        transition = HealthTransition.UNCHANGED
        if host.health_flags & _FAILED:
            # The first result decides at once: startup is faster, at a small cost in reliability.
            if self._first_check or self._count_healthy() == parent.healthy_threshold:
                host.health_flag_clear(HealthFlag.ACTIVE_HC_TIMEOUT | HealthFlag.EXCLUDED_VIA_IMMEDIATE_HC_FAIL | _FAILED)
                parent.stats.add("healthy", 1)
                transition = HealthTransition.CHANGED
            else:
                transition = HealthTransition.CHANGE_PENDING
        if degraded != bool(host.health_flags & _DEGRADED):
            if degraded:
                host.health_flag_set(_DEGRADED)
                parent.stats.add("degraded", 1)
            else:
                host.health_flag_clear(_DEGRADED)
                parent.stats.add("degraded", -1)
            if transition is HealthTransition.UNCHANGED:
                transition = HealthTransition.CHANGED
        parent.stats.success += 1
        self._first_check = False
        parent.run_callbacks(host, transition, HealthState.HEALTHY)
        if not self._closed:
            self._timeout_timer.disable_timer()
            self._interval_timer.enable_timer(parent.interval(HealthState.HEALTHY, transition))

    def handle_failure(self, failure: FailureType, retriable: bool = False) -> None:
        """The check failed (Envoy's ``handleFailure``)."""
        if self._closed:
            return
        transition = self.set_unhealthy(failure, retriable)
        if not self._closed:  # a callback may have removed the host
            self._timeout_timer.disable_timer()
            self._interval_timer.enable_timer(self.parent.interval(HealthState.UNHEALTHY, transition))

    def set_unhealthy(self, failure: FailureType, retriable: bool = False) -> HealthTransition:
        """Count one failure (Envoy's ``setUnhealthy``); also what a passive failure does."""
        parent = self.parent
        host = self.host
        stats = parent.stats
        self._num_healthy = 0
        network = failure is FailureType.NETWORK or failure is FailureType.NETWORK_TIMEOUT
        transition = HealthTransition.UNCHANGED
        if not host.health_flags & _FAILED:
            # An answer that is a plain failure counts at once; the others count up to the threshold.
            if (not network and not retriable) or self._count_unhealthy() == parent.unhealthy_threshold:
                host.health_flag_set(_FAILED)
                stats.add("healthy", -1)
                transition = HealthTransition.CHANGED
            else:
                transition = HealthTransition.CHANGE_PENDING
        # A failed host that keeps timing out is flagged so; any other failure clears it.
        if failure is FailureType.NETWORK_TIMEOUT and host.health_flags & _FAILED:
            host.health_flag_set(HealthFlag.ACTIVE_HC_TIMEOUT)
        else:
            host.health_flag_clear(HealthFlag.ACTIVE_HC_TIMEOUT)
        stats.failure += 1
        if network:
            stats.network_failure += 1
        elif failure is FailureType.PASSIVE:
            stats.passive_failure += 1
        self._first_check = False
        parent.run_callbacks(host, transition, HealthState.UNHEALTHY)
        return transition

    def _count_healthy(self) -> int:
        self._num_healthy += 1
        return self._num_healthy

    def _count_unhealthy(self) -> int:
        self._num_unhealthy += 1
        return self._num_unhealthy

    # the I/O, per checker kind

    def on_interval(self) -> None:
        """Start one check."""
        raise NotImplementedError

    def on_timeout(self) -> None:
        """The check took longer than ``timeout``: abandon it (the failure is counted after)."""
        raise NotImplementedError

    def on_close(self) -> None:
        """Release the session's connection."""

    # timers

    def _on_interval_base(self) -> None:
        try:
            self.on_interval()
        finally:
            # Even when starting the check raised (the dispatcher logs it): the
            # timeout then counts the failure and the next interval follows, so
            # one bad check never stops a host's checking.
            if not self._closed:
                self._timeout_timer.enable_timer(self.parent.timeout)
            self.parent.stats.attempt += 1

    def _on_timeout_base(self) -> None:
        self.on_timeout()
        self.handle_failure(FailureType.NETWORK_TIMEOUT)


# -- HTTP ----------------------------------------------------------------------------------


def _in_ranges(status: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(start <= status < end for start, end in ranges)


class HttpHealthCheckerImpl(HealthCheckerImplBase):
    """``http_health_check``: one HTTP/1.1 ``GET`` per check (Envoy's ``HttpHealthCheckerImpl``)."""

    def __init__(self, cluster: "Cluster", config: Any, dispatcher: Dispatcher, **kwargs: Any) -> None:
        super().__init__(cluster, config, dispatcher, **kwargs)
        http = config.http_health_check
        self.path = http.path
        self.host_value = http.host or cluster.info.name
        self.expected_statuses = tuple(http.expected_statuses) or ((200, 201),)
        self.retriable_statuses = tuple(http.retriable_statuses)
        self.header_parser = HeaderParser(tuple(http.request_headers_to_add), tuple(http.request_headers_to_remove))

    def make_session(self, host: HostImpl) -> "HttpActiveHealthCheckSession":
        return HttpActiveHealthCheckSession(self, host)

    def request_headers(self) -> HeaderMap:
        headers = HeaderMap(
            [(":method", "GET"), (":authority", self.host_value), (":path", self.path), ("user-agent", USER_AGENT)]
        )
        if self.header_parser:
            self.header_parser.evaluate(headers, None, None, None, None)
        return headers


class HttpActiveHealthCheckSession(ActiveHealthCheckSession):
    """One host's HTTP checks over one kept-alive connection.

    The session is the owner a :class:`~pyevent_envoy.http.conn_pool.CodecClient`
    reports to (the part of a pool's interface it calls: ``dispatcher``,
    ``host``, ``cluster_info``, ``stats`` -- None: as in Envoy, check
    connections count in none of the cluster's traffic stats --, ``_on_client_connected``,
    ``_on_connect_failure``, ``_on_client_closed``, ``_on_stream_done``), the
    stream's owner (``on_upstream_reset``) and its response decoder.
    """

    #: No traffic stats for check connections (see the class docstring).
    stats = None

    __slots__ = ("dispatcher", "cluster_info", "_client", "_expect_reset", "_status", "_immediate_fail",
                 "_degraded_header", "_in_flight")

    def __init__(self, parent: HttpHealthCheckerImpl, host: HostImpl) -> None:
        super().__init__(parent, host)
        self.dispatcher = parent.dispatcher
        self.cluster_info = parent.cluster.info
        self._client: Optional[CodecClient] = None
        self._expect_reset = False
        self._status = 0
        self._immediate_fail = False
        self._degraded_header = False
        self._in_flight = False

    # ActiveHealthCheckSession

    def on_interval(self) -> None:
        parent: HttpHealthCheckerImpl = self.parent  # type: ignore[assignment]
        if self._client is None:
            self._client = CodecClient(self)  # type: ignore[arg-type]
            self._expect_reset = False
        self._in_flight = True
        encoder: RequestEncoder = self._client.start_stream(self, self)
        encoder.encode_headers(parent.request_headers(), True)

    def on_timeout(self) -> None:
        self._in_flight = False
        if self._client is not None:
            self._expect_reset = True  # the close resets the request: not a second failure
            self._client.close()

    def on_close(self) -> None:
        if self._client is not None:
            self._expect_reset = True
            self._client.close()

    # response decoder

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> None:
        self._status = int(headers.get(":status") or 0)
        self._immediate_fail = headers.get("x-envoy-immediate-health-check-fail") is not None
        self._degraded_header = headers.get("x-envoy-degraded") is not None

    def decode_data(self, data: bytes, end_stream: bool) -> None:
        """The body is not checked."""

    def decode_trailers(self, trailers: HeaderMap) -> None:
        """Trailers are not checked."""

    # stream owner

    def on_upstream_reset(self, reason: StreamResetReason) -> None:
        self._in_flight = False
        if self._expect_reset:
            return
        _log.debug("health check of %s: %s", self.host.address, reason.value)
        self.handle_failure(FailureType.NETWORK)

    def on_upstream_above_write_buffer_high_watermark(self) -> None:
        """A health check request is one small head: nothing to pause."""

    def on_upstream_below_write_buffer_low_watermark(self) -> None:
        """See above."""

    # what a CodecClient calls on its pool

    def _on_client_connected(self, client: CodecClient) -> None:
        """The request written before the connect goes out now."""

    def _on_connect_failure(self, client: CodecClient, transport_failure_reason: str, timeout: bool = False) -> None:
        if client is self._client:
            self._client = None
        if self._in_flight and not self._expect_reset:
            self._in_flight = False
            _log.debug(
                "health check of %s: connect %s (%s)",
                self.host.address,
                "timeout" if timeout else "failure",
                transport_failure_reason,
            )
            self.handle_failure(FailureType.NETWORK)

    def _on_client_closed(self, client: CodecClient) -> None:
        if client is self._client:
            self._client = None

    def _on_stream_done(self, client: CodecClient, reusable: bool) -> None:
        if not self._in_flight:  # the stream was reset: already counted
            if not reusable and not client.closed:
                client.close()
            return
        self._in_flight = False
        self._on_response_complete()
        if client.closed:
            return
        if not reusable or not self.parent.reuse_connection or self._closed:
            self._expect_reset = True
            client.close()

    def _on_response_complete(self) -> None:
        parent: HttpHealthCheckerImpl = self.parent  # type: ignore[assignment]
        status = self._status
        if _in_ranges(status, parent.expected_statuses):
            self.handle_success(self._degraded_header)
            return
        if self._immediate_fail:
            self.host.health_flag_set(HealthFlag.EXCLUDED_VIA_IMMEDIATE_HC_FAIL)
        self.handle_failure(FailureType.ACTIVE, retriable=_in_ranges(status, parent.retriable_statuses))


# -- TCP -----------------------------------------------------------------------------------


def payload_matches(expected: tuple[bytes, ...], data: bytes) -> bool:
    """Every block of ``expected`` found in ``data``, in order, not necessarily adjacent (Envoy's ``PayloadMatcher``)."""
    start = 0
    for block in expected:
        found = data.find(block, start)
        if found < 0:
            return False
        start = found + len(block)
    return True


class TcpHealthCheckerImpl(HealthCheckerImplBase):
    """``tcp_health_check``: connect, send, expect bytes (Envoy's ``TcpHealthCheckerImpl``)."""

    def __init__(self, cluster: "Cluster", config: Any, dispatcher: Dispatcher, **kwargs: Any) -> None:
        super().__init__(cluster, config, dispatcher, **kwargs)
        tcp = config.tcp_health_check
        self.send_bytes = bytes(tcp.send or b"")
        self.receive_bytes = tuple(bytes(block) for block in tcp.receive)

    def make_session(self, host: HostImpl) -> "TcpActiveHealthCheckSession":
        return TcpActiveHealthCheckSession(self, host)


class TcpActiveHealthCheckSession(ActiveHealthCheckSession, ReadFilter, ConnectionCallbacks):
    """One host's TCP checks; the connection's read filter and callbacks."""

    __slots__ = ("_connection", "_expect_close", "_received")

    def __init__(self, parent: TcpHealthCheckerImpl, host: HostImpl) -> None:
        super().__init__(parent, host)
        self._connection: Optional[ClientConnectionImpl] = None
        self._expect_close = False
        self._received = b""

    def on_interval(self) -> None:
        parent: TcpHealthCheckerImpl = self.parent  # type: ignore[assignment]
        if self._connection is None:
            info = parent.cluster.info
            # The cluster's transport socket, as Envoy's checks use it (no stats: checks count in none).
            connection = client_connection(parent.dispatcher, self.host.address, info.ssl_context, None, info.tls_sni)
            connection.add_read_filter(self)
            connection.add_connection_callbacks(self)
            self._connection = connection
            self._expect_close = False
            self._received = b""
            connection.connect()
        if parent.send_bytes:
            self._connection.write(parent.send_bytes)

    def on_timeout(self) -> None:
        self._close_connection()

    def on_close(self) -> None:
        self._close_connection()

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._expect_close = True
            self._connection.close(ConnectionCloseType.NO_FLUSH)

    # ReadFilter

    def on_data(self, data: OwnedBuffer, end_stream: bool) -> FilterStatus:
        parent: TcpHealthCheckerImpl = self.parent  # type: ignore[assignment]
        self._received += data.take()
        if payload_matches(parent.receive_bytes, self._received):
            self._received = b""
            self.handle_success()
            if not parent.reuse_connection:
                self._close_connection()
        return FilterStatus.STOP_ITERATION

    # ConnectionCallbacks

    def on_event(self, event: ConnectionEvent) -> None:
        connection = self._connection
        if event is ConnectionEvent.CONNECTED:
            if not self.parent.receive_bytes:  # type: ignore[attr-defined]
                # Connect-only: connecting is the pass; the connection has done its job.
                self._close_connection()
                self.handle_success()
            return
        self._connection = None
        if not self._expect_close:
            _log.debug("health check of %s: connection closed (%s)", self.host.address,
                       getattr(connection, "failure_reason", "") or event.value)
            self.handle_failure(FailureType.NETWORK)
        if connection is not None:
            self.parent.dispatcher.deferred_delete(connection)


def create_health_checker(cluster: "Cluster", config: Any, dispatcher: Dispatcher, **kwargs: Any) -> HealthCheckerImplBase:
    """The checker for ``config``'s kind (HTTP or TCP); ``kwargs`` go to :class:`HealthCheckerImplBase`.

    Raises:
        ValueError: neither ``http_health_check`` nor ``tcp_health_check`` is set.
    """
    if getattr(config, "http_health_check", None) is not None:
        return HttpHealthCheckerImpl(cluster, config, dispatcher, **kwargs)
    if getattr(config, "tcp_health_check", None) is not None:
        return TcpHealthCheckerImpl(cluster, config, dispatcher, **kwargs)
    raise ValueError("a health check needs http_health_check or tcp_health_check")
