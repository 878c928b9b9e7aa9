"""RetryStateImpl and RetryPolicyImpl: each retry decision, the back-off, the circuit breaker, the stats.

The rules are Envoy 1.40's (``retry_state_impl.cc``, ``backoff_strategy.cc``);
tests/proxy/test_retries.py checks the same behaviours end to end against
the ``envoy`` binary.  Here the timer is a fake one: no test waits.
"""

from __future__ import annotations

import types
from typing import Any, Callable, Optional

import pytest

from pyevent_envoy.config.bootstrap import (
    HeaderMatcher,
    RetryBackOff,
    RetryPolicy,
    Route,
    RouteAction,
    RouteConfiguration,
    RouteMatch,
    StringMatcher,
    VirtualHost,
)
from pyevent_envoy.http import HeaderMap
from pyevent_envoy.http.conn_pool import PoolFailureReason, StreamResetReason
from pyevent_envoy.http.router import RouteTable
from pyevent_envoy.http.router.retry_policy_impl import (
    DEFAULT_RETRY_POLICY,
    RetryOn,
    RetryPolicyImpl,
    parse_retry_grpc_on,
    parse_retry_on,
)
from pyevent_envoy.http.router.retry_state_impl import (
    JitteredExponentialBackOffStrategy,
    RetryStateImpl,
    RetryStatus,
    parse_unsigned,
)
from pyevent_envoy.stats import ClusterTrafficStats
from pyevent_envoy.upstream.cluster import CircuitBreakerThresholds, ClusterInfo


class FakeTimer:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.delay: Optional[float] = None
        self.closed = False

    def enable_timer(self, delay: float) -> None:
        self.delay = delay

    def disable_timer(self) -> None:
        self.delay = None

    def enabled(self) -> bool:
        return self.delay is not None

    def close(self) -> None:
        self.closed = True
        self.delay = None

    def fire(self) -> None:
        assert self.delay is not None, "not armed"
        self.delay = None
        self.callback()


class FakeDispatcher:
    def __init__(self) -> None:
        self.timers: list[FakeTimer] = []

    def create_timer(self, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(callback)
        self.timers.append(timer)
        return timer


class _Cluster:
    """A thread-local cluster as the retry state sees it: its stats and its (shared) info."""

    def __init__(self, max_retries: int) -> None:
        self.stats = ClusterTrafficStats()
        self.info = ClusterInfo("c", circuit_breakers=CircuitBreakerThresholds(max_retries=max_retries))

    @property
    def retries_active(self) -> int:
        """Retries holding a place in the cluster's ``max_retries`` breaker."""
        return self.info.resource_manager.retries.count


def cluster(max_retries: int = 3) -> Any:
    return _Cluster(max_retries)


def policy(retry_on: str = "5xx", **kwargs: Any) -> RetryPolicyImpl:
    return RetryPolicyImpl(retry_on=parse_retry_on(retry_on) | parse_retry_grpc_on(retry_on), **kwargs)


def state(
    retry_on: str = "5xx",
    headers: Optional[HeaderMap] = None,
    *,
    trusted: bool = False,
    tlc: Any = None,
    dispatcher: Any = None,
    **kwargs: Any,
) -> RetryStateImpl:
    made = RetryStateImpl.create(
        policy(retry_on, **kwargs),
        headers if headers is not None else HeaderMap(),
        tlc if tlc is not None else cluster(),
        dispatcher if dispatcher is not None else FakeDispatcher(),
        trusted=trusted,
    )
    assert made is not None
    return made


def response(status: int, **fields: str) -> HeaderMap:
    headers = HeaderMap([(":status", str(status))])
    for name, value in fields.items():
        headers.add(name.replace("_", "-"), value)
    return headers


# -- parsing --------------------------------------------------------------------------------


def test_parse_retry_on_values_whitespace_and_unknowns():
    assert parse_retry_on("5xx, gateway-error ,,connect-failure") == (
        RetryOn.FIVE_XX | RetryOn.GATEWAY_ERROR | RetryOn.CONNECT_FAILURE
    )
    assert parse_retry_on("5XX,bogus") == RetryOn.NONE  # case-sensitive, unknowns skipped
    assert parse_retry_on("cancelled") == RetryOn.NONE  # a gRPC value, not an HTTP one
    assert parse_retry_grpc_on("cancelled,unavailable,5xx") == RetryOn.GRPC_CANCELLED | RetryOn.GRPC_UNAVAILABLE


def test_parse_unsigned_like_simple_atoi():
    assert [parse_unsigned(v) for v in ("3", " 3 ", "+7", "0", "-1", "1.5", "abc", "", None)] == [
        3, 3, 7, 0, None, None, None, None, None
    ]
    assert parse_unsigned(str(2**64)) is None


def test_policy_defaults_and_back_off_from_config():
    assert (DEFAULT_RETRY_POLICY.retry_on, DEFAULT_RETRY_POLICY.num_retries) == (RetryOn.NONE, 1)
    assert (DEFAULT_RETRY_POLICY.base_interval_ms, DEFAULT_RETRY_POLICY.max_interval_ms) == (25, 250)
    compiled = RetryPolicyImpl.from_config(
        RetryPolicy(retry_on="reset", retry_back_off=RetryBackOff(base_interval=0.1)), lambda m: None
    )
    assert (compiled.retry_on, compiled.base_interval_ms, compiled.max_interval_ms) == (RetryOn.RESET, 100, 1000)


# -- creation and request headers -------------------------------------------------------------


def test_no_state_without_conditions():
    assert RetryStateImpl.create(DEFAULT_RETRY_POLICY, HeaderMap(), cluster(), FakeDispatcher(), trusted=False) is None
    # Only a retry count asks for nothing.
    headers = HeaderMap([("x-envoy-max-retries", "3")])
    assert RetryStateImpl.create(DEFAULT_RETRY_POLICY, headers, cluster(), FakeDispatcher(), trusted=True) is None
    assert "x-envoy-max-retries" not in headers  # consumed all the same


def test_trusted_headers_add_conditions_and_are_consumed():
    headers = HeaderMap(
        [
            ("x-envoy-retry-on", "retriable-status-codes, bogus"),
            ("x-envoy-retry-grpc-on", "unavailable"),
            ("x-envoy-max-retries", "4"),
            ("x-envoy-retriable-status-codes", "418,x,429"),
            ("x-envoy-retriable-header-names", "X-Retry-Me, "),
            ("x-other", "kept"),
        ]
    )
    made = RetryStateImpl.create(policy("5xx"), headers, cluster(), FakeDispatcher(), trusted=True)
    assert made.retry_on == RetryOn.FIVE_XX | RetryOn.RETRIABLE_STATUS_CODES | RetryOn.GRPC_UNAVAILABLE
    assert made.retries_remaining == 4
    assert [name for name, _ in headers] == ["x-other"]
    request = HeaderMap()
    assert made.would_retry_from_headers(response(418), request) == 1
    assert made.would_retry_from_headers(response(429), request) == 1
    assert made.would_retry_from_headers(response(404), request) == 0


def test_untrusted_headers_are_left_alone():
    headers = HeaderMap([("x-envoy-max-retries", "9")])
    made = RetryStateImpl.create(policy("5xx"), headers, cluster(), FakeDispatcher(), trusted=False)
    assert made.retries_remaining == 1 and "x-envoy-max-retries" in headers


def test_invalid_max_retries_header_keeps_the_policy():
    made = state("5xx", HeaderMap([("x-envoy-max-retries", "many")]), trusted=True, num_retries=2)
    assert made.retries_remaining == 2


def test_retriable_request_headers_gate_the_request():
    only_get = RetryPolicyImpl(
        retry_on=RetryOn.FIVE_XX, retriable_request_headers=(lambda h: h.get(":method") == "GET",)
    )
    get = HeaderMap([(":method", "GET")])
    post = HeaderMap([(":method", "POST")])
    assert RetryStateImpl.create(only_get, get, cluster(), FakeDispatcher(), trusted=False) is not None
    assert RetryStateImpl.create(only_get, post, cluster(), FakeDispatcher(), trusted=False) is None


# -- decisions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_on", "status", "extra", "expected"),
    [
        ("5xx", 500, {}, 1),
        ("5xx", 599, {}, 1),
        ("5xx", 404, {}, 0),
        ("gateway-error", 500, {}, 0),
        ("gateway-error", 502, {}, 1),
        ("gateway-error", 503, {}, 1),
        ("gateway-error", 504, {}, 1),
        ("retriable-4xx", 409, {}, 1),
        ("retriable-4xx", 429, {}, 0),
        ("reset", 503, {}, 0),
        ("connect-failure", 503, {}, 0),
        # x-envoy-ratelimited: only envoy-ratelimited retries it, whatever else would.
        ("5xx", 503, {"x_envoy_ratelimited": "true"}, 0),
        ("envoy-ratelimited", 429, {"x_envoy_ratelimited": "true"}, 1),
        ("envoy-ratelimited", 429, {}, 0),
        ("unavailable", 200, {"grpc_status": "14"}, 1),
        ("unavailable", 200, {"grpc_status": "1"}, 0),
        ("cancelled,internal", 200, {"grpc_status": "13"}, 1),
        ("deadline-exceeded", 200, {"grpc_status": "4"}, 1),
        ("resource-exhausted", 200, {"grpc_status": "8"}, 1),
        ("refused-stream,http3-post-connect-failure", 503, {}, 0),
    ],
)
def test_would_retry_from_headers(retry_on, status, extra, expected):
    assert state(retry_on).would_retry_from_headers(response(status, **extra), HeaderMap()) == expected


def test_retriable_status_codes_and_too_early():
    made = state("retriable-status-codes", retriable_status_codes=(418, 425))
    assert made.would_retry_from_headers(response(418), HeaderMap()) == 1
    # 425 is retried at once (no back-off), unless the request itself came as early data.
    assert made.would_retry_from_headers(response(425), HeaderMap()) == 2
    assert made.would_retry_from_headers(response(425), HeaderMap([("early-data", "1")])) == 0
    assert state("5xx", retriable_status_codes=(418,)).would_retry_from_headers(response(418), HeaderMap()) == 0


def test_retriable_headers():
    made = state("retriable-headers", retriable_headers=(lambda h: "x-retry" in h,))
    assert made.would_retry_from_headers(response(200, x_retry="1"), HeaderMap()) == 1
    assert made.would_retry_from_headers(response(200), HeaderMap()) == 0


@pytest.mark.parametrize(
    ("retry_on", "reason", "started", "expected"),
    [
        ("5xx,reset,connect-failure", PoolFailureReason.OVERFLOW, False, 0),
        ("connect-failure", PoolFailureReason.REMOTE_CONNECTION_FAILURE, False, 1),
        ("connect-failure", PoolFailureReason.TIMEOUT, False, 1),
        ("connect-failure", StreamResetReason.CONNECTION_TERMINATION, True, 0),
        ("reset-before-request", PoolFailureReason.REMOTE_CONNECTION_FAILURE, False, 1),
        ("reset-before-request", StreamResetReason.CONNECTION_TERMINATION, True, 0),
        ("reset-before-request", StreamResetReason.CONNECTION_TERMINATION, False, 1),
        ("reset", StreamResetReason.LOCAL_RESET, True, 1),
        ("reset", PoolFailureReason.REMOTE_CONNECTION_FAILURE, False, 1),
        ("5xx", StreamResetReason.PROTOCOL_ERROR, True, 1),
        ("gateway-error", StreamResetReason.CONNECTION_TERMINATION, True, 1),
        ("retriable-4xx", PoolFailureReason.REMOTE_CONNECTION_FAILURE, False, 0),
        ("refused-stream", StreamResetReason.CONNECTION_TERMINATION, True, 0),
    ],
)
def test_would_retry_from_reset(retry_on, reason, started, expected):
    assert state(retry_on).would_retry_from_reset(reason, started) == expected


# -- the answer, the back-off, the circuit breaker and the stats -------------------------------


def test_retry_sequence_counts_like_envoy():
    tlc = cluster()
    dispatcher = FakeDispatcher()
    made = state("5xx", tlc=tlc, dispatcher=dispatcher, num_retries=2)
    calls = []
    retry = lambda: calls.append("retry")  # noqa: E731
    assert made.should_retry_headers(response(503), HeaderMap(), retry) is RetryStatus.YES
    (timer,) = dispatcher.timers
    assert 0 <= timer.delay < 0.025  # first back-off: [0, base)
    assert tlc.retries_active == 1 and made.pending
    assert tlc.stats.upstream_rq_retry == 0  # counted when the back-off ends
    timer.fire()
    assert calls == ["retry"]
    assert (tlc.stats.upstream_rq_retry, tlc.stats.upstream_rq_retry_backoff_exponential) == (1, 1)
    assert tlc.retries_active == 1  # held until the next answer
    assert made.should_retry_headers(response(200), HeaderMap(), retry) is RetryStatus.NO
    assert tlc.stats.upstream_rq_retry_success == 1 and tlc.retries_active == 0


def test_retry_limit_exceeded():
    tlc = cluster()
    made = state("5xx", tlc=tlc, num_retries=1)
    assert made.should_retry_reset(StreamResetReason.LOCAL_RESET, True, lambda: None) is RetryStatus.YES
    assert made.should_retry_reset(StreamResetReason.LOCAL_RESET, True, lambda: None) is RetryStatus.NO_RETRY_LIMIT_EXCEEDED
    assert (tlc.stats.upstream_rq_retry_limit_exceeded, tlc.stats.upstream_rq_retry_success, tlc.retries_active) == (1, 0, 0)


def test_circuit_breaker_overflow_still_uses_a_retry():
    tlc = cluster(max_retries=1)
    first = state("5xx", tlc=tlc, num_retries=3)
    second = state("5xx", tlc=tlc, num_retries=3)
    assert first.should_retry_headers(response(503), HeaderMap(), lambda: None) is RetryStatus.YES
    assert second.should_retry_headers(response(503), HeaderMap(), lambda: None) is RetryStatus.NO_OVERFLOW
    assert (tlc.stats.upstream_rq_retry_overflow, second.retries_remaining) == (1, 2)
    first.close()
    assert tlc.retries_active == 0 and not first.pending
    assert second.should_retry_headers(response(503), HeaderMap(), lambda: None) is RetryStatus.YES


def test_close_cancels_a_pending_back_off():
    tlc = cluster()
    dispatcher = FakeDispatcher()
    made = state("5xx", tlc=tlc, dispatcher=dispatcher)
    made.should_retry_headers(response(503), HeaderMap(), lambda: pytest.fail("retried after close"))
    made.close()
    (timer,) = dispatcher.timers
    assert timer.closed and tlc.retries_active == 0 and tlc.stats.upstream_rq_retry == 0


def test_immediate_retry_is_not_a_back_off():
    tlc = cluster()
    dispatcher = FakeDispatcher()
    made = state("retriable-status-codes", tlc=tlc, dispatcher=dispatcher, retriable_status_codes=(425,))
    made.should_retry_headers(response(425), HeaderMap(), lambda: None)
    (timer,) = dispatcher.timers
    assert timer.delay == 0
    timer.fire()
    assert (tlc.stats.upstream_rq_retry, tlc.stats.upstream_rq_retry_backoff_exponential) == (1, 0)


def test_back_off_intervals_double_up_to_the_maximum(monkeypatch):
    import pyevent_envoy.http.router.retry_state_impl as module

    monkeypatch.setattr(module.random, "random", lambda: 0.9999999)
    strategy = JitteredExponentialBackOffStrategy(25, 250)
    # The largest draw of each interval: 25, 50, 100, 200, then the maximum, 250.
    assert [strategy.next_back_off_ms() for _ in range(6)] == [24, 49, 99, 199, 249, 249]
    monkeypatch.setattr(module.random, "random", lambda: 0.0)
    assert JitteredExponentialBackOffStrategy(25, 250).next_back_off_ms() == 0
    # A maximum below twice the base: the second interval is already the maximum.
    monkeypatch.setattr(module.random, "random", lambda: 0.9999999)
    strategy = JitteredExponentialBackOffStrategy(100, 150)
    assert [strategy.next_back_off_ms() for _ in range(3)] == [99, 149, 149]


# -- route entries ----------------------------------------------------------------------------


def _table(route_policy: Optional[RetryPolicy], vhost_policy: Optional[RetryPolicy], timeout: float = 15.0) -> RouteTable:
    action = RouteAction(cluster="app", timeout=timeout, retry_policy=route_policy)
    route = Route(match=RouteMatch(prefix="/"), action=action)
    vhost = VirtualHost(name="v", domains=("*",), routes=(route,), retry_policy=vhost_policy)
    return RouteTable(RouteConfiguration(virtual_hosts=(vhost,)))


def _entry(table: RouteTable) -> Any:
    return table.route(HeaderMap([(":method", "GET"), (":path", "/"), (":authority", "a")]))


def test_route_policy_replaces_the_virtual_hosts():
    on_route = RetryPolicy(retry_on="reset", num_retries=4)
    on_vhost = RetryPolicy(retry_on="5xx", per_try_timeout=0.25)
    entry = _entry(_table(on_route, on_vhost))
    assert (entry.retry_policy.retry_on, entry.retry_policy.num_retries, entry.per_try_timeout) == (RetryOn.RESET, 4, 0.0)
    entry = _entry(_table(None, on_vhost))
    assert (entry.retry_policy.retry_on, entry.per_try_timeout) == (RetryOn.FIVE_XX, 0.25)
    assert _entry(_table(None, None)).retry_policy is None


def test_retriable_headers_compile_like_route_matchers():
    matcher = HeaderMatcher(name="x-cache", string_match=StringMatcher(prefix="miss"))
    entry = _entry(_table(RetryPolicy(retry_on="retriable-headers", retriable_headers=(matcher,)), None))
    (compiled,) = entry.retry_policy.retriable_headers
    assert compiled(HeaderMap([("x-cache", "miss-2")])) and not compiled(HeaderMap([("x-cache", "hit")]))


@pytest.mark.parametrize(
    ("timeout", "per_try", "expected"),
    [(15.0, 0.0, "15000"), (15.0, 0.5, "500"), (0.0, 0.5, "500"), (1.0, 2.0, "1000"), (0.0, 0.0, ""), (0.29, 0.0, "290")],
)
def test_expected_timeout_header_text(timeout, per_try, expected):
    entry = _entry(_table(RetryPolicy(per_try_timeout=per_try), None, timeout=timeout))
    assert entry.timeout_ms_text == expected
