"""One request's retries (Envoy's ``source/common/router/retry_state_impl.cc``).

The router makes a :class:`RetryStateImpl` for a request whose route (or
virtual host) has a retry policy with conditions, or whose headers ask for
retries (trusted requests only: the connection manager strips those headers
from the others).  After each failed attempt the router asks it whether to
try again (:meth:`RetryStateImpl.should_retry_headers` for a response,
:meth:`RetryStateImpl.should_retry_reset` for a reset, a connect failure or
a per-try timeout); the answer, as in Envoy 1.40:

- ``NO``: the condition does not apply; the failure goes downstream.
  If the previous answer was ``YES``, that retry worked:
  ``upstream_rq_retry_success``.
- ``NO_RETRY_LIMIT_EXCEEDED``: it would, but ``num_retries`` (or
  ``x-envoy-max-retries``) retries were made: ``upstream_rq_retry_limit_exceeded``
  and the ``URX`` flag.
- ``NO_OVERFLOW``: it would, but the cluster's ``max_retries`` circuit
  breaker is full: ``upstream_rq_retry_overflow`` and the ``UO`` flag (the
  retry still counts against ``num_retries``).
- ``YES``: the retry holds a place in the circuit breaker until the next
  answer (or the end of the request), and the callback runs after a
  back-off: full-jitter exponential, uniform in ``[0, interval)`` ms where
  the interval starts at the base (25 ms by default) and doubles per retry
  up to the maximum (10 times the base by default).  The back-off is a
  dispatcher timer; ``upstream_rq_retry`` and
  ``upstream_rq_retry_backoff_exponential`` count when it fires, so a retry
  the route timeout overtakes is not counted.

Which conditions retry what:

- a response: ``5xx`` any 5xx; ``gateway-error`` 502, 503, 504;
  ``retriable-4xx`` 409; ``retriable-status-codes`` the listed codes (425 is
  retried at once, without back-off, unless the request carries
  ``early-data``); ``retriable-headers`` a response a matcher matches; the
  gRPC conditions a ``grpc-status`` of 1 (``cancelled``), 4
  (``deadline-exceeded``), 8 (``resource-exhausted``), 14 (``unavailable``),
  13 (``internal``).  A response with ``x-envoy-ratelimited`` is retried
  with ``envoy-ratelimited`` only, whatever else applies.
- a reset (no response headers): never after a circuit-breaker overflow;
  a connect failure or timeout with ``connect-failure``; anything before a
  byte of the request went upstream (on any attempt) with
  ``reset-before-request``; anything with ``reset``, ``5xx`` or
  ``gateway-error`` (a per-try timeout is such a reset).
  ``refused-stream`` and ``http3-post-connect-failure`` name HTTP/2 and
  HTTP/3 events, which HTTP/1.1 upstreams never produce.
"""

from __future__ import annotations

import enum
import random
import re
from typing import Any, Callable, Optional

from pyevent_envoy.http.conn_pool import PoolFailureReason
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.http.router.retry_policy_impl import RetryOn, RetryPolicyImpl, parse_retry_grpc_on, parse_retry_on

__all__ = ["RETRY_REQUEST_HEADERS", "JitteredExponentialBackOffStrategy", "RetryStateImpl", "RetryStatus", "parse_unsigned"]

#: The request headers a retry state reads (from trusted requests) and always removes.
RETRY_REQUEST_HEADERS = (
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
)

# absl::SimpleAtoi into an unsigned integer: optional spaces and '+', digits.
_UNSIGNED_RE = re.compile(r"\s*\+?([0-9]+)\s*")
_UINT64_MAX = 2**64 - 1

_GATEWAY_ERRORS = (502, 503, 504)
_TOO_EARLY = 425
_CONFLICT = 409
_GRPC_STATUS = {
    RetryOn.GRPC_CANCELLED: 1,
    RetryOn.GRPC_DEADLINE_EXCEEDED: 4,
    RetryOn.GRPC_RESOURCE_EXHAUSTED: 8,
    RetryOn.GRPC_INTERNAL: 13,
    RetryOn.GRPC_UNAVAILABLE: 14,
}
_GRPC_ANY = RetryOn.GRPC_CANCELLED | RetryOn.GRPC_DEADLINE_EXCEEDED | RetryOn.GRPC_RESOURCE_EXHAUSTED
_GRPC_ANY |= RetryOn.GRPC_UNAVAILABLE | RetryOn.GRPC_INTERNAL

# Decisions (Envoy's RetryState::RetryDecision).
_NO_RETRY, _WITH_BACKOFF, _IMMEDIATELY = 0, 1, 2


def parse_unsigned(value: Optional[str]) -> Optional[int]:
    """A header's value as Envoy's ``absl::SimpleAtoi`` reads an unsigned integer, else ``None``."""
    if value is None:
        return None
    m = _UNSIGNED_RE.fullmatch(value)
    if m is None:
        return None
    number = int(m.group(1))
    return number if number <= _UINT64_MAX else None


class RetryStatus(enum.Enum):
    """The answer to "retry?" (Envoy's ``RetryStatus``)."""

    NO = "no"
    NO_OVERFLOW = "no_overflow"
    NO_RETRY_LIMIT_EXCEEDED = "no_retry_limit_exceeded"
    YES = "yes"


class JitteredExponentialBackOffStrategy:
    """Full-jitter exponential back-off (Envoy's ``JitteredExponentialBackOffStrategy``).

    Each :meth:`next_back_off_ms` is uniform in ``[0, interval)``; the
    interval starts at ``base_ms`` and doubles after each call while below
    half of ``max_ms``, then stays at ``max_ms``.
    """

    __slots__ = ("_max", "_next")

    def __init__(self, base_ms: int, max_ms: int) -> None:
        self._max = max_ms
        self._next = base_ms

    def next_back_off_ms(self) -> int:
        interval = self._next
        self._next = interval * 2 if interval < self._max // 2 else self._max
        return int(random.random() * interval)


class RetryStateImpl:
    """The retry decisions and the back-off timer of one request; see the module documentation.

    Made by :meth:`create` (``None`` when nothing could be retried); used on
    the worker that owns the request; :meth:`close` releases the circuit
    breaker place and the timer (the router calls it once it is done with
    retries, and when the stream ends).

    Attributes:
        retry_on: the conditions in force for this request.
        retries_remaining: retries still allowed.
    """

    __slots__ = (
        "retry_on",
        "retries_remaining",
        "_status_codes",
        "_retriable_headers",
        "_cluster",
        "_dispatcher",
        "_backoff",
        "_timer",
        "_callback",
        "_holds_retry",
        "_backed_off",
    )

    def __init__(
        self,
        policy: RetryPolicyImpl,
        cluster: Any,
        dispatcher: Any,
        *,
        retry_on: RetryOn,
        retries: int,
        status_codes: tuple[int, ...],
        retriable_headers: tuple[Callable[[HeaderMap], bool], ...],
    ) -> None:
        self.retry_on = retry_on
        self.retries_remaining = retries
        self._status_codes = status_codes
        self._retriable_headers = retriable_headers
        self._cluster = cluster
        self._dispatcher = dispatcher
        self._backoff = JitteredExponentialBackOffStrategy(policy.base_interval_ms, policy.max_interval_ms)
        self._timer: Any = None
        self._callback: Optional[Callable[[], None]] = None
        self._holds_retry = False
        self._backed_off = False

    @classmethod
    def create(
        cls,
        policy: RetryPolicyImpl,
        request_headers: HeaderMap,
        cluster: Any,
        dispatcher: Any,
        *,
        trusted: bool,
    ) -> Optional["RetryStateImpl"]:
        """The retry state of a request, or ``None`` when no condition applies to it.

        Args:
            policy: the route's policy (the default, empty one without).
            request_headers: the request; with ``trusted``, its
                ``x-envoy-retry-on``, ``x-envoy-retry-grpc-on``,
                ``x-envoy-max-retries``, ``x-envoy-retriable-status-codes``
                and ``x-envoy-retriable-header-names`` add to the policy
                (and are removed, as Envoy consumes them).
            cluster: this worker's
                :class:`~pyevent_envoy.upstream.ThreadLocalCluster` (stats,
                the ``max_retries`` circuit breaker).
            dispatcher: the worker's dispatcher (the back-off timer).
            trusted: whether the request's retry headers count (an internal
                request; the connection manager removed them from others).
        """
        retry_on = policy.retry_on
        retries = policy.num_retries
        codes = policy.retriable_status_codes
        retriable_headers = policy.retriable_headers
        if trusted:
            get = request_headers._get
            value = get("x-envoy-retry-on")
            if value is not None:
                retry_on |= parse_retry_on(value)
            value = get("x-envoy-retry-grpc-on")
            if value is not None:
                retry_on |= parse_retry_grpc_on(value)
            max_retries = parse_unsigned(get("x-envoy-max-retries"))
            value = get("x-envoy-retriable-status-codes")
            if value is not None:
                extra = tuple(c for c in map(parse_unsigned, value.split(",")) if c is not None)
                codes = codes + extra
            value = get("x-envoy-retriable-header-names")
            if value is not None:
                # Name-only matchers, as Envoy builds them from this header.
                names = tuple(n.strip().lower() for n in value.split(",") if n.strip())
                retriable_headers = retriable_headers + tuple(_present(name) for name in names)
        else:
            max_retries = None
        if policy.retriable_request_headers and not any(m(request_headers) for m in policy.retriable_request_headers):
            retry_on = RetryOn.NONE
        if trusted:
            for name in RETRY_REQUEST_HEADERS:
                request_headers.remove(name)
        if not retry_on:
            return None
        if max_retries is not None:
            # The header takes precedence over the policy (stored, as in Envoy, in 32 bits).
            retries = max_retries & 0xFFFFFFFF
        return cls(
            policy, cluster, dispatcher, retry_on=retry_on, retries=retries, status_codes=codes, retriable_headers=retriable_headers
        )

    def __repr__(self) -> str:
        return f"<RetryStateImpl retry_on={self.retry_on!r} remaining={self.retries_remaining} pending={self.pending}>"

    @property
    def pending(self) -> bool:
        """A retry is waiting for its back-off to end."""
        return self._timer is not None and self._callback is not None and self._timer.enabled()

    # -- decisions --------------------------------------------------------------------------

    def should_retry_headers(
        self, response_headers: HeaderMap, request_headers: HeaderMap, callback: Callable[[], None]
    ) -> RetryStatus:
        """Whether to retry instead of relaying ``response_headers``; on ``YES``, ``callback()`` runs after the back-off."""
        return self._should_retry(self.would_retry_from_headers(response_headers, request_headers), callback)

    def should_retry_reset(self, reason: Any, upstream_request_started: bool, callback: Callable[[], None]) -> RetryStatus:
        """Whether to retry after an attempt ended without response headers.

        ``reason`` is a :class:`~pyevent_envoy.http.conn_pool.PoolFailureReason`
        (no connection) or a
        :class:`~pyevent_envoy.http.conn_pool.StreamResetReason`;
        ``upstream_request_started`` says whether any attempt so far sent
        bytes upstream.
        """
        return self._should_retry(self.would_retry_from_reset(reason, upstream_request_started), callback)

    def would_retry_from_headers(self, response_headers: HeaderMap, request_headers: HeaderMap) -> int:
        retry_on = self.retry_on
        if "x-envoy-ratelimited" in response_headers._names:
            return _WITH_BACKOFF if retry_on & RetryOn.ENVOY_RATE_LIMITED else _NO_RETRY
        status_text = response_headers._get(":status") or ""
        status = int(status_text) if status_text.isdigit() else 0
        if retry_on & RetryOn.FIVE_XX and 500 <= status < 600:
            return _WITH_BACKOFF
        if retry_on & RetryOn.GATEWAY_ERROR and status in _GATEWAY_ERRORS:
            return _WITH_BACKOFF
        if retry_on & RetryOn.RETRIABLE_4XX and status == _CONFLICT:
            return _WITH_BACKOFF
        if retry_on & RetryOn.RETRIABLE_STATUS_CODES and status in self._status_codes:
            if status != _TOO_EARLY:
                return _WITH_BACKOFF
            if "early-data" not in request_headers._names:
                return _IMMEDIATELY
        if retry_on & RetryOn.RETRIABLE_HEADERS:
            for matcher in self._retriable_headers:
                if matcher(response_headers):
                    return _WITH_BACKOFF
        if retry_on & _GRPC_ANY:
            grpc_status = parse_unsigned(response_headers._get("grpc-status"))
            for flag, code in _GRPC_STATUS.items():
                if retry_on & flag and grpc_status == code:
                    return _WITH_BACKOFF
        return _NO_RETRY

    def would_retry_from_reset(self, reason: Any, upstream_request_started: bool) -> int:
        retry_on = self.retry_on
        if reason is PoolFailureReason.OVERFLOW:
            return _NO_RETRY
        if isinstance(reason, PoolFailureReason) and retry_on & RetryOn.CONNECT_FAILURE:
            return _WITH_BACKOFF
        if retry_on & RetryOn.RESET_BEFORE_REQUEST and not upstream_request_started:
            return _WITH_BACKOFF
        if retry_on & (RetryOn.RESET | RetryOn.FIVE_XX | RetryOn.GATEWAY_ERROR):
            return _WITH_BACKOFF
        return _NO_RETRY

    def _should_retry(self, decision: int, callback: Callable[[], None]) -> RetryStatus:
        cluster = self._cluster
        stats = cluster.stats
        if self._holds_retry and decision == _NO_RETRY:
            # The previous answer was YES and this attempt needs no retry: it worked.
            stats.upstream_rq_retry_success += 1
        self._reset_retry()
        if decision == _NO_RETRY:
            return RetryStatus.NO
        if self.retries_remaining == 0:
            stats.upstream_rq_retry_limit_exceeded += 1
            return RetryStatus.NO_RETRY_LIMIT_EXCEEDED
        self.retries_remaining -= 1
        retries = cluster.info.resource_manager.retries  # the cluster's, over every worker
        if retries.count >= retries.max:
            stats.upstream_rq_retry_overflow += 1
            return RetryStatus.NO_OVERFLOW
        retries.inc()
        self._holds_retry = True
        self._callback = callback
        if self._timer is None:
            self._timer = self._dispatcher.create_timer(self._on_timer)
        self._backed_off = decision == _WITH_BACKOFF
        self._timer.enable_timer(self._backoff.next_back_off_ms() / 1000 if self._backed_off else 0)
        return RetryStatus.YES

    def _on_timer(self) -> None:
        callback = self._callback
        if callback is None:
            return
        stats = self._cluster.stats
        stats.upstream_rq_retry += 1
        if self._backed_off:
            stats.upstream_rq_retry_backoff_exponential += 1
        callback()

    def _reset_retry(self) -> None:
        if self._holds_retry:
            self._holds_retry = False
            self._cluster.info.resource_manager.retries.dec()
        self._callback = None

    def close(self) -> None:
        """Done with retries: give back the circuit breaker place, cancel a pending back-off."""
        self._reset_retry()
        if self._timer is not None:
            self._timer.close()
            self._timer = None


def _present(name: str) -> Callable[[HeaderMap], bool]:
    return lambda headers: name in headers._names
