"""Asynchronous DNS for clusters (Envoy's ``Network::DnsResolver`` and ``ActiveDnsQuery``).

``socket.getaddrinfo`` blocks, and no loop may block: not a worker's, not
the main thread's.  So :class:`DnsResolverImpl` runs lookups in a small
``ThreadPoolExecutor`` and hands each result back with
``dispatcher.post(...)``: the caller's callback always runs on the
dispatcher's thread (the main thread, for clusters), in a later loop
iteration, never inline and never on a pool thread.

The lookup itself is a plain function, ``resolve_fn(hostname, family) ->
addresses``, that tests replace with a stub (see :data:`ResolveFn`).
"""

from __future__ import annotations

import concurrent.futures
import enum
import ipaddress
import logging
import socket
from typing import Callable, Sequence

from pyevent_envoy.errors import DispatcherClosedError
from pyevent_envoy.event.dispatcher import Dispatcher

__all__ = [
    "ActiveDnsQuery",
    "DnsLookupFamily",
    "DnsResolverImpl",
    "ResolutionStatus",
    "ResolveFn",
    "apply_lookup_family",
    "getaddrinfo_resolve",
]

_log = logging.getLogger("pyevent_envoy.upstream")

#: ``resolve_fn(hostname, family) -> addresses``: runs on a resolver thread and
#: may block.  ``family`` is ``socket.AF_INET``, ``AF_INET6`` or ``AF_UNSPEC``;
#: the result is IP address strings in preference order (duplicates and the
#: other family are tolerated: :func:`apply_lookup_family` filters them).
#: Raise ``OSError`` (``socket.gaierror``) when the name does not resolve.
ResolveFn = Callable[[str, int], Sequence[str]]

#: ``callback(status, addresses)``, on the dispatcher's thread.
ResolveCb = Callable[["ResolutionStatus", tuple[str, ...]], None]

#: Envoy's default number of resolver threads is the c-ares channel's one;
#: two threads let one slow name not hold up every other cluster.
DEFAULT_RESOLVER_THREADS = 2


class DnsLookupFamily(enum.Enum):
    """``Cluster.DnsLookupFamily``.

    - ``AUTO``: IPv6 addresses when there are any, else IPv4 (Envoy's default).
    - ``V4_ONLY`` / ``V6_ONLY``: one family only.
    - ``V4_PREFERRED``: IPv4 addresses when there are any, else IPv6.
    - ``ALL``: both families, in the order the resolver gave them.
    """

    AUTO = "AUTO"
    V4_ONLY = "V4_ONLY"
    V6_ONLY = "V6_ONLY"
    V4_PREFERRED = "V4_PREFERRED"
    ALL = "ALL"


class ResolutionStatus(enum.Enum):
    """Envoy's ``DnsResolver::ResolutionStatus``."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


_QUERY_FAMILY = {
    DnsLookupFamily.V4_ONLY: socket.AF_INET,
    DnsLookupFamily.V6_ONLY: socket.AF_INET6,
}


def getaddrinfo_resolve(hostname: str, family: int) -> list[str]:
    """The default :data:`ResolveFn`: the system resolver (``getaddrinfo``)."""
    infos = socket.getaddrinfo(hostname, None, family, socket.SOCK_STREAM)
    return [sockaddr[0] for _family, _type, _proto, _canonname, sockaddr in infos]


def apply_lookup_family(addresses: Sequence[str], lookup_family: DnsLookupFamily) -> tuple[str, ...]:
    """Normalize, de-duplicate (keeping order) and filter addresses by ``lookup_family``.

    Raises:
        ValueError: an entry is not an IP address.
    """
    v4: list[str] = []
    v6: list[str] = []
    seen: set[str] = set()
    ordered: list[str] = []
    for raw in addresses:
        ip = str(ipaddress.ip_address(raw.split("%", 1)[0]))  # drop an IPv6 zone index
        if ip in seen:
            continue
        seen.add(ip)
        ordered.append(ip)
        (v6 if ":" in ip else v4).append(ip)
    if lookup_family is DnsLookupFamily.AUTO:
        return tuple(v6 or v4)
    if lookup_family is DnsLookupFamily.V4_PREFERRED:
        return tuple(v4 or v6)
    if lookup_family is DnsLookupFamily.V4_ONLY:
        return tuple(v4)
    if lookup_family is DnsLookupFamily.V6_ONLY:
        return tuple(v6)
    return tuple(ordered)


class ActiveDnsQuery:
    """A lookup in flight; :meth:`cancel` it and its callback never runs.

    Created by :meth:`DnsResolverImpl.resolve` only.  Main-thread (dispatcher
    thread) object: cancel it there.
    """

    __slots__ = ("_resolver", "_callback", "hostname", "lookup_family")

    def __init__(
        self, resolver: DnsResolverImpl, hostname: str, lookup_family: DnsLookupFamily, callback: ResolveCb
    ) -> None:
        self._resolver = resolver
        self._callback: ResolveCb | None = callback
        self.hostname = hostname
        self.lookup_family = lookup_family

    def __repr__(self) -> str:
        state = "active" if self._callback is not None else "done"
        return f"<ActiveDnsQuery {self.hostname!r} {self.lookup_family.name} {state}>"

    @property
    def active(self) -> bool:
        return self._callback is not None

    def cancel(self) -> None:
        """Abandon the lookup: the callback will not run.  Idempotent."""
        self._callback = None
        self._resolver._pending.discard(self)

    def _deliver(self, status: ResolutionStatus, addresses: tuple[str, ...], error: BaseException | None) -> None:
        callback = self._callback
        if callback is None:
            return  # cancelled meanwhile
        self.cancel()
        if error is not None:
            _log.debug("DNS lookup of %r failed: %s", self.hostname, error)
        callback(status, addresses)


class DnsResolverImpl:
    """Resolves names on a thread pool; results come back through ``dispatcher.post``.

    Args:
        dispatcher: where callbacks run (the main dispatcher, for clusters).
            :meth:`resolve`, :meth:`ActiveDnsQuery.cancel` and
            :meth:`shutdown` are called on its thread.
        resolve_fn: the blocking lookup (default :func:`getaddrinfo_resolve`).
        max_threads: size of the pool; threads start on first use.
    """

    __slots__ = ("_dispatcher", "_resolve_fn", "_executor", "_pending", "_shut_down")

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        resolve_fn: ResolveFn | None = None,
        max_threads: int = DEFAULT_RESOLVER_THREADS,
    ) -> None:
        self._dispatcher = dispatcher
        self._resolve_fn = resolve_fn if resolve_fn is not None else getaddrinfo_resolve
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, int(max_threads)), thread_name_prefix="dns_resolver"
        )
        self._pending: set[ActiveDnsQuery] = set()
        self._shut_down = False

    def __repr__(self) -> str:
        return f"<DnsResolverImpl {len(self._pending)} pending{' shut down' if self._shut_down else ''}>"

    def resolve(self, hostname: str, lookup_family: DnsLookupFamily, callback: ResolveCb) -> ActiveDnsQuery:
        """Start resolving ``hostname``; ``callback(status, addresses)`` runs later on the dispatcher.

        ``addresses`` is non-empty on ``SUCCESS`` (normalized IP strings,
        filtered by ``lookup_family``) and empty on ``FAILURE``.  A name that
        resolves to nothing of the requested family is a failure.

        Raises:
            RuntimeError: after :meth:`shutdown`.
        """
        assert self._dispatcher.is_thread_safe(), "DnsResolverImpl.resolve() off the dispatcher's thread"
        if self._shut_down:
            raise RuntimeError("DNS resolver is shut down")
        query = ActiveDnsQuery(self, hostname, lookup_family, callback)
        self._pending.add(query)
        future = self._executor.submit(_lookup, self._resolve_fn, hostname, lookup_family)
        future.add_done_callback(lambda f: self._post_result(query, f))
        return query

    def _post_result(self, query: ActiveDnsQuery, future: concurrent.futures.Future) -> None:
        # On a pool thread (or inline if the future was already done).
        if future.cancelled():
            return
        status, addresses, error = future.result()
        try:
            self._dispatcher.post(lambda: query._deliver(status, addresses, error))
        except DispatcherClosedError:
            pass  # the owner is gone; nobody is waiting for the answer

    @property
    def pending(self) -> int:
        """Lookups started and neither delivered nor cancelled."""
        return len(self._pending)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel every pending query and stop the pool.  Idempotent.

        Args:
            wait: join the pool threads.  A lookup already running cannot be
                interrupted, so this waits for it (at most the system
                resolver's timeout).
        """
        self._shut_down = True
        for query in list(self._pending):
            query.cancel()
        self._executor.shutdown(wait=wait, cancel_futures=True)


def _lookup(
    resolve_fn: ResolveFn, hostname: str, lookup_family: DnsLookupFamily
) -> tuple[ResolutionStatus, tuple[str, ...], BaseException | None]:
    # On a pool thread: never raises, so every query gets an answer.
    try:
        raw = resolve_fn(hostname, _QUERY_FAMILY.get(lookup_family, socket.AF_UNSPEC))
        addresses = apply_lookup_family(list(raw), lookup_family)
    except Exception as exc:  # gaierror, or a resolver stub's error, or a malformed address
        return ResolutionStatus.FAILURE, (), exc
    if not addresses:
        return ResolutionStatus.FAILURE, (), LookupError(f"no {lookup_family.name} address for {hostname!r}")
    return ResolutionStatus.SUCCESS, addresses, None
