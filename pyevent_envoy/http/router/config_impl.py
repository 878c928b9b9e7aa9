"""The route table (Envoy's ``source/common/router/config_impl.cc``).

A :class:`RouteTable` is built once from a
:class:`~pyevent_envoy.config.bootstrap.RouteConfiguration` (on the main
thread) and is then immutable: every worker may share one table and call
:meth:`RouteTable.route` concurrently, with no locking, on any Python build
(free-threaded included).  Everything is compiled at construction:

- domains: a ``dict`` of exact (lowercased) names, suffix and prefix wildcards
  grouped by length (longest first), and the ``*`` default;
- routes: a kind code and the match string (lowercased for
  ``case_sensitive: false``) or the compiled regex, the header matchers as
  closures, weighted-cluster cumulative weights, the header mutations with
  their values pre-split into literal text and command operators;
- one :class:`RouteEntry` per route (one per cluster of a weighted route),
  so :meth:`RouteTable.route` allocates nothing but a lowercased copy of
  ``:authority`` and of the path where matching needs them.

The rules, each checked against Envoy 1.40 (tests/http/router):

**Virtual host** (``RouteMatcher::findVirtualHost``).  ``:authority`` is
lowercased (ASCII) and compared as a whole, port included: ``host:8080``
matches the domain ``host:8080`` only, never ``host``; ``host:80`` does not
match ``host`` either.  Order: an exact domain; then suffix wildcards
(``*.example.com``, ``*example.com``), longest first; then prefix wildcards
(``www.example.*``), longest first; then the ``*`` virtual host.  A wildcard
matches at least one character: ``*.example.com`` does not match
``.example.com``, ``*example.com`` matches ``xexample.com`` and
``.example.com`` but not ``example.com``, and ``foo.*`` does not match
``foo.``.  So a port defeats suffix wildcards (``a.example.com:80`` goes to
``*``) but not prefix wildcards (``foo.*`` matches ``foo.com:80``).  With
only a ``*`` virtual host, it is used even without ``:authority``;
otherwise a request without one has no route.

**Routes**, first match wins.  ``prefix``, ``path`` and ``safe_regex``
compare the path without its query string and fragment (from the first
``?`` or ``#``); ``safe_regex`` is a full match and ignores
``case_sensitive``; ``prefix`` and ``path`` with ``case_sensitive: false``
compare ASCII case-insensitively.  Every header matcher must match:

- a string matcher (``exact``, ``prefix``, ``suffix``, ``contains``,
  ``safe_regex`` full match, ``ignore_case`` ASCII) matches when **any one
  value** of the header matches (Envoy 1.40 does not join repeated headers
  for matching: ``x: a`` plus ``x: b`` matches ``exact: a`` and ``exact: b``
  but not ``exact: "a,b"``); a missing header never matches, inverted or
  not, unless ``treat_missing_header_as_empty`` (then it is one empty
  value); ``invert_match`` negates "some value matched";
- ``present_match`` compares presence (an empty value is present), then
  ``invert_match`` negates;
- the names ``host`` and ``:authority`` both read ``:authority``.

**Header mutations** (``HeaderParser::evaluateHeaders``), route level, then
virtual host, then route configuration (the outermost wins an overwrite;
appended values come in that order).  At each level: the removals first;
then every value is formatted (against the headers as they are after the
removals); values that come out empty are dropped unless
``keep_empty_value``; ``APPEND_IF_EXISTS_OR_ADD`` adds a field,
``ADD_IF_ABSENT`` adds one if the header was absent before this level,
``OVERWRITE_IF_EXISTS`` overwrites if it was present before this level,
``OVERWRITE_IF_EXISTS_OR_ADD`` overwrites; the overwrites are applied before
the additions, and an overwrite removes every field of that name and
appends one at the end (Envoy's ``setReferenceKey``), so the last overwrite
of a level wins and that level's additions follow it.

**Formatting**: the values are Envoy format strings (``%%`` is ``%``).
Supported from a :class:`FormatterContext`: ``%DOWNSTREAM_REMOTE_ADDRESS%``,
``%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%``, ``%DOWNSTREAM_REMOTE_PORT%``,
the ``DOWNSTREAM_DIRECT_REMOTE_*`` and ``DOWNSTREAM_LOCAL_*`` variants,
``%PROTOCOL%``, ``%UPSTREAM_HOST%`` (responses only: in request headers it
is empty, as in Envoy, whose upstream host is not chosen yet),
``%UPSTREAM_CLUSTER%``; from the headers: ``%REQ(name?alt):N%`` (first
value) and ``%RESP(name?alt):N%`` (responses only); from the table:
``%ROUTE_NAME%`` and ``%HOSTNAME%``.  Any other operator the configuration
accepts is read from ``FormatterContext.extra`` by name (``"RESPONSE_CODE"``
...) and is empty when absent: a missing value is empty, never the
access log's ``-``.

**Rewrites**: ``prefix_rewrite`` replaces the matched prefix (``prefix``
routes), the whole configured path (``path`` routes) or the whole path
before the query (``safe_regex`` routes), and keeps the rest, query string
included; an empty ``prefix_rewrite`` means none.
:meth:`RouteEntry.apply_rewrites` sets ``host_rewrite_literal`` (saving the
old ``:authority`` in ``x-envoy-original-host``) and then the rewritten
``:path`` (saving the old one in ``x-envoy-original-path``); Envoy does both
right after the request header mutations
(:meth:`RouteEntry.finalize_request_headers`), so the router calls the two
in that order.  ``auto_host_rewrite`` is left to the router, which knows
the upstream host.

**Redirects** (``Http::Utility::newUri``): the Location is
``scheme://host[port]path``.  Scheme: ``scheme_redirect`` verbatim, else
``https`` for ``https_redirect``, else the request's ``:scheme``.  Port:
``":<port_redirect>"`` when set.  Host: ``host_redirect`` verbatim (a port in
it stays, even next to ``port_redirect``), else the request's ``:authority``
with its port removed when ``port_redirect`` is set, or when the scheme
changes (case-sensitive comparison with ``x-forwarded-proto``) away from an
``http`` request on ``:80`` or an ``https`` one on ``:443`` (those two
compared case-insensitively); any other port is kept:
``https_redirect`` for ``h:8080`` gives ``https://h:8080/...``.  Path:
``path_redirect`` (a ``?`` in it replaces the request's query, which is
otherwise kept, and disables ``strip_query``), or the path after the
redirect's ``prefix_rewrite``, or the request's path; a ``/`` is prepended
when missing; ``strip_query`` drops the query.  A ``direct_response`` with
status 201 or 3xx also gets a Location: the request's own URL.

Header maps: a request map is what the HTTP connection manager hands the
router: ``:method``, ``:path``, ``:authority`` (a ``host`` field is read
when there is no ``:authority``), ``:scheme`` and ``x-forwarded-proto``
already set the way Envoy's connection manager sets them (``:scheme`` from a
valid ``x-forwarded-proto``, lowercased, else the connection's scheme).
Strings in the configuration are matched against the wire bytes, so they
are compared in their UTF-8 encoding (header maps hold bytes decoded as
latin-1).
"""

from __future__ import annotations

import bisect
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

from pyevent_envoy.config._format import Command, parse_format
from pyevent_envoy.config.bootstrap import (
    DirectResponseAction,
    HeaderAppendAction,
    HeaderMatcher,
    HeaderValueOption,
    RedirectAction,
    Route,
    RouteAction,
    RouteConfiguration,
    StringMatcher,
    VirtualHost,
)
from pyevent_envoy.http.header_map import HeaderMap
from pyevent_envoy.http.router.retry_policy_impl import RetryPolicyImpl

__all__ = [
    "FormatterContext",
    "HeaderParser",
    "RouteEntry",
    "RouteTable",
    "compile_header_matcher",
    "effective_per_try_timeout",
    "expected_timeout",
    "whole_ms",
]

_U64 = (1 << 64) - 1

_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _ascii_lower(s: str) -> str:
    """Lowercase ASCII letters only (Envoy's ``absl::AsciiStrToLower``)."""
    return s.lower() if s.isascii() else s.translate(_ASCII_LOWER)


def _wire(s: str) -> str:
    """A configuration string as a header map holds it: its UTF-8 bytes decoded as latin-1."""
    return s if s.isascii() else s.encode("utf-8").decode("latin-1")


def _strip_query_and_fragment(path: str) -> str:
    """Envoy's ``PathUtil::removeQueryAndFragment``: the path up to the first ``?`` or ``#``."""
    q = path.find("?")
    if q >= 0:
        path = path[:q]
    f = path.find("#")
    if f >= 0:
        path = path[:f]
    return path


# --------------------------------------------------------------------------------------------
# Header value formatting.


@dataclass(slots=True)
class FormatterContext:
    """What the command operators of added header values read, for one request.

    The HTTP connection manager makes one per request (the router fills in
    the upstream fields before the response headers are finalized).  Every
    field is optional; an operator whose value is missing formats as empty.
    The ``finalize_*`` methods also take a plain mapping of these field
    names (any other key goes to ``extra``), at the cost of building one of
    these per call.

    Attributes:
        downstream_remote_address: the client, an
            :class:`~pyevent_envoy.network.address.Address` or an ``ip:port``
            string (``[ip]:port`` for IPv6).
        downstream_direct_remote_address: the peer of the connection when
            it differs from ``downstream_remote_address`` (trusted
            ``x-forwarded-for``); ``None`` means the same.
        downstream_local_address: the listener side of the connection.
        protocol: ``%PROTOCOL%``, ``"HTTP/1.1"`` or ``"HTTP/1.0"``.
        upstream_host: the upstream address (``%UPSTREAM_HOST%``, response
            headers only).
        upstream_cluster: the cluster name (``%UPSTREAM_CLUSTER%``).
        request_headers: the request, for ``%REQ(...)%`` in response headers.
        extra: values of any other operator, by name (``{"RESPONSE_CODE":
            "200"}``).
    """

    downstream_remote_address: Any = None
    downstream_direct_remote_address: Any = None
    downstream_local_address: Any = None
    protocol: str = ""
    upstream_host: Any = None
    upstream_cluster: str = ""
    request_headers: Optional[HeaderMap] = None
    extra: Mapping[str, str] = field(default_factory=dict)


_Context = Union[FormatterContext, Mapping[str, Any], Callable[[], FormatterContext], None]
_CONTEXT_FIELDS = frozenset(FormatterContext.__dataclass_fields__)


def _as_context(context: _Context) -> Optional[FormatterContext]:
    """A :class:`FormatterContext`, from one, from a mapping of its field names
    (others go to ``extra``), or from a callable that builds one -- called only
    when a header value has an operator to evaluate."""
    if context is None or isinstance(context, FormatterContext):
        return context
    if callable(context):
        return context()
    known = {k: v for k, v in context.items() if k in _CONTEXT_FIELDS}
    unknown = {k: v for k, v in context.items() if k not in _CONTEXT_FIELDS}
    if unknown:
        known["extra"] = {**known.get("extra", {}), **unknown}
    return FormatterContext(**known)


def _addr_str(addr: Any) -> str:
    return "" if addr is None else str(addr)


def _addr_ip(addr: Any) -> str:
    if addr is None:
        return ""
    ip = getattr(addr, "ip", None)
    if ip is not None:
        return ip
    s = str(addr)
    if s.startswith("["):
        end = s.find("]")
        return s[1:end] if end > 0 else s
    if s.count(":") == 1:
        return s.split(":", 1)[0]
    return s


def _addr_port(addr: Any) -> str:
    if addr is None:
        return ""
    port = getattr(addr, "port", None)
    if port is not None:
        return str(port)
    s = str(addr)
    if s.startswith("["):
        end = s.rfind("]:")
        return s[end + 2 :] if end > 0 else ""
    if s.count(":") == 1:
        return s.split(":", 1)[1]
    return ""


def _remote(ctx: FormatterContext) -> Any:
    return ctx.downstream_remote_address


def _direct(ctx: FormatterContext) -> Any:
    d = ctx.downstream_direct_remote_address
    return ctx.downstream_remote_address if d is None else d


def _local(ctx: FormatterContext) -> Any:
    return ctx.downstream_local_address


_ADDRESS_COMMANDS: dict[str, tuple[Callable[[FormatterContext], Any], Callable[[Any], str]]] = {
    "DOWNSTREAM_REMOTE_ADDRESS": (_remote, _addr_str),
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": (_remote, _addr_ip),
    "DOWNSTREAM_REMOTE_PORT": (_remote, _addr_port),
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": (_direct, _addr_str),
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": (_direct, _addr_ip),
    "DOWNSTREAM_LOCAL_ADDRESS": (_local, _addr_str),
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": (_local, _addr_ip),
    "DOWNSTREAM_LOCAL_PORT": (_local, _addr_port),
}

_hostname: Optional[str] = None


def _get_hostname() -> str:
    global _hostname
    if _hostname is None:
        _hostname = socket.gethostname()
    return _hostname


# An operator: (request headers, response headers or None, context or None, entry) -> str.
_Operator = Callable[[Optional[HeaderMap], Optional[HeaderMap], Optional[FormatterContext], "RouteEntry"], str]


def _header_names(spec: str, request: bool) -> tuple[str, ...]:
    names = []
    for name in spec.split("?"):
        name = name.lower()
        if request and name == "host":
            name = ":authority"
        names.append(name)
    return tuple(names)


def _first_value(headers: Optional[HeaderMap], names: tuple[str, ...]) -> str:
    if headers is None:
        return ""
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    return ""


def _compile_operator(cmd: Command) -> _Operator:
    name = cmd.name
    n = cmd.max_length
    if name == "REQ":
        names = _header_names(cmd.argument or "", True)

        def op(req, resp, ctx, entry):
            v = _first_value(req, names)
            return v if n is None else v[:n]

    elif name == "RESP":
        names = _header_names(cmd.argument or "", False)

        def op(req, resp, ctx, entry):
            v = _first_value(resp, names)
            return v if n is None else v[:n]

    elif name == "TRAILER":

        def op(req, resp, ctx, entry):
            return ""

    elif name == "ROUTE_NAME":

        def op(req, resp, ctx, entry):
            return entry.route_name

    elif name == "HOSTNAME":

        def op(req, resp, ctx, entry):
            return _get_hostname()

    elif name in _ADDRESS_COMMANDS:
        pick, render = _ADDRESS_COMMANDS[name]

        def op(req, resp, ctx, entry):
            return "" if ctx is None else render(pick(ctx))

    elif name == "PROTOCOL":

        def op(req, resp, ctx, entry):
            return "" if ctx is None else ctx.protocol or ""

    elif name == "UPSTREAM_HOST":

        def op(req, resp, ctx, entry):
            # Request headers are finalized before an upstream host is chosen.
            return "" if ctx is None or resp is None else _addr_str(ctx.upstream_host)

    elif name == "UPSTREAM_CLUSTER":

        def op(req, resp, ctx, entry):
            return "" if ctx is None else ctx.upstream_cluster or ""

    else:

        def op(req, resp, ctx, entry):
            if ctx is None:
                return ""
            v = ctx.extra.get(name)
            return "" if v is None else str(v)

    return op


class _Formatter:
    """A header value: literal text and operators, joined at evaluation."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Union[str, _Operator], ...]) -> None:
        self.parts = parts

    def __call__(self, req, resp, ctx, entry) -> str:
        return "".join([p if type(p) is str else p(req, resp, ctx, entry) for p in self.parts])


def _compile_value(value: str) -> Union[str, _Formatter]:
    """A literal string when the value has no operator, else a :class:`_Formatter`."""
    parts = parse_format(value)  # ValueError for a value the configuration would have rejected
    if all(type(p) is str for p in parts):
        return _wire("".join(parts))  # type: ignore[arg-type]
    return _Formatter(tuple(_wire(p) if type(p) is str else _compile_operator(p) for p in parts))


_APPEND = HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD
_ADD_IF_ABSENT = HeaderAppendAction.ADD_IF_ABSENT
_OVERWRITE_IF_EXISTS = HeaderAppendAction.OVERWRITE_IF_EXISTS
_OVERWRITE = HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD


class HeaderParser:
    """One level's ``*_headers_to_add`` and ``*_headers_to_remove`` (Envoy's ``HeaderParser``)."""

    __slots__ = ("remove", "add")

    def __init__(self, to_add: tuple[HeaderValueOption, ...], to_remove: tuple[str, ...]) -> None:
        self.remove = tuple(dict.fromkeys(name.lower() for name in to_remove))
        self.add = tuple(
            (o.key.lower(), _compile_value(o.value), HeaderAppendAction(o.append_action), o.keep_empty_value)
            for o in to_add
        )

    def __bool__(self) -> bool:
        return bool(self.remove or self.add)

    def evaluate(self, headers: HeaderMap, req, resp, ctx, entry) -> None:
        for name in self.remove:
            headers.remove(name)
        if not self.add:
            return
        adds = []
        overwrites = []
        for key, value, action, keep_empty in self.add:
            if type(value) is not str:
                value = value(req, resp, ctx, entry)
            if not value and not keep_empty:
                continue
            if action is _APPEND:
                adds.append((key, value))
            elif action is _OVERWRITE:
                overwrites.append((key, value))
            elif action is _ADD_IF_ABSENT:
                if key not in headers:
                    adds.append((key, value))
            elif key in headers:  # OVERWRITE_IF_EXISTS
                overwrites.append((key, value))
        for key, value in overwrites:
            headers.remove(key)
            headers.add(key, value)
        for key, value in adds:
            headers.add(key, value)


# --------------------------------------------------------------------------------------------
# Matchers.


def _compile_string_matcher(sm: StringMatcher) -> Callable[[str], bool]:
    """``StringMatcherImpl::match`` as a closure on one value."""
    if sm.safe_regex is not None:
        fullmatch = sm.safe_regex.pattern.fullmatch
        return lambda v: fullmatch(v) is not None
    if sm.exact is not None:
        target, test = _wire(sm.exact), "exact"
    elif sm.prefix is not None:
        target, test = _wire(sm.prefix), "prefix"
    elif sm.suffix is not None:
        target, test = _wire(sm.suffix), "suffix"
    elif sm.contains is not None:
        target, test = _wire(sm.contains), "contains"
    else:
        raise ValueError("StringMatcher has no match pattern")
    if sm.ignore_case:
        target = _ascii_lower(target)
        if test == "exact":
            return lambda v: _ascii_lower(v) == target
        if test == "prefix":
            return lambda v: _ascii_lower(v).startswith(target)
        if test == "suffix":
            return lambda v: _ascii_lower(v).endswith(target)
        return lambda v: target in _ascii_lower(v)
    if test == "exact":
        return target.__eq__
    if test == "prefix":
        return lambda v: v.startswith(target)
    if test == "suffix":
        return lambda v: v.endswith(target)
    return lambda v: target in v


def compile_header_matcher(hm: HeaderMatcher) -> Callable[[HeaderMap], bool]:
    """``HeaderUtility::HeaderData::matchesHeaders`` as a closure on a request map."""
    name = hm.name.lower()
    if name in ("host", ":authority"):
        # Envoy's request map answers "host" with :authority; read a plain host field as a fallback.
        def values_of(headers: HeaderMap) -> list:
            return headers.get_all(":authority") or headers.get_all("host")

    else:

        def values_of(headers: HeaderMap) -> list:
            return headers.get_all(name)

    invert = hm.invert_match
    if hm.string_match is None:
        present = True if hm.present_match is None else hm.present_match

        def present_matcher(headers: HeaderMap) -> bool:
            return (bool(values_of(headers)) == present) != invert

        return present_matcher

    test = _compile_string_matcher(hm.string_match)
    missing_as_empty = hm.treat_missing_header_as_empty

    def string_matcher(headers: HeaderMap) -> bool:
        values = values_of(headers)
        if not values:
            if not missing_as_empty:
                return False
            return test("") != invert
        for v in values:
            if test(v):
                return not invert
        return invert

    return string_matcher


# Route kinds.
_PREFIX, _PREFIX_CI, _PATH, _PATH_CI, _REGEX = range(5)


# --------------------------------------------------------------------------------------------
# Route entries.


def whole_ms(seconds: float) -> int:
    """``seconds`` in whole milliseconds, as Envoy converts a configured duration."""
    return int(seconds * 1000 + 1e-6)


def effective_per_try_timeout(timeout: float, per_try_timeout: float) -> float:
    """The per-try timeout in force: none when it is not below a set route timeout (Envoy's ``finalTimeout``)."""
    return 0.0 if timeout and per_try_timeout >= timeout else per_try_timeout


def expected_timeout(timeout: float, per_try_timeout: float) -> float:
    """What ``x-envoy-expected-rq-timeout-ms`` says for a first attempt (``0``: no header)."""
    return effective_per_try_timeout(timeout, per_try_timeout) or timeout


class RouteEntry:
    """One route of a :class:`RouteTable`, compiled; immutable and shared by every worker.

    Returned by :meth:`RouteTable.route`.  For a ``weighted_clusters`` route
    each cluster has its own entry (Envoy's ``WeightedClusterEntry``) and
    :meth:`RouteTable.route` returns the one its ``random_value`` picks, so
    :attr:`cluster` is always the cluster to use.

    Attributes:
        route: the configuration :class:`~pyevent_envoy.config.bootstrap.Route`.
        virtual_host: the :class:`~pyevent_envoy.config.bootstrap.VirtualHost`
            it belongs to.
        route_name: ``route.name`` (``%ROUTE_NAME%``).
        cluster: the upstream cluster (``None`` for a redirect or direct
            response).
        timeout: the route's timeout in seconds (``0`` disables it), ``None``
            for a redirect or direct response.
        timeout_ms_text: the ``x-envoy-expected-rq-timeout-ms`` value of a
            first attempt: the per-try timeout when there is one below the
            timeout, else the timeout, in whole milliseconds; ``""`` without
            either.
        retry_policy: the
            :class:`~pyevent_envoy.http.router.retry_policy_impl.RetryPolicyImpl`
            of the route, else of its virtual host, else ``None``.
        per_try_timeout: the retry policy's ``per_try_timeout`` in seconds
            (``0`` for none; it applies with or without retry conditions).
        host_rewrite: ``host_rewrite_literal`` or ``None``.
        auto_host_rewrite: whether the router sets ``:authority`` to the
            upstream host's name.
        redirect: the :class:`~pyevent_envoy.config.bootstrap.RedirectAction`
            or ``None``.
        direct_response: ``(status, body)`` of a ``direct_response`` route
            (``body`` is ``bytes``, ``b""`` when it has none), else ``None``.
        response_code: the status of a redirect or direct response, else
            ``None``.
        response_body: the body of a direct response (``b""`` when it has
            none, and for a redirect), else ``None``.
        upgrade_map: the route's ``upgrade_configs`` as ``{lowercase
            upgrade type: enabled}``, or ``None`` when it has none (the
            connection manager's then decide alone).
        changes_request: :meth:`finalize_request_headers` or
            :meth:`apply_rewrites` can change a request (header mutations
            of the route, its virtual host or its configuration, or a
            rewrite); when False both leave every request as it is.
        changes_response: :meth:`finalize_response_headers` can change a
            response.
    """

    __slots__ = (
        "route",
        "virtual_host",
        "route_name",
        "cluster",
        "timeout",
        "timeout_ms_text",
        "retry_policy",
        "per_try_timeout",
        "host_rewrite",
        "auto_host_rewrite",
        "redirect",
        "direct_response",
        "response_code",
        "response_body",
        "upgrade_map",
        "_kind",
        "_match",
        "_header_matchers",
        "_prefix_rewrite",
        "_redirect_prefix_rewrite",
        "_weighted_names",
        "_weighted_entries",
        "_cumulative",
        "_total_weight",
        "_request_parsers",
        "_response_parsers",
        "_redirect",
        "changes_request",
        "changes_response",
    )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __init__(
        self, route: Route, virtual_host: VirtualHost, vhost_parsers: tuple, config_parsers: tuple
    ) -> None:
        s = object.__setattr__
        s(self, "route", route)
        s(self, "virtual_host", virtual_host)
        s(self, "route_name", route.name)
        match = route.match
        if match.prefix is not None:
            if match.case_sensitive:
                s(self, "_kind", _PREFIX)
                s(self, "_match", _wire(match.prefix))
            else:
                s(self, "_kind", _PREFIX_CI)
                s(self, "_match", _ascii_lower(_wire(match.prefix)))
        elif match.path is not None:
            if match.case_sensitive:
                s(self, "_kind", _PATH)
                s(self, "_match", _wire(match.path))
            else:
                s(self, "_kind", _PATH_CI)
                s(self, "_match", _ascii_lower(_wire(match.path)))
        elif match.safe_regex is not None:
            s(self, "_kind", _REGEX)
            s(self, "_match", match.safe_regex.pattern.fullmatch)
        else:
            raise ValueError(f"route {route.name!r} has no path specifier")
        s(self, "_header_matchers", tuple(compile_header_matcher(h) for h in match.headers))

        action = route.action
        s(self, "cluster", None)
        s(self, "timeout", None)
        s(self, "timeout_ms_text", "")
        s(self, "retry_policy", None)
        s(self, "per_try_timeout", 0.0)
        s(self, "host_rewrite", None)
        s(self, "auto_host_rewrite", False)
        s(self, "redirect", None)
        s(self, "direct_response", None)
        s(self, "response_code", None)
        s(self, "response_body", None)
        s(self, "upgrade_map", None)
        s(self, "_prefix_rewrite", "")
        s(self, "_redirect_prefix_rewrite", "")
        s(self, "_weighted_names", ())
        s(self, "_weighted_entries", ())
        s(self, "_cumulative", ())
        s(self, "_total_weight", 0)
        s(self, "_redirect", None)
        if isinstance(action, RouteAction):
            s(self, "timeout", action.timeout)
            policy = action.retry_policy or virtual_host.retry_policy
            if policy is not None:
                s(self, "retry_policy", RetryPolicyImpl.from_config(policy, compile_header_matcher))
                s(self, "per_try_timeout", policy.per_try_timeout)
            expected = expected_timeout(action.timeout, self.per_try_timeout)
            if expected:
                # x-envoy-expected-rq-timeout-ms, formatted once.
                s(self, "timeout_ms_text", str(whole_ms(expected)))
            s(self, "_prefix_rewrite", _wire(action.prefix_rewrite or ""))
            if action.host_rewrite_literal:
                s(self, "host_rewrite", _wire(action.host_rewrite_literal))
            s(self, "auto_host_rewrite", action.auto_host_rewrite)
            if action.upgrade_configs:
                s(self, "upgrade_map", {u.upgrade_type.lower(): u.enabled for u in action.upgrade_configs})
            if action.weighted_clusters:
                names = tuple(c.name for c in action.weighted_clusters)
                cumulative = []
                total = 0
                for c in action.weighted_clusters:
                    total += c.weight
                    cumulative.append(total)
                if total <= 0:
                    raise ValueError(f"route {route.name!r}: the weighted clusters' total weight must be positive")
                s(self, "_weighted_names", names)
                s(self, "_cumulative", tuple(cumulative))
                s(self, "_total_weight", total)
            else:
                s(self, "cluster", action.cluster)
        elif isinstance(action, RedirectAction):
            s(self, "redirect", action)
            s(self, "response_code", action.response_code.status)
            s(self, "response_body", b"")
            s(self, "_redirect_prefix_rewrite", _wire(action.prefix_rewrite or ""))
            path_redirect = _wire(action.path_redirect or "")
            s(
                self,
                "_redirect",
                (
                    _wire(action.scheme_redirect or "") or ("https" if action.https_redirect else ""),
                    _wire(action.host_redirect),
                    f":{action.port_redirect}" if action.port_redirect else "",
                    path_redirect,
                    "?" in path_redirect,
                    action.strip_query,
                ),
            )
        elif isinstance(action, DirectResponseAction):
            s(self, "direct_response", (action.status, action.body or b""))
            s(self, "response_code", action.status)
            s(self, "response_body", action.body or b"")
        else:
            raise TypeError(f"route {route.name!r}: unknown action {action!r}")

        route_parsers = (
            HeaderParser(route.request_headers_to_add, route.request_headers_to_remove),
            HeaderParser(route.response_headers_to_add, route.response_headers_to_remove),
        )
        # Most specific first: route, virtual host, route configuration (the last one wins).
        s(self, "_request_parsers", tuple(p for p in (route_parsers[0], vhost_parsers[0], config_parsers[0]) if p))
        s(self, "_response_parsers", tuple(p for p in (route_parsers[1], vhost_parsers[1], config_parsers[1]) if p))
        s(self, "changes_request", bool(self._request_parsers or self.host_rewrite is not None or self._prefix_rewrite))
        s(self, "changes_response", bool(self._response_parsers))

        if self._weighted_names:
            entries = []
            for name in self._weighted_names:
                e = self.__copy__()
                object.__setattr__(e, "cluster", name)
                entries.append(e)
            s(self, "_weighted_entries", tuple(entries))
            for e in entries:
                object.__setattr__(e, "_weighted_entries", tuple(entries))

    def __copy__(self) -> "RouteEntry":
        other = object.__new__(RouteEntry)
        for name in RouteEntry.__slots__:
            object.__setattr__(other, name, object.__getattribute__(self, name))
        return other

    def __repr__(self) -> str:
        what = (
            f"cluster={self.cluster!r}"
            if self.redirect is None and self.direct_response is None
            else f"response_code={self.response_code}"
        )
        return f"<RouteEntry {self.route_name!r} vhost={self.virtual_host.name!r} {what}>"

    # -- cluster -------------------------------------------------------------------------------

    @property
    def weighted_clusters(self) -> tuple[str, ...]:
        """The clusters of a ``weighted_clusters`` route, in order (``()`` otherwise)."""
        return self._weighted_names

    def _pick_index(self, random_value: int) -> int:
        selected = (random_value & _U64) % self._total_weight
        # cumulative[i] is the end of cluster i's interval [begin, end): zero weights are skipped.
        return bisect.bisect_right(self._cumulative, selected)

    def cluster_name(self, random_value: Optional[int] = None) -> Optional[str]:
        """The cluster to forward to, ``None`` for a redirect or direct response.

        For ``weighted_clusters``, with a ``random_value`` this picks as
        Envoy does: ``random_value % total_weight`` (as a uint64) falls in
        one cluster's interval, the clusters laid end to end in order with
        their weights as lengths.  Without one it is :attr:`cluster`, the
        pick :meth:`RouteTable.route` already made.
        """
        if random_value is None or not self._weighted_names:
            return self.cluster
        return self._weighted_names[self._pick_index(random_value)]

    def _for_random(self, random_value: int) -> "RouteEntry":
        return self._weighted_entries[self._pick_index(random_value)]

    # -- matching ------------------------------------------------------------------------------

    def matches(self, headers: HeaderMap) -> bool:
        """Whether this route matches the request (path and header matchers), ignoring the virtual host."""
        path = headers._get(":path")
        if path is None:
            return False
        path = _strip_query_and_fragment(path)
        kind = self._kind
        if kind == _PREFIX:
            ok = path.startswith(self._match)
        elif kind == _PATH:
            ok = path == self._match
        elif kind == _REGEX:
            ok = self._match(path) is not None
        elif kind == _PREFIX_CI:
            ok = _ascii_lower(path).startswith(self._match)
        else:
            ok = _ascii_lower(path) == self._match
        return ok and all(m(headers) for m in self._header_matchers)

    # -- rewrites ------------------------------------------------------------------------------

    def _rewrite(self, path: str, rewrite: str) -> str:
        kind = self._kind
        if kind == _REGEX:
            matched = len(_strip_query_and_fragment(path))
        else:
            matched = len(self._match)
        return rewrite + path[matched:]

    def rewrite_path(self, path: str) -> str:
        """``path`` after the route's ``prefix_rewrite`` (unchanged without one).

        The matched part (the route's prefix, its whole ``path``, or for a
        ``safe_regex`` route everything before the query) is replaced; the
        rest, query string included, is kept.  ``path`` must be one this
        route matched.
        """
        if not self._prefix_rewrite:
            return path
        return self._rewrite(path, self._prefix_rewrite)

    # -- redirects and direct responses --------------------------------------------------------

    def redirect_location(self, headers: HeaderMap) -> Optional[str]:
        """The ``Location`` of the response to this request, or ``None``.

        For a redirect route, the URL built as the module documentation
        says; for a direct response with status 201 or 3xx, the request's
        own URL (as Envoy does); otherwise, or when the request has no
        ``:path``, ``None``.  ``headers`` is not modified.
        """
        path = headers._get(":path")
        if path is None:
            return None
        redirect = self._redirect
        if redirect is None:
            code = self.response_code
            if self.direct_response is None or not (code == 201 or 300 <= code < 400):
                return None
            return _new_uri(headers, "", "", "", "", False, False, path)
        scheme, host, port, path_redirect, has_query, strip_query = redirect
        if self._redirect_prefix_rewrite:
            path = self._rewrite(path, self._redirect_prefix_rewrite)
        return _new_uri(headers, scheme, host, port, path_redirect, has_query, strip_query, path)

    def redirect_response(self, headers: HeaderMap) -> tuple[int, str]:
        """``(status, Location)`` of a redirect route's response to this request.

        Raises:
            ValueError: the route is not a redirect, or the request has no
                ``:path``.
        """
        if self._redirect is None:
            raise ValueError(f"route {self.route_name!r} is not a redirect")
        location = self.redirect_location(headers)
        if location is None:
            raise ValueError("the request has no :path")
        return self.response_code, location  # type: ignore[return-value]

    # -- header mutations ----------------------------------------------------------------------

    def finalize_request_headers(self, headers: HeaderMap, context: _Context = None) -> None:
        """Apply the request header mutations of the route, the virtual host and the route configuration (in place).

        ``context`` is a :class:`FormatterContext` (or a mapping of its
        field names).  The rewrites are :meth:`apply_rewrites`: Envoy
        applies them right after these mutations, so ``%REQ(:path)%`` and
        ``%REQ(:authority)%`` see the request as the client sent it.
        """
        if self._request_parsers:
            ctx = _as_context(context)
            for parser in self._request_parsers:
                parser.evaluate(headers, headers, None, ctx, self)

    def apply_rewrites(self, headers: HeaderMap, *, keep_original_host_or_path: bool = True) -> None:
        """Apply ``host_rewrite_literal`` and then ``prefix_rewrite`` to the request (in place).

        With ``keep_original_host_or_path`` (Envoy's default, its router's
        ``!suppress_envoy_headers``) the previous ``:authority`` and ``:path``
        are kept in ``x-envoy-original-host`` / ``x-envoy-original-path``
        when they are rewritten.  ``auto_host_rewrite`` is not applied here:
        the upstream host is not known yet.
        """
        if self.host_rewrite is not None:
            if keep_original_host_or_path:
                old = headers.get(":authority")
                if old is not None:
                    headers.set("x-envoy-original-host", old)
            headers.set(":authority", self.host_rewrite)
        if self._prefix_rewrite:
            path = headers.get(":path")
            if path is not None:
                if keep_original_host_or_path:
                    headers.set("x-envoy-original-path", path)
                headers.set(":path", self._rewrite(path, self._prefix_rewrite))

    def finalize_response_headers(self, headers: HeaderMap, context: _Context = None) -> None:
        """Apply the response header mutations of the route, virtual host and route configuration (in place).

        Envoy does this for redirects and direct responses too.
        ``%REQ(...)%`` reads ``context.request_headers`` (Envoy reads the
        request as the router left it, after its mutations and rewrites).
        """
        if self._response_parsers:
            ctx = _as_context(context)
            req = None if ctx is None else ctx.request_headers
            for parser in self._response_parsers:
                parser.evaluate(headers, req, headers, ctx, self)


def _is_https(scheme: str) -> bool:
    return len(scheme) == 5 and scheme.lower() == "https"


def _is_http(scheme: str) -> bool:
    return len(scheme) == 4 and scheme.lower() == "http"


def _request_scheme(headers: HeaderMap) -> str:
    scheme = headers.get(":scheme")
    if scheme:
        return scheme
    xfp = headers.get("x-forwarded-proto")
    if xfp and (_is_http(xfp) or _is_https(xfp)):
        return xfp.lower()
    return "http"


def _process_request_host(headers: HeaderMap, new_scheme: str, new_port: str) -> str:
    """Envoy's ``Http::Utility`` host for a redirect: the request's, its port dropped when it must go."""
    host = headers.get(":authority")
    if host is None:
        host = headers.get("host") or ""
    if not host:
        return host
    if host[0] == "[":
        end = host.rfind("]:")
        if end >= 0:
            end += 1
    else:
        end = host.rfind(":")
    if end >= 0:
        port = host[end:]
        proto = headers.get("x-forwarded-proto")
        if proto is None:
            proto = _request_scheme(headers)
        remove = bool(new_port)
        if new_scheme != proto:
            remove = remove or (_is_https(proto) and port == ":443") or (_is_http(proto) and port == ":80")
        if remove:
            return host[:end]
    return host


def _new_uri(
    headers: HeaderMap,
    scheme: str,
    host: str,
    port: str,
    path_redirect: str,
    path_redirect_has_query: bool,
    strip_query: bool,
    path: str,
) -> str:
    """Envoy's ``Http::Utility::newUri``; ``path`` is the request path after any redirect prefix rewrite."""
    if not scheme:
        scheme = _request_scheme(headers)
    if not host:
        host = _process_request_host(headers, scheme, port)
    if path_redirect:
        if path_redirect_has_query:
            path = path_redirect
        else:
            q = path.find("?")
            path = path_redirect + path[q:] if q >= 0 else path_redirect
    if not path.startswith("/"):
        path = "/" + path
    if strip_query and not path_redirect_has_query:
        q = path.find("?")
        if q >= 0:
            path = path[:q]
    return f"{scheme}://{host}{port}{path}"


# --------------------------------------------------------------------------------------------
# The table.


class _VirtualHostImpl:
    __slots__ = ("config", "entries")

    def __init__(self, config: VirtualHost, entries: tuple[RouteEntry, ...]) -> None:
        self.config = config
        self.entries = entries


class RouteTable:
    """A compiled, immutable route configuration (Envoy's ``ConfigImpl`` and ``RouteMatcher``).

    Args:
        route_config: a validated
            :class:`~pyevent_envoy.config.bootstrap.RouteConfiguration`.

    Raises:
        ValueError: the configuration is one
            :func:`~pyevent_envoy.config.load_bootstrap` would have refused
            (two ``*`` domains, a bad header value format ...).

    Build it once (main thread); then :meth:`route` is safe to call from any
    number of threads at once.  See the module documentation for the rules.
    """

    __slots__ = ("_config", "_vhosts", "_exact", "_suffixes", "_prefixes", "_default", "_only_default", "uses_random")

    def __init__(self, route_config: RouteConfiguration) -> None:
        self._config = route_config
        config_parsers = (
            HeaderParser(route_config.request_headers_to_add, route_config.request_headers_to_remove),
            HeaderParser(route_config.response_headers_to_add, route_config.response_headers_to_remove),
        )
        exact: dict[str, _VirtualHostImpl] = {}
        suffixes: dict[int, dict[str, _VirtualHostImpl]] = {}
        prefixes: dict[int, dict[str, _VirtualHostImpl]] = {}
        default: Optional[_VirtualHostImpl] = None
        vhosts = []
        for vh in route_config.virtual_hosts:
            vhost_parsers = (
                HeaderParser(vh.request_headers_to_add, vh.request_headers_to_remove),
                HeaderParser(vh.response_headers_to_add, vh.response_headers_to_remove),
            )
            impl = _VirtualHostImpl(vh, tuple(RouteEntry(r, vh, vhost_parsers, config_parsers) for r in vh.routes))
            vhosts.append(impl)
            for domain in vh.domains:
                d = _ascii_lower(_wire(domain))
                if d == "*":
                    if default is not None:
                        raise ValueError(f"only one virtual host may have the domain '*' ({vh.name!r})")
                    default = impl
                    continue
                if d.startswith("*"):
                    table, key = suffixes.setdefault(len(d) - 1, {}), d[1:]
                elif d.endswith("*"):
                    table, key = prefixes.setdefault(len(d) - 1, {}), d[:-1]
                else:
                    table, key = exact, d
                if key in table:
                    raise ValueError(f"duplicate domain {domain!r} in virtual host {vh.name!r}")
                table[key] = impl
        self._vhosts = tuple(vhosts)
        self._exact = exact
        self._suffixes = tuple(sorted(suffixes.items(), reverse=True))
        self._prefixes = tuple(sorted(prefixes.items(), reverse=True))
        self._default = default
        self._only_default = not exact and not suffixes and not prefixes
        #: Whether :meth:`route` reads its ``random_value`` (some route has
        #: ``weighted_clusters``): callers draw one only then.
        self.uses_random = any(entry._weighted_entries for vh in vhosts for entry in vh.entries)

    @property
    def route_config(self) -> RouteConfiguration:
        """The configuration the table was built from."""
        return self._config

    def __repr__(self) -> str:
        return f"<RouteTable {self._config.name!r} virtual_hosts={len(self._vhosts)}>"

    def _find_vhost(self, headers: HeaderMap) -> Optional[_VirtualHostImpl]:
        if self._only_default:
            return self._default
        host = headers._get(":authority")
        if host is None:
            host = headers.get("host")
            if host is None:
                return None
        host = _ascii_lower(host)
        vh = self._exact.get(host)
        if vh is not None:
            return vh
        n = len(host)
        for length, table in self._suffixes:
            if length < n:  # a wildcard matches at least one character
                vh = table.get(host[n - length :])
                if vh is not None:
                    return vh
        for length, table in self._prefixes:
            if length < n:
                vh = table.get(host[:length])
                if vh is not None:
                    return vh
        return self._default

    def find_virtual_host(self, headers: HeaderMap) -> Optional[VirtualHost]:
        """The virtual host ``:authority`` selects, or ``None``."""
        vh = self._find_vhost(headers)
        return None if vh is None else vh.config

    def route(self, headers: HeaderMap, random_value: int = 0) -> Optional[RouteEntry]:
        """The entry of the first route of the selected virtual host that matches, or ``None``.

        ``None`` means no route (Envoy answers 404 with ``NR``): no virtual
        host for ``:authority``, no matching route, or no ``:path``.
        ``random_value`` (a uint64, as Envoy's stream random value) picks
        the cluster of a ``weighted_clusters`` route.  ``headers`` is only
        read.
        """
        vh = self._find_vhost(headers)
        if vh is None:
            return None
        path = headers.get(":path")
        if path is None:
            return None
        if "?" in path or "#" in path:
            path = _strip_query_and_fragment(path)
        lower = None  # the lowercased path, made once if a case-insensitive route needs it
        for entry in vh.entries:
            kind = entry._kind
            if kind == _PREFIX:
                if not path.startswith(entry._match):
                    continue
            elif kind == _PATH:
                if path != entry._match:
                    continue
            elif kind == _REGEX:
                if entry._match(path) is None:
                    continue
            else:
                if lower is None:
                    lower = _ascii_lower(path)
                if not (lower.startswith(entry._match) if kind == _PREFIX_CI else lower == entry._match):
                    continue
            for matcher in entry._header_matchers:
                if not matcher(headers):
                    break
            else:
                if entry._weighted_entries:
                    return entry._for_random(random_value)
                return entry
        return None
