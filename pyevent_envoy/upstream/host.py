"""Upstream hosts and host sets (Envoy's ``HostImpl``, ``HostSetImpl``; ``source/common/upstream/upstream_impl.cc``).

Threading rules, which the rest of :mod:`pyevent_envoy.upstream` relies on:

- A :class:`HostImpl` is shared by every thread; its address and weight
  never change.  Hosts compare and hash by identity, so a worker can key its
  own maps (connection pools, counters) by host, and a host that survives a
  DNS refresh keeps its pools.  The exceptions are :class:`LogicalHost`,
  whose address the main thread replaces as a whole (see there), and the
  host's :attr:`HostImpl.health_flags`, which only the main thread writes
  (health checking, outlier detection), one int assignment at a time: any thread may read them
  (the admin shows them), and sees the old or the new flags.
- A :class:`HostSet` is an immutable snapshot built on the main thread and
  handed to workers through a thread-local slot.  Which hosts take traffic
  is decided when the snapshot is built, from the flags at that moment:
  load balancers read the snapshot, never the flags, so a health change
  reaches a worker only with the next snapshot (as in Envoy).
- Per-host counters (:class:`HostStats`) are **per worker**: each worker owns
  a :class:`HostStatsMap` and is the only thread that reads or writes it, so
  load balancers never take a lock.  Envoy keeps one atomic counter per host
  shared by all workers; here a worker's least-request balancer sees only the
  requests that worker has outstanding.  Summing the workers' maps (for the
  admin endpoint) is done by posting to each worker, never by reading across
  threads.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Iterable

from pyevent_envoy.network.address import Address

__all__ = ["HealthFlag", "HostImpl", "HostSet", "HostStats", "HostStatsMap", "LogicalHost", "health_flags_to_string"]

#: Envoy's default ``healthy_panic_threshold``: below this share of healthy
#: hosts, load balancers use every host instead of only the healthy ones.
HEALTHY_PANIC_THRESHOLD = 0.5
#: Envoy's default overprovisioning factor (percent): a host set whose
#: healthy hosts are 1/1.4 of its hosts or more takes the whole load.
OVERPROVISIONING_FACTOR = 140


class HealthFlag(enum.IntFlag):
    """Why a host is not (fully) healthy: Envoy's ``Host::HealthFlag`` that pyevent-envoy sets.

    In the order Envoy's admin prints them.  A host with no flag is healthy.
    """

    #: Active health checking has not passed yet, or failed (hosts of a
    #: health-checked cluster start with it, until their first check passes).
    FAILED_ACTIVE_HC = 0x01
    #: Ejected by outlier detection.
    FAILED_OUTLIER_CHECK = 0x02
    #: The last passing check answered with ``x-envoy-degraded``.
    DEGRADED_ACTIVE_HC = 0x08
    #: A failing check answered with ``x-envoy-immediate-health-check-fail``.
    EXCLUDED_VIA_IMMEDIATE_HC_FAIL = 0x80
    #: The host is failed and its last check timed out.
    ACTIVE_HC_TIMEOUT = 0x100


_HEALTH_FLAG_NAMES = tuple((flag, "/" + flag.name.lower()) for flag in HealthFlag)
#: Flags that take a host out of the healthy hosts.
_UNHEALTHY_FLAGS = HealthFlag.FAILED_ACTIVE_HC | HealthFlag.FAILED_OUTLIER_CHECK
#: Flags that take a host out of the panic threshold's count (Envoy's excluded hosts).
_EXCLUDED_FLAGS = HealthFlag.EXCLUDED_VIA_IMMEDIATE_HC_FAIL


def health_flags_to_string(flags: HealthFlag | int) -> str:
    """The flags as Envoy's admin ``/clusters`` shows them (``HostUtility::healthFlagsToString``).

    ``"healthy"`` without flags, else each set flag as ``/name`` in Envoy's
    order, e.g. ``"/failed_active_hc/active_hc_timeout"``.
    """
    if not flags:
        return "healthy"
    return "".join(name for flag, name in _HEALTH_FLAG_NAMES if flags & flag)


class HostImpl:
    """One upstream endpoint: an address with a load-balancing weight.

    Args:
        address: where to connect.
        weight: Envoy's ``load_balancing_weight``, at least 1.
        cluster_name: the cluster this host belongs to.
        hostname: the DNS name the address came from (empty for STATIC
            hosts); used for ``auto_host_rewrite`` and logs.

    Equality and hashing are by identity.  :attr:`health_flags` is written by
    the main thread only (see the module docstring).
    """

    __slots__ = ("_address", "_weight", "_cluster_name", "_hostname", "_health_flags", "__weakref__")

    def __init__(self, address: Address, *, weight: int = 1, cluster_name: str = "", hostname: str = "") -> None:
        if not isinstance(address, Address):
            raise TypeError(f"address must be a pyevent_envoy.network.Address, got {address!r}")
        weight = int(weight)
        if weight < 1:
            raise ValueError(f"host weight must be >= 1, got {weight}")
        self._address = address
        self._weight = weight
        self._cluster_name = cluster_name
        self._hostname = hostname
        self._health_flags = HealthFlag(0)

    def __repr__(self) -> str:
        extra = f" hostname={self._hostname!r}" if self._hostname else ""
        weight = f" weight={self._weight}" if self._weight != 1 else ""
        return f"<{type(self).__name__} {self._address} cluster={self._cluster_name!r}{weight}{extra}>"

    @property
    def address(self) -> Address:
        return self._address

    @property
    def weight(self) -> int:
        return self._weight

    @property
    def cluster_name(self) -> str:
        return self._cluster_name

    @property
    def hostname(self) -> str:
        return self._hostname

    @property
    def health_flags(self) -> HealthFlag:
        """The host's health flags now (any thread; see the module docstring).

        ``health_flags_to_string(host.health_flags)`` is what Envoy's admin
        prints as the host's ``health_flags``.
        """
        return self._health_flags

    @property
    def healthy(self) -> bool:
        """True when no flag takes the host out of the healthy hosts (a degraded host is healthy here)."""
        return not self._health_flags & _UNHEALTHY_FLAGS

    def health_flag_set(self, flag: HealthFlag) -> None:
        """Main thread only: raise ``flag``.  Workers see it in the next :class:`HostSet`."""
        self._health_flags = self._health_flags | flag

    def health_flag_clear(self, flag: HealthFlag) -> None:
        """Main thread only: lower ``flag``."""
        self._health_flags = self._health_flags & ~flag


class LogicalHost(HostImpl):
    """The single host of a LOGICAL_DNS cluster (Envoy's ``LogicalHost``).

    Its identity never changes, so connection pools keyed by it survive DNS
    changes (existing connections keep their old address; new ones use the
    new address).  The main thread replaces :attr:`address` with
    :meth:`set_address`; that is one reference assignment of an immutable
    :class:`Address`, so a worker reading it sees either the old address or
    the new one, never a mix.
    """

    __slots__ = ()

    def set_address(self, address: Address) -> None:
        """Main thread only: point the host at a newly resolved address."""
        if not isinstance(address, Address):
            raise TypeError(f"address must be a pyevent_envoy.network.Address, got {address!r}")
        self._address = address


@dataclasses.dataclass(frozen=True, slots=True)
class HostSet:
    """An immutable snapshot of a cluster's hosts (Envoy's ``HostSet`` for priority 0).

    Attributes:
        hosts: every host, in configuration and resolution order.
        healthy_hosts: the hosts that may take traffic, degraded ones
            included; every host when not given.  Clusters build it from the
            hosts' health flags (:meth:`from_hosts`).
        degraded_hosts: the hosts of ``healthy_hosts`` flagged
            ``DEGRADED_ACTIVE_HC``.
        hosts_to_use: what load balancers pick from for the healthy share of
            the load: ``healthy_hosts`` less the degraded ones, or every host
            when fewer than half are healthy or degraded (Envoy's panic mode,
            default ``healthy_panic_threshold`` 50 %).
        degraded_hosts_to_use: what they pick from for the rest of the load
            (``degraded_hosts``; none in panic).
        healthy_load: the percentage of picks that go to ``hosts_to_use``
            (Envoy's healthy priority load for one priority: the healthy
            hosts' share of the hosts not excluded times the
            overprovisioning factor 1.4, capped at 100, the rest to the
            degraded hosts); 100 without degraded hosts and in panic.
        excluded_hosts: hosts left out of the panic threshold's count (flagged
            ``EXCLUDED_VIA_IMMEDIATE_HC_FAIL``).  As in Envoy, the threshold
            compares the healthy hosts with the hosts not excluded (no such
            host at all is panic), and in panic every host is used, excluded
            ones included.
        in_panic: True when ``hosts_to_use`` is every host for that reason.
    """

    hosts: tuple[HostImpl, ...] = ()
    healthy_hosts: tuple[HostImpl, ...] | None = None
    excluded_hosts: tuple[HostImpl, ...] = ()
    degraded_hosts: tuple[HostImpl, ...] = ()
    hosts_to_use: tuple[HostImpl, ...] = dataclasses.field(init=False, compare=False, repr=False)
    degraded_hosts_to_use: tuple[HostImpl, ...] = dataclasses.field(init=False, compare=False, repr=False)
    healthy_load: int = dataclasses.field(init=False, compare=False, repr=False)
    in_panic: bool = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        hosts = tuple(self.hosts)
        object.__setattr__(self, "hosts", hosts)
        healthy = hosts if self.healthy_hosts is None else tuple(self.healthy_hosts)
        object.__setattr__(self, "healthy_hosts", healthy)
        object.__setattr__(self, "excluded_hosts", tuple(self.excluded_hosts))
        degraded = tuple(self.degraded_hosts)
        object.__setattr__(self, "degraded_hosts", degraded)
        counted = len(hosts) - len(self.excluded_hosts)
        in_panic = bool(hosts) and (counted <= 0 or len(healthy) < HEALTHY_PANIC_THRESHOLD * counted)
        object.__setattr__(self, "in_panic", in_panic)
        healthy_load = 100
        if in_panic or not degraded:
            to_use, degraded_to_use = (hosts if in_panic else healthy), ()
        else:
            degraded_set = set(degraded)
            to_use = tuple(host for host in healthy if host not in degraded_set)
            degraded_to_use = degraded
            healthy_load = _healthy_load(len(to_use), len(degraded), counted)
        object.__setattr__(self, "hosts_to_use", to_use)
        object.__setattr__(self, "degraded_hosts_to_use", degraded_to_use)
        object.__setattr__(self, "healthy_load", healthy_load)

    @classmethod
    def from_hosts(cls, hosts: Iterable[HostImpl]) -> "HostSet":
        """The snapshot of ``hosts`` with their health now: healthy hosts are those with :attr:`HostImpl.healthy`."""
        hosts = tuple(hosts)
        healthy = tuple(host for host in hosts if host.healthy)
        return cls(
            hosts,
            healthy,
            tuple(host for host in hosts if host._health_flags & _EXCLUDED_FLAGS),
            tuple(host for host in healthy if host._health_flags & HealthFlag.DEGRADED_ACTIVE_HC),
        )

    def __len__(self) -> int:
        return len(self.hosts)

    def __iter__(self):
        return iter(self.hosts)

    def __contains__(self, host: object) -> bool:
        return host in self.hosts


def _healthy_load(healthy: int, degraded: int, counted: int) -> int:
    """Envoy's healthy priority load (percent) for one priority (``recalculatePerPriorityState``).

    Integer arithmetic as in Envoy: each availability is
    ``min(100, 140 * hosts // counted)``, their sum capped at 100 normalizes
    them, and the rounding left over goes to the healthy hosts when there
    are any.
    """
    health = min(100, OVERPROVISIONING_FACTOR * healthy // counted)
    degraded_health = min(100, OVERPROVISIONING_FACTOR * degraded // counted)
    total = min(100, health + degraded_health)
    if total == 0:
        return 100
    healthy_load = min(100, health * 100 // total)
    degraded_load = min(100 - healthy_load, degraded_health * 100 // total)
    left = 100 - healthy_load - degraded_load
    if health > 0:
        healthy_load += left
    return healthy_load


class HostStats:
    """One worker's counters for one host.  Plain ints, touched by one thread only.

    Named as Envoy's per-host stats (what ``/clusters`` shows per host).

    Attributes:
        rq_active: requests sent to the host and not yet complete (what
            LEAST_REQUEST compares).
        rq_pending_active: requests waiting for a connection to the host.
        rq_total: requests sent so far.
        rq_success: responses (or local replies) charged to the host with a
            status below 500.
        rq_error: those with a 5xx status, plus responses a retry replaced.
        rq_timeout: requests to the host that hit the route or per-try timeout.
        cx_active: open connections to the host.
        cx_total: connections opened so far.
        cx_connect_fail: connections that failed or timed out connecting.
    """

    __slots__ = (
        "rq_active",
        "rq_pending_active",
        "rq_total",
        "rq_success",
        "rq_error",
        "rq_timeout",
        "cx_active",
        "cx_total",
        "cx_connect_fail",
    )

    #: Fields that only grow (Envoy's per-host counters); the others are gauges.
    COUNTERS = ("cx_connect_fail", "cx_total", "rq_error", "rq_success", "rq_timeout", "rq_total")
    #: Fields that go up and down (Envoy's per-host gauges).
    GAUGES = ("cx_active", "rq_active", "rq_pending_active")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def __repr__(self) -> str:
        fields = " ".join(f"{name}={getattr(self, name)}" for name in self.__slots__)
        return f"<HostStats {fields}>"

    def add(self, other: "HostStats") -> None:
        """Add ``other``'s values to these (summing the workers' counters for the admin)."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def charge_response(self, code: int) -> None:
        """The router charged response ``code`` to this host (Envoy's ``chargeUpstreamCode``)."""
        if 500 <= code < 600:
            self.rq_error += 1
        else:
            self.rq_success += 1


class HostStatsMap:
    """One worker's :class:`HostStats`, keyed by host.  Owned by that worker's thread.

    The HTTP connection pool updates the counters through :meth:`for_host`;
    load balancers read them through :meth:`active_requests`, which creates
    nothing.
    """

    __slots__ = ("_by_host",)

    def __init__(self) -> None:
        self._by_host: dict[HostImpl, HostStats] = {}

    def __repr__(self) -> str:
        return f"<HostStatsMap {len(self._by_host)} hosts>"

    def __len__(self) -> int:
        return len(self._by_host)

    def __contains__(self, host: object) -> bool:
        return host in self._by_host

    def for_host(self, host: HostImpl) -> HostStats:
        """The host's counters on this worker, created at zero on first use."""
        stats = self._by_host.get(host)
        if stats is None:
            stats = self._by_host[host] = HostStats()
        return stats

    def active_requests(self, host: HostImpl) -> int:
        """``rq_active`` of ``host`` on this worker (0 when it has none)."""
        stats = self._by_host.get(host)
        return 0 if stats is None else stats.rq_active

    def items(self) -> list[tuple[HostImpl, HostStats]]:
        """Every host this worker has counters for, with its counters (owning thread only)."""
        return list(self._by_host.items())

    def retain(self, hosts: Iterable[HostImpl]) -> None:
        """Forget the counters of every host not in ``hosts`` (hosts gone from the cluster)."""
        keep = set(hosts)
        for host in [h for h in self._by_host if h not in keep]:
            del self._by_host[host]
