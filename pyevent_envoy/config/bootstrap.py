"""The configuration model: Envoy's v3 bootstrap, the subset pyevent-envoy runs.

Every class is a frozen, slotted dataclass named after the Envoy message it
stands for, with the fields of that message that are supported, in Envoy's
snake_case, and Envoy's defaults.  Repeated fields are tuples.  Durations are
float seconds (``0`` disables a timeout where Envoy's does).  Enumerations are
:class:`enum.IntEnum` with Envoy's names and numbers.

Where Envoy has a ``oneof`` the members are optional fields of which exactly
one is set (``RouteMatch.prefix`` / ``path`` / ``safe_regex``); where an
action is one of several messages it is one field typed as their union
(``Route.action``).

Instances are made by :func:`pyevent_envoy.config.load_bootstrap`, which has
validated them; building them by hand skips that validation.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

__all__ = [
    "ACCESS_LOG_FILE_TYPE_URL",
    "ACCESS_LOG_STDERR_TYPE_URL",
    "ACCESS_LOG_STDOUT_TYPE_URL",
    "DEFAULT_BUFFER_LIMIT_BYTES",
    "DEFAULT_STATS_FLUSH_INTERVAL",
    "HCM_TYPE_URL",
    "HEALTH_CHECK_FILTER_TYPE_URL",
    "LOCAL_RATELIMIT_TYPE_URL",
    "RETRY_ON_GRPC_VALUES",
    "RETRY_ON_HTTP_VALUES",
    "RETRY_ON_VALUES",
    "ROUTER_TYPE_URL",
    "UPSTREAM_HTTP_PROTOCOL_OPTIONS_NAME",
    "UPSTREAM_HTTP_PROTOCOL_OPTIONS_TYPE_URL",
    "AccessLog",
    "Admin",
    "Bootstrap",
    "CidrRange",
    "CircuitBreakers",
    "Cluster",
    "ClusterLoadAssignment",
    "ClusterWeight",
    "CodecClientType",
    "CodecType",
    "DirectResponseAction",
    "DiscoveryType",
    "DnsLookupFamily",
    "FilterChain",
    "TlsCertificate",
    "TlsContext",
    "HeaderAppendAction",
    "HeaderMatcher",
    "HeaderValueOption",
    "HealthCheck",
    "HealthCheckFilterConfig",
    "Http1ProtocolOptions",
    "HttpHealthCheck",
    "HttpConnectionManager",
    "HttpFilter",
    "HttpProtocolOptions",
    "InternalAddressConfig",
    "LbEndpoint",
    "LbPolicy",
    "LocalRateLimit",
    "Listener",
    "LocalityLbEndpoints",
    "NetworkFilter",
    "Node",
    "OutlierDetection",
    "RedirectAction",
    "RedirectResponseCode",
    "RegexMatcher",
    "RetryBackOff",
    "RetryPolicy",
    "Route",
    "RuntimeFractionalPercent",
    "RouteAction",
    "RouteConfiguration",
    "RouteMatch",
    "Router",
    "RoutingPriority",
    "SocketAddress",
    "StaticResources",
    "StringMatcher",
    "TcpHealthCheck",
    "Thresholds",
    "TokenBucket",
    "UpgradeConfig",
    "VirtualHost",
]

_PREFIX = "type.googleapis.com/"
#: ``@type`` of the ``envoy.filters.network.http_connection_manager`` filter's config.
HCM_TYPE_URL = _PREFIX + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#: ``@type`` of the ``envoy.filters.http.router`` filter's config.
ROUTER_TYPE_URL = _PREFIX + "envoy.extensions.filters.http.router.v3.Router"
#: ``@type`` of the ``envoy.filters.http.health_check`` filter's config.
HEALTH_CHECK_FILTER_TYPE_URL = _PREFIX + "envoy.extensions.filters.http.health_check.v3.HealthCheck"
#: ``@type`` of the ``envoy.filters.http.local_ratelimit`` filter's config (also per route).
LOCAL_RATELIMIT_TYPE_URL = _PREFIX + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
#: ``@type`` of the file access logger.
ACCESS_LOG_FILE_TYPE_URL = _PREFIX + "envoy.extensions.access_loggers.file.v3.FileAccessLog"
#: ``@type`` of the standard-output access logger (a file access log on ``/dev/stdout``).
ACCESS_LOG_STDOUT_TYPE_URL = _PREFIX + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
#: ``@type`` of the standard-error access logger (a file access log on ``/dev/stderr``).
ACCESS_LOG_STDERR_TYPE_URL = _PREFIX + "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
#: The ``typed_extension_protocol_options`` key of a cluster's upstream HTTP options.
UPSTREAM_HTTP_PROTOCOL_OPTIONS_NAME = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
#: ``@type`` of a cluster's upstream HTTP options.
UPSTREAM_HTTP_PROTOCOL_OPTIONS_TYPE_URL = _PREFIX + UPSTREAM_HTTP_PROTOCOL_OPTIONS_NAME

#: Envoy's default for listener and cluster ``per_connection_buffer_limit_bytes`` (1 MiB).
DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024
#: Envoy's default ``stats_flush_interval`` (seconds).
DEFAULT_STATS_FLUSH_INTERVAL = 5.0

#: The HTTP ``retry_on`` conditions Envoy 1.40 knows (those ``x-envoy-retry-on`` takes).
RETRY_ON_HTTP_VALUES = (
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
)
#: The gRPC ``retry_on`` conditions Envoy 1.40 knows (those ``x-envoy-retry-grpc-on`` takes).
RETRY_ON_GRPC_VALUES = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")
#: Every ``retry_on`` condition Envoy 1.40 knows; it ignores any other value, and so does the router.
RETRY_ON_VALUES = RETRY_ON_HTTP_VALUES + RETRY_ON_GRPC_VALUES


# --------------------------------------------------------------------------------------------
# Enumerations (names and numbers as in Envoy's API).


class CodecType(enum.IntEnum):
    """``HttpConnectionManager.CodecType``; only AUTO and HTTP1 are supported."""

    AUTO = 0
    HTTP1 = 1
    HTTP2 = 2
    HTTP3 = 3


class CodecClientType(enum.IntEnum):
    """``type.v3.CodecClientType``: a health check's protocol; only HTTP1 is supported."""

    HTTP1 = 0
    HTTP2 = 1
    HTTP3 = 2


class DiscoveryType(enum.IntEnum):
    """``Cluster.DiscoveryType``; STATIC, STRICT_DNS and LOGICAL_DNS are supported."""

    STATIC = 0
    STRICT_DNS = 1
    LOGICAL_DNS = 2
    EDS = 3
    ORIGINAL_DST = 4


class LbPolicy(enum.IntEnum):
    """``Cluster.LbPolicy``; ROUND_ROBIN, LEAST_REQUEST and RANDOM are supported."""

    ROUND_ROBIN = 0
    LEAST_REQUEST = 1
    RING_HASH = 2
    RANDOM = 3
    MAGLEV = 5
    CLUSTER_PROVIDED = 6
    LOAD_BALANCING_POLICY_CONFIG = 7


class DnsLookupFamily(enum.IntEnum):
    """``Cluster.DnsLookupFamily``."""

    AUTO = 0
    V4_ONLY = 1
    V6_ONLY = 2
    V4_PREFERRED = 3
    ALL = 4


class RoutingPriority(enum.IntEnum):
    """``core.v3.RoutingPriority`` (circuit-breaker thresholds are per priority)."""

    DEFAULT = 0
    HIGH = 1


class RedirectResponseCode(enum.IntEnum):
    """``RedirectAction.RedirectResponseCode``; :attr:`status` is the HTTP status sent."""

    MOVED_PERMANENTLY = 0
    FOUND = 1
    SEE_OTHER = 2
    TEMPORARY_REDIRECT = 3
    PERMANENT_REDIRECT = 4

    @property
    def status(self) -> int:
        return _REDIRECT_STATUS[self]


_REDIRECT_STATUS = {
    RedirectResponseCode.MOVED_PERMANENTLY: 301,
    RedirectResponseCode.FOUND: 302,
    RedirectResponseCode.SEE_OTHER: 303,
    RedirectResponseCode.TEMPORARY_REDIRECT: 307,
    RedirectResponseCode.PERMANENT_REDIRECT: 308,
}


class HeaderAppendAction(enum.IntEnum):
    """``HeaderValueOption.HeaderAppendAction``."""

    APPEND_IF_EXISTS_OR_ADD = 0
    ADD_IF_ABSENT = 1
    OVERWRITE_IF_EXISTS_OR_ADD = 2
    OVERWRITE_IF_EXISTS = 3


# --------------------------------------------------------------------------------------------
# Shared pieces.


@dataclass(frozen=True, slots=True)
class SocketAddress:
    """``core.v3.SocketAddress`` (TCP).  ``address`` is an IP literal, or a host name in a DNS cluster."""

    address: str
    port_value: int


@dataclass(frozen=True, slots=True)
class RegexMatcher:
    """``type.matcher.v3.RegexMatcher``: an RE2 regex and its compiled Python equivalent.

    Envoy's regex matches are full matches: use ``pattern.fullmatch``.
    """

    regex: str
    pattern: re.Pattern = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StringMatcher:
    """``type.matcher.v3.StringMatcher``: exactly one of the match fields is set."""

    exact: Optional[str] = None
    prefix: Optional[str] = None
    suffix: Optional[str] = None
    contains: Optional[str] = None
    safe_regex: Optional[RegexMatcher] = None
    ignore_case: bool = False


@dataclass(frozen=True, slots=True)
class HeaderValueOption:
    """``core.v3.HeaderValueOption``: one header to add, and how.

    The deprecated ``append: true`` / ``false`` reads as
    APPEND_IF_EXISTS_OR_ADD / OVERWRITE_IF_EXISTS_OR_ADD.  ``value`` may hold
    Envoy command operators (``%DOWNSTREAM_REMOTE_ADDRESS%``); ``%%`` is a
    literal percent sign.
    """

    key: str
    value: str = ""
    append_action: HeaderAppendAction = HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD
    keep_empty_value: bool = False


@dataclass(frozen=True, slots=True)
class AccessLog:
    """``config.accesslog.v3.AccessLog`` with a file sink.

    ``StdoutAccessLog`` / ``StderrAccessLog`` read as ``path`` ``/dev/stdout`` /
    ``/dev/stderr``.  At most one of ``text_format`` and ``json_format`` is
    set; with neither, Envoy's default format applies.  ``json_format`` is a
    read-only mapping whose string leaves are format strings.
    """

    name: str
    path: str
    text_format: Optional[str] = None
    json_format: Optional[Mapping[str, Any]] = field(default=None, hash=False)
    omit_empty_values: bool = False


# --------------------------------------------------------------------------------------------
# Routes.


@dataclass(frozen=True, slots=True)
class HeaderMatcher:
    """``route.v3.HeaderMatcher``.

    With ``string_match`` set the header value must match it; otherwise
    ``present_match`` says whether the header must be present (``True``, also
    the meaning of a matcher with no match field) or absent (``False``).
    ``invert_match`` inverts the result.  The deprecated ``exact_match``,
    ``prefix_match``, ``suffix_match``, ``contains_match`` and
    ``safe_regex_match`` read as the equivalent ``string_match``.
    """

    name: str
    string_match: Optional[StringMatcher] = None
    present_match: Optional[bool] = None
    invert_match: bool = False
    treat_missing_header_as_empty: bool = False


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """``route.v3.RouteMatch``: exactly one of ``prefix``, ``path``, ``safe_regex`` is set."""

    prefix: Optional[str] = None
    path: Optional[str] = None
    safe_regex: Optional[RegexMatcher] = None
    case_sensitive: bool = True
    headers: tuple[HeaderMatcher, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterWeight:
    """``WeightedCluster.ClusterWeight``."""

    name: str
    weight: int


@dataclass(frozen=True, slots=True)
class UpgradeConfig:
    """An HTTP Upgrade allowed or refused: ``HttpConnectionManager.UpgradeConfig``
    or ``RouteAction.UpgradeConfig`` (their supported fields are the same).

    ``upgrade_type`` is the ``Upgrade`` header value it applies to (``websocket``),
    compared case-insensitively.  ``enabled`` defaults to true in both messages.
    """

    upgrade_type: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class RetryBackOff:
    """``RetryPolicy.RetryBackOff``, in seconds (sub-millisecond values read as 1 ms, as in Envoy).

    ``max_interval`` ``None`` means Envoy's default, 10 times ``base_interval``.
    """

    base_interval: float
    max_interval: Optional[float] = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``route.v3.RetryPolicy``, of a route action or a virtual host.

    ``retry_on`` is the comma-separated text as written; Envoy ignores the
    values it does not know, and so does the router (the loader warns).
    ``per_try_timeout`` ``0`` means none.  ``host_selection_retry_max_attempts``
    only matters with host predicates, which are not supported: it is kept
    for completeness and has no effect, as in Envoy without predicates.
    """

    retry_on: str = ""
    num_retries: int = 1
    per_try_timeout: float = 0.0
    retry_back_off: Optional[RetryBackOff] = None
    retriable_status_codes: tuple[int, ...] = ()
    retriable_headers: tuple[HeaderMatcher, ...] = ()
    retriable_request_headers: tuple[HeaderMatcher, ...] = ()
    host_selection_retry_max_attempts: int = 1


@dataclass(frozen=True, slots=True)
class RouteAction:
    """``route.v3.RouteAction``: forward upstream.

    Exactly one of ``cluster`` and ``weighted_clusters`` is set.  At most one
    of ``host_rewrite_literal`` and ``auto_host_rewrite`` is.  ``timeout``
    defaults to 15 s; ``0`` disables it.  ``upgrade_configs`` override the
    connection manager's for the upgrade types they name.  ``retry_policy``,
    when set, replaces the virtual host's as a whole.
    """

    cluster: Optional[str] = None
    weighted_clusters: Optional[tuple[ClusterWeight, ...]] = None
    prefix_rewrite: Optional[str] = None
    host_rewrite_literal: Optional[str] = None
    auto_host_rewrite: bool = False
    timeout: float = 15.0
    upgrade_configs: tuple[UpgradeConfig, ...] = ()
    retry_policy: Optional[RetryPolicy] = None


@dataclass(frozen=True, slots=True)
class RedirectAction:
    """``route.v3.RedirectAction``: answer with a redirect.

    Empty strings and ``port_redirect == 0`` keep that part of the request URL.
    At most one of ``https_redirect`` / ``scheme_redirect`` and at most one of
    ``path_redirect`` / ``prefix_rewrite`` is set.
    """

    https_redirect: bool = False
    scheme_redirect: Optional[str] = None
    host_redirect: str = ""
    port_redirect: int = 0
    path_redirect: Optional[str] = None
    prefix_rewrite: Optional[str] = None
    response_code: RedirectResponseCode = RedirectResponseCode.MOVED_PERMANENTLY
    strip_query: bool = False


@dataclass(frozen=True, slots=True)
class DirectResponseAction:
    """``route.v3.DirectResponseAction``: answer locally with ``status`` and ``body`` (at most 4096 bytes)."""

    status: int
    body: Optional[bytes] = None


@dataclass(frozen=True, slots=True)
class Route:
    """``route.v3.Route``: a match and one action."""

    match: RouteMatch
    action: Union[RouteAction, RedirectAction, DirectResponseAction]
    name: str = ""
    request_headers_to_add: tuple[HeaderValueOption, ...] = ()
    request_headers_to_remove: tuple[str, ...] = ()
    response_headers_to_add: tuple[HeaderValueOption, ...] = ()
    response_headers_to_remove: tuple[str, ...] = ()
    #: Per-filter overrides by HTTP filter name (``LocalRateLimit`` configs).
    typed_per_filter_config: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def route(self) -> Optional[RouteAction]:
        """The action if it forwards upstream, else ``None``."""
        return self.action if isinstance(self.action, RouteAction) else None

    @property
    def redirect(self) -> Optional[RedirectAction]:
        """The action if it is a redirect, else ``None``."""
        return self.action if isinstance(self.action, RedirectAction) else None

    @property
    def direct_response(self) -> Optional[DirectResponseAction]:
        """The action if it is a direct response, else ``None``."""
        return self.action if isinstance(self.action, DirectResponseAction) else None


@dataclass(frozen=True, slots=True)
class VirtualHost:
    """``route.v3.VirtualHost``.

    ``domains`` as written: exact names, ``*.suffix`` / ``*suffix``,
    ``prefix*``, or ``*``; Envoy compares them case-insensitively.
    ``retry_policy`` applies to the routes that have none of their own.
    ``typed_per_filter_config`` holds per-filter overrides by HTTP filter
    name; a route's own entry for the same filter wins.
    """

    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...] = ()
    request_headers_to_add: tuple[HeaderValueOption, ...] = ()
    request_headers_to_remove: tuple[str, ...] = ()
    response_headers_to_add: tuple[HeaderValueOption, ...] = ()
    response_headers_to_remove: tuple[str, ...] = ()
    retry_policy: Optional[RetryPolicy] = None
    typed_per_filter_config: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class RouteConfiguration:
    """``route.v3.RouteConfiguration`` given inline in the connection manager."""

    name: str = ""
    virtual_hosts: tuple[VirtualHost, ...] = ()
    request_headers_to_add: tuple[HeaderValueOption, ...] = ()
    request_headers_to_remove: tuple[str, ...] = ()
    response_headers_to_add: tuple[HeaderValueOption, ...] = ()
    response_headers_to_remove: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# The HTTP connection manager.


@dataclass(frozen=True, slots=True)
class Router:
    """``extensions.filters.http.router.v3.Router`` (no options are supported)."""


@dataclass(frozen=True, slots=True)
class HealthCheckFilterConfig:
    """``extensions.filters.http.health_check.v3.HealthCheck``: the health check filter.

    A request every one of ``headers`` matches is a health check.  Without
    ``pass_through_mode`` the filter answers it (200, or 503 while the
    server fails health checks or one of ``cluster_min_healthy_percentages``
    -- cluster name to the least percentage of available hosts -- is not
    met); with it the request goes on upstream, and ``cache_time`` (seconds)
    lets the filter answer with the last upstream status for that long.
    """

    pass_through_mode: bool
    headers: tuple[HeaderMatcher, ...] = ()
    cache_time: float = 0.0
    cluster_min_healthy_percentages: Mapping[str, float] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """``type.v3.TokenBucket``: ``max_tokens``, refilled by ``tokens_per_fill`` every ``fill_interval`` seconds."""

    max_tokens: int
    fill_interval: float
    tokens_per_fill: int = 1


@dataclass(frozen=True, slots=True)
class RuntimeFractionalPercent:
    """``core.v3.RuntimeFractionalPercent``: ``numerator`` out of ``denominator`` (100, 10000 or 1000000).

    ``runtime_key`` is kept for the record: there is no runtime, so the
    default value always applies (as in Envoy without a runtime layer).
    """

    numerator: int = 0
    denominator: int = 100
    runtime_key: str = ""


@dataclass(frozen=True, slots=True)
class LocalRateLimit:
    """``extensions.filters.http.local_ratelimit.v3.LocalRateLimit`` (also a per-route override).

    ``filter_enabled`` / ``filter_enforced`` unset mean 0 % (Envoy's
    default).  ``status`` is the rate-limited answer's status (429 by
    default; below 400 means 429).  ``enable_x_ratelimit_headers`` is the
    ``DRAFT_VERSION_03`` choice.
    """

    stat_prefix: str
    token_bucket: Optional[TokenBucket] = None
    status: int = 429
    filter_enabled: Optional[RuntimeFractionalPercent] = None
    filter_enforced: Optional[RuntimeFractionalPercent] = None
    request_headers_to_add_when_not_enforced: tuple[HeaderValueOption, ...] = ()
    response_headers_to_add: tuple[HeaderValueOption, ...] = ()
    local_rate_limit_per_downstream_connection: bool = False
    enable_x_ratelimit_headers: bool = False
    always_consume_default_token_bucket: bool = True


@dataclass(frozen=True, slots=True)
class HttpFilter:
    """One entry of ``http_filters``: its name and its typed config (the router last)."""

    name: str
    typed_config: Union[Router, HealthCheckFilterConfig, LocalRateLimit, Compressor, Buffer, HttpFault] = field(
        default_factory=Router
    )


@dataclass(frozen=True, slots=True)
class HttpProtocolOptions:
    """``core.v3.HttpProtocolOptions``: the connection idle timeout (1 h; ``0`` disables it)."""

    idle_timeout: float = 3600.0


@dataclass(frozen=True, slots=True)
class Http1ProtocolOptions:
    """``core.v3.Http1ProtocolOptions``."""

    accept_http_10: bool = False
    default_host_for_http_10: str = ""


@dataclass(frozen=True, slots=True)
class CidrRange:
    """``core.v3.CidrRange``: ``address_prefix`` (an IP literal) and ``prefix_len``.

    A ``prefix_len`` beyond the address's bits counts as all of them, as in Envoy.
    """

    address_prefix: str
    prefix_len: int = 0


@dataclass(frozen=True, slots=True)
class InternalAddressConfig:
    """``HttpConnectionManager.InternalAddressConfig``: the client addresses trusted as internal.

    Without one, as in Envoy 1.40, no address is internal.
    """

    cidr_ranges: tuple[CidrRange, ...] = ()


@dataclass(frozen=True, slots=True)
class HttpConnectionManager:
    """``extensions.filters.network.http_connection_manager.v3.HttpConnectionManager``."""

    stat_prefix: str
    route_config: RouteConfiguration
    http_filters: tuple[HttpFilter, ...]
    codec_type: CodecType = CodecType.AUTO
    access_log: tuple[AccessLog, ...] = ()
    use_remote_address: bool = False
    xff_num_trusted_hops: int = 0
    server_name: str = "envoy"
    generate_request_id: bool = True
    request_timeout: float = 0.0
    stream_idle_timeout: float = 300.0
    drain_timeout: float = 5.0
    delayed_close_timeout: float = 1.0
    max_request_headers_kb: int = 60
    common_http_protocol_options: HttpProtocolOptions = field(default_factory=HttpProtocolOptions)
    http_protocol_options: Http1ProtocolOptions = field(default_factory=Http1ProtocolOptions)
    upgrade_configs: tuple[UpgradeConfig, ...] = ()
    internal_address_config: Optional[InternalAddressConfig] = None


# --------------------------------------------------------------------------------------------
# Listeners.


@dataclass(frozen=True, slots=True)
class NetworkFilter:
    """``listener.v3.Filter``; the HTTP connection manager is the only network filter supported."""

    name: str
    typed_config: HttpConnectionManager


@dataclass(frozen=True, slots=True)
class FilterChain:
    """``listener.v3.FilterChain`` (without ``filter_chain_match``: a listener has one).

    ``transport_socket`` is the chain's TLS context (None: plaintext).
    """

    filters: tuple[NetworkFilter, ...]
    name: str = ""
    transport_socket: Optional["TlsContext"] = None

    @property
    def http_connection_manager(self) -> HttpConnectionManager:
        return self.filters[-1].typed_config


@dataclass(frozen=True, slots=True)
class Listener:
    """``listener.v3.Listener``.

    A listener without a ``name`` gets a random UUID, as in Envoy.
    """

    name: str
    address: SocketAddress
    filter_chains: tuple[FilterChain, ...]
    per_connection_buffer_limit_bytes: int = DEFAULT_BUFFER_LIMIT_BYTES


# --------------------------------------------------------------------------------------------
# TLS (the transport socket envoy.transport_sockets.tls).


@dataclass(frozen=True, slots=True)
class TlsCertificate:
    """``extensions.transport_sockets.tls.v3.TlsCertificate``: PEM bytes, read from the file or inline."""

    certificate_chain: bytes
    private_key: bytes


@dataclass(frozen=True, slots=True)
class TlsContext:
    """A ``DownstreamTlsContext`` (``downstream``) or ``UpstreamTlsContext``, the supported subset.

    Versions are Envoy's ``TlsProtocol`` names (``TLSv1_2``...; None: Envoy's
    default).  ``trusted_ca`` (PEM) is the validation context: without it a
    client does not verify its server, as in Envoy.
    """

    downstream: bool
    tls_certificates: tuple[TlsCertificate, ...] = ()
    trusted_ca: Optional[bytes] = None
    require_client_certificate: bool = False
    alpn_protocols: tuple[str, ...] = ()
    tls_minimum_protocol_version: Optional[str] = None
    tls_maximum_protocol_version: Optional[str] = None
    cipher_suites: tuple[str, ...] = ()
    sni: str = ""


# --------------------------------------------------------------------------------------------
# Clusters.


@dataclass(frozen=True, slots=True)
class LbEndpoint:
    """``endpoint.v3.LbEndpoint`` (its ``endpoint.address``, flattened)."""

    address: SocketAddress
    load_balancing_weight: int = 1


@dataclass(frozen=True, slots=True)
class LocalityLbEndpoints:
    """``endpoint.v3.LocalityLbEndpoints`` (no locality, priority 0)."""

    lb_endpoints: tuple[LbEndpoint, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterLoadAssignment:
    """``endpoint.v3.ClusterLoadAssignment``."""

    cluster_name: str
    endpoints: tuple[LocalityLbEndpoints, ...] = ()


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``CircuitBreakers.Thresholds`` for one priority, with Envoy's defaults."""

    priority: RoutingPriority = RoutingPriority.DEFAULT
    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3
    track_remaining: bool = False


@dataclass(frozen=True, slots=True)
class CircuitBreakers:
    """``cluster.v3.CircuitBreakers``: at most one :class:`Thresholds` per priority."""

    thresholds: tuple[Thresholds, ...] = ()

    def for_priority(self, priority: RoutingPriority = RoutingPriority.DEFAULT) -> Thresholds:
        """The thresholds in force for ``priority`` (Envoy's defaults when none is configured)."""
        for t in self.thresholds:
            if t.priority == priority:
                return t
        return Thresholds(priority=priority)


@dataclass(frozen=True, slots=True)
class HttpHealthCheck:
    """``HealthCheck.HttpHealthCheck``: a ``GET`` of ``path`` over HTTP/1.1.

    ``host`` is the Host header (empty: the cluster's name).  The values of
    ``request_headers_to_add`` are literal text (``%%`` is a ``%``): command
    operators are not supported in health check requests.
    ``expected_statuses`` and ``retriable_statuses`` are half-open
    ``(start, end)`` ranges; no expected range means 200 only.
    """

    path: str
    host: str = ""
    request_headers_to_add: tuple[HeaderValueOption, ...] = ()
    request_headers_to_remove: tuple[str, ...] = ()
    expected_statuses: tuple[tuple[int, int], ...] = ()
    retriable_statuses: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class TcpHealthCheck:
    """``HealthCheck.TcpHealthCheck``: bytes sent, byte blocks expected back (decoded from hex).

    Nothing to receive means a connect-only check.
    """

    send: bytes = b""
    receive: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """``core.v3.HealthCheck``: active health checking of every host of a cluster.

    Durations are float seconds; the optional intervals are ``None`` when
    not configured (each then falls back as Envoy's does, see
    :mod:`pyevent_envoy.upstream.health_checker`).  Exactly one of
    ``http_health_check`` and ``tcp_health_check`` is set.
    """

    timeout: float
    interval: float
    unhealthy_threshold: int
    healthy_threshold: int
    interval_jitter: float = 0.0
    interval_jitter_percent: int = 0
    initial_jitter: float = 0.0
    no_traffic_interval: float = 60.0
    no_traffic_healthy_interval: Optional[float] = None
    unhealthy_interval: Optional[float] = None
    unhealthy_edge_interval: Optional[float] = None
    healthy_edge_interval: Optional[float] = None
    reuse_connection: bool = True
    http_health_check: Optional[HttpHealthCheck] = None
    tcp_health_check: Optional[TcpHealthCheck] = None


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """``cluster.v3.OutlierDetection``: consecutive-error, success-rate and failure-percentage ejections, with Envoy's defaults.

    Durations are float seconds; the ``enforcing_*`` fields and
    ``max_ejection_percent`` are percentages.
    """

    consecutive_5xx: int = 5
    consecutive_gateway_failure: int = 5
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_percent: int = 10
    enforcing_consecutive_5xx: int = 100
    enforcing_consecutive_gateway_failure: int = 0
    enforcing_success_rate: int = 100
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    #: The stdev multiplier times 1000 (1900 means 1.9).
    success_rate_stdev_factor: int = 1900
    failure_percentage_threshold: int = 85
    enforcing_failure_percentage: int = 0
    failure_percentage_minimum_hosts: int = 5
    failure_percentage_request_volume: int = 50


@dataclass(frozen=True, slots=True)
class Cluster:
    """``cluster.v3.Cluster``.

    ``http_protocol_options`` is set when the cluster's
    ``typed_extension_protocol_options`` asks explicitly for HTTP/1 upstream
    (the only upstream protocol there is); ``None`` otherwise.
    """

    name: str
    type: DiscoveryType = DiscoveryType.STATIC
    connect_timeout: float = 5.0
    lb_policy: LbPolicy = LbPolicy.ROUND_ROBIN
    load_assignment: Optional[ClusterLoadAssignment] = None
    circuit_breakers: CircuitBreakers = field(default_factory=CircuitBreakers)
    dns_refresh_rate: float = 5.0
    dns_lookup_family: DnsLookupFamily = DnsLookupFamily.AUTO
    per_connection_buffer_limit_bytes: int = DEFAULT_BUFFER_LIMIT_BYTES
    http_protocol_options: Optional[Http1ProtocolOptions] = None
    health_checks: tuple[HealthCheck, ...] = ()
    outlier_detection: Optional[OutlierDetection] = None
    #: The cluster's upstream TLS context (None: plaintext).
    transport_socket: Optional["TlsContext"] = None

    @property
    def lb_endpoints(self) -> tuple[LbEndpoint, ...]:
        """Every endpoint of every locality, in order."""
        if self.load_assignment is None:
            return ()
        return tuple(e for loc in self.load_assignment.endpoints for e in loc.lb_endpoints)


# --------------------------------------------------------------------------------------------
# The bootstrap.


@dataclass(frozen=True, slots=True)
class Node:
    """``core.v3.Node``: who this proxy is."""

    id: str = ""
    cluster: str = ""


@dataclass(frozen=True, slots=True)
class Admin:
    """``bootstrap.v3.Admin``: with no ``address`` there is no admin listener."""

    address: Optional[SocketAddress] = None
    access_log: tuple[AccessLog, ...] = ()


@dataclass(frozen=True, slots=True)
class StaticResources:
    """``Bootstrap.StaticResources``."""

    listeners: tuple[Listener, ...] = ()
    clusters: tuple[Cluster, ...] = ()


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """``bootstrap.v3.Bootstrap``: the whole configuration.

    ``source`` is the parsed YAML or JSON tree it was read from (after
    ``--config-yaml`` merged), which the admin's ``/config_dump`` shows;
    ``None`` for a bootstrap built in code.  It takes no part in equality.
    """

    node: Node = field(default_factory=Node)
    static_resources: StaticResources = field(default_factory=StaticResources)
    admin: Optional[Admin] = None
    source: Any = field(default=None, compare=False, repr=False)
    #: Seconds between stats flushes: each flush merges the workers'
    #: histograms and starts a new interval (Envoy's default, 5 s).
    stats_flush_interval: float = DEFAULT_STATS_FLUSH_INTERVAL

    def cluster(self, name: str) -> Optional[Cluster]:
        """The static cluster called ``name``, or ``None``."""
        for c in self.static_resources.clusters:
            if c.name == name:
                return c
        return None

    def listener(self, name: str) -> Optional[Listener]:
        """The listener called ``name``, or ``None``."""
        for lst in self.static_resources.listeners:
            if lst.name == name:
                return lst
        return None


# --------------------------------------------------------------------------------------------
# HTTP filters before the router (http_filters entries).

#: ``@type`` of the ``envoy.filters.http.compressor`` filter's config.
COMPRESSOR_TYPE_URL = _PREFIX + "envoy.extensions.filters.http.compressor.v3.Compressor"
#: ``@type`` of the gzip compressor library.
GZIP_COMPRESSOR_TYPE_URL = _PREFIX + "envoy.extensions.compression.gzip.compressor.v3.Gzip"
#: ``@type`` of the ``envoy.filters.http.buffer`` filter's config.
BUFFER_TYPE_URL = _PREFIX + "envoy.extensions.filters.http.buffer.v3.Buffer"
#: ``@type`` of the ``envoy.filters.http.fault`` filter's config.
FAULT_TYPE_URL = _PREFIX + "envoy.extensions.filters.http.fault.v3.HTTPFault"


@dataclass(frozen=True, slots=True)
class Gzip:
    """``compression.gzip.compressor.v3.Gzip``, as zlib's parameters.

    ``compression_level`` is zlib's (``-1``: its default, 6), ``window_bits``
    without the gzip wrapper's 16, ``compression_strategy`` zlib's number.
    ``chunk_size`` sizes Envoy's output buffer only (no observable effect).
    """

    memory_level: int = 5
    compression_level: int = -1
    compression_strategy: int = 0
    window_bits: int = 12
    chunk_size: int = 4096


@dataclass(frozen=True, slots=True)
class Compressor:
    """``filters.http.compressor.v3.Compressor`` with a gzip ``compressor_library``.

    The response direction's settings are flattened here: ``enabled`` (its
    ``common_config.enabled.default_value``), ``min_content_length``,
    ``content_types`` (empty: Envoy's default list),
    ``disable_on_etag_header``, ``remove_accept_encoding_header``.
    ``has_response_direction_config`` decides the stats' names.
    """

    library_name: str
    gzip: Gzip = field(default_factory=Gzip)
    enabled: bool = True
    min_content_length: int = 30
    content_types: tuple[str, ...] = ()
    disable_on_etag_header: bool = False
    remove_accept_encoding_header: bool = False
    choose_first: bool = False
    has_response_direction_config: bool = False


@dataclass(frozen=True, slots=True)
class Buffer:
    """``filters.http.buffer.v3.Buffer``."""

    max_request_bytes: int


@dataclass(frozen=True, slots=True)
class FaultAbort:
    """``filters.http.fault.v3.FaultAbort``: ``http_status``, or ``header_abort``.

    ``percentage`` is a ``FractionalPercent`` as ``(numerator, denominator)``
    (100, 10000 or 1000000); unset, it is Envoy's 0 %.
    """

    http_status: Optional[int] = None
    header_abort: bool = False
    percentage: tuple[int, int] = (0, 100)


@dataclass(frozen=True, slots=True)
class FaultDelay:
    """``filters.common.fault.v3.FaultDelay``: ``fixed_delay`` (whole milliseconds, as Envoy reads it) or ``header_delay``."""

    fixed_delay_ms: Optional[int] = None
    header_delay: bool = False
    percentage: tuple[int, int] = (0, 100)


@dataclass(frozen=True, slots=True)
class HttpFault:
    """``filters.http.fault.v3.HTTPFault``."""

    abort: Optional[FaultAbort] = None
    delay: Optional[FaultDelay] = None
    upstream_cluster: str = ""
    headers: tuple[HeaderMatcher, ...] = ()
    downstream_nodes: tuple[str, ...] = ()
    max_active_faults: Optional[int] = None
    disable_downstream_cluster_stats: bool = False


__all__ += [
    "BUFFER_TYPE_URL",
    "COMPRESSOR_TYPE_URL",
    "FAULT_TYPE_URL",
    "GZIP_COMPRESSOR_TYPE_URL",
    "Buffer",
    "Compressor",
    "FaultAbort",
    "FaultDelay",
    "Gzip",
    "HttpFault",
]
