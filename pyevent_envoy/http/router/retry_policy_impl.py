"""A route's retry policy, compiled (Envoy's ``source/common/router/retry_policy_impl.cc``).

:class:`RetryPolicyImpl` is what a route's (or its virtual host's)
``retry_policy`` says, built once with the route table and shared by every
worker; :class:`RetryOn` is its set of retry conditions, parsed from
``retry_on`` and from the ``x-envoy-retry-on`` / ``x-envoy-retry-grpc-on``
request headers with :func:`parse_retry_on` and :func:`parse_retry_grpc_on`.
What a condition means is decided per request by
:class:`~pyevent_envoy.http.router.retry_state_impl.RetryStateImpl`.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Optional

from pyevent_envoy.http.header_map import HeaderMap

__all__ = ["DEFAULT_BASE_INTERVAL_MS", "DEFAULT_RETRY_POLICY", "RetryOn", "RetryPolicyImpl", "parse_retry_grpc_on", "parse_retry_on"]

#: Envoy's back-off base interval when the policy has no ``retry_back_off``
#: (its runtime key ``upstream.base_retry_backoff_ms``); the maximum is 10 times the base.
DEFAULT_BASE_INTERVAL_MS = 25


class RetryOn(enum.IntFlag):
    """Envoy's ``RetryPolicy::RETRY_ON_*`` conditions."""

    NONE = 0
    FIVE_XX = enum.auto()
    GATEWAY_ERROR = enum.auto()
    CONNECT_FAILURE = enum.auto()
    ENVOY_RATE_LIMITED = enum.auto()
    RETRIABLE_4XX = enum.auto()
    REFUSED_STREAM = enum.auto()  # an HTTP/2 reset: never happens on HTTP/1.1 upstreams
    RETRIABLE_STATUS_CODES = enum.auto()
    RETRIABLE_HEADERS = enum.auto()
    RESET = enum.auto()
    RESET_BEFORE_REQUEST = enum.auto()
    HTTP3_POST_CONNECT_FAILURE = enum.auto()  # HTTP/3 only: never happens here
    GRPC_CANCELLED = enum.auto()
    GRPC_DEADLINE_EXCEEDED = enum.auto()
    GRPC_RESOURCE_EXHAUSTED = enum.auto()
    GRPC_UNAVAILABLE = enum.auto()
    GRPC_INTERNAL = enum.auto()


_HTTP_VALUES = {
    "5xx": RetryOn.FIVE_XX,
    "gateway-error": RetryOn.GATEWAY_ERROR,
    "connect-failure": RetryOn.CONNECT_FAILURE,
    "envoy-ratelimited": RetryOn.ENVOY_RATE_LIMITED,
    "retriable-4xx": RetryOn.RETRIABLE_4XX,
    "refused-stream": RetryOn.REFUSED_STREAM,
    "retriable-status-codes": RetryOn.RETRIABLE_STATUS_CODES,
    "retriable-headers": RetryOn.RETRIABLE_HEADERS,
    "reset": RetryOn.RESET,
    "reset-before-request": RetryOn.RESET_BEFORE_REQUEST,
    "http3-post-connect-failure": RetryOn.HTTP3_POST_CONNECT_FAILURE,
}

_GRPC_VALUES = {
    "cancelled": RetryOn.GRPC_CANCELLED,
    "deadline-exceeded": RetryOn.GRPC_DEADLINE_EXCEEDED,
    "resource-exhausted": RetryOn.GRPC_RESOURCE_EXHAUSTED,
    "unavailable": RetryOn.GRPC_UNAVAILABLE,
    "internal": RetryOn.GRPC_INTERNAL,
}


def _parse(text: str, values: dict[str, RetryOn]) -> RetryOn:
    # Envoy's StringUtil::splitToken(text, ",", keep_empty=false, trim_whitespace=true);
    # values it does not know are skipped, and the comparison is case-sensitive.
    out = RetryOn.NONE
    for token in text.split(","):
        flag = values.get(token.strip())
        if flag is not None:
            out |= flag
    return out


def parse_retry_on(text: str) -> RetryOn:
    """The HTTP conditions named in ``text`` (``retry_on``, ``x-envoy-retry-on``); others are ignored."""
    return _parse(text, _HTTP_VALUES)


def parse_retry_grpc_on(text: str) -> RetryOn:
    """The gRPC conditions named in ``text`` (``retry_on``, ``x-envoy-retry-grpc-on``); others are ignored."""
    return _parse(text, _GRPC_VALUES)


class RetryPolicyImpl:
    """One ``retry_policy``, compiled; immutable and shared by every worker.

    Attributes:
        retry_on: the conditions (``RetryOn.NONE``: retries only when the
            request's headers ask for them).
        num_retries: retries allowed after the first attempt.
        per_try_timeout: seconds each attempt may wait for its response
            headers, ``0`` for no limit.
        base_interval_ms: the back-off base, in whole milliseconds.
        max_interval_ms: the back-off cap, in whole milliseconds.
        retriable_status_codes: the codes of ``retriable-status-codes``.
        retriable_headers: matchers on the response
            (``retriable-headers``), each ``matcher(headers) -> bool``.
        retriable_request_headers: matchers on the request; when there are
            any, a request none of them matches is never retried.
    """

    __slots__ = (
        "retry_on",
        "num_retries",
        "per_try_timeout",
        "base_interval_ms",
        "max_interval_ms",
        "retriable_status_codes",
        "retriable_headers",
        "retriable_request_headers",
    )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __init__(
        self,
        *,
        retry_on: RetryOn = RetryOn.NONE,
        num_retries: int = 1,
        per_try_timeout: float = 0.0,
        base_interval_ms: Optional[int] = None,
        max_interval_ms: Optional[int] = None,
        retriable_status_codes: tuple[int, ...] = (),
        retriable_headers: tuple[Callable[[HeaderMap], bool], ...] = (),
        retriable_request_headers: tuple[Callable[[HeaderMap], bool], ...] = (),
    ) -> None:
        base = DEFAULT_BASE_INTERVAL_MS if base_interval_ms is None else base_interval_ms
        s = object.__setattr__
        s(self, "retry_on", retry_on)
        s(self, "num_retries", num_retries)
        s(self, "per_try_timeout", per_try_timeout)
        s(self, "base_interval_ms", base)
        s(self, "max_interval_ms", base * 10 if max_interval_ms is None else max_interval_ms)
        s(self, "retriable_status_codes", retriable_status_codes)
        s(self, "retriable_headers", retriable_headers)
        s(self, "retriable_request_headers", retriable_request_headers)

    @classmethod
    def from_config(cls, config: Any, compile_matcher: Callable[[Any], Callable[[HeaderMap], bool]]) -> "RetryPolicyImpl":
        """Compile a :class:`~pyevent_envoy.config.bootstrap.RetryPolicy`.

        ``compile_matcher`` turns one
        :class:`~pyevent_envoy.config.bootstrap.HeaderMatcher` into a
        predicate on a header map (the route table's, so the rules are the
        same as for route matching).
        """
        back_off = config.retry_back_off
        return cls(
            retry_on=parse_retry_on(config.retry_on) | parse_retry_grpc_on(config.retry_on),
            num_retries=config.num_retries,
            per_try_timeout=config.per_try_timeout,
            base_interval_ms=None if back_off is None else round(back_off.base_interval * 1000),
            max_interval_ms=None if back_off is None or back_off.max_interval is None else round(back_off.max_interval * 1000),
            retriable_status_codes=tuple(config.retriable_status_codes),
            retriable_headers=tuple(compile_matcher(m) for m in config.retriable_headers),
            retriable_request_headers=tuple(compile_matcher(m) for m in config.retriable_request_headers),
        )

    def __repr__(self) -> str:
        return f"<RetryPolicyImpl retry_on={self.retry_on!r} num_retries={self.num_retries}>"


#: The policy of a route without one: retries only when the request's headers ask.
DEFAULT_RETRY_POLICY = RetryPolicyImpl()
