"""Clusters (Envoy's ``ClusterImplBase``, ``StaticClusterImpl``, ``StrictDnsClusterImpl``, ``LogicalDnsCluster``).

A cluster lives on the main thread.  It owns its membership: it resolves its
endpoints, builds a new immutable :class:`HostSet` whenever the membership
changes, and tells its member-update callbacks, one of which (the cluster
manager's) pushes the new snapshot to every worker.  Workers never touch a
cluster object; they see :class:`ClusterInfo` and :class:`HostSet` snapshots.

Initialization (Envoy's "pre-init"): :meth:`Cluster.initialize` starts the
first resolution; ``on_done()`` runs on the main thread once the cluster has
its first host set.  STATIC is ready at once (``on_done`` runs inline);
STRICT_DNS once every endpoint's first lookup has completed, successful or
not (Envoy completes after the first endpoint's lookup; waiting for all of
them means no endpoint is missing when traffic starts); LOGICAL_DNS after
its first lookup.

DNS failures keep the hosts the cluster had, count ``update_failure`` and
retry at the next refresh.

Health checking (:meth:`ClusterImplBase.set_health_checker`, before
``initialize``): hosts join with ``FAILED_ACTIVE_HC``, the cluster finishes
initializing only once every host has had its first check, and each
health change rebuilds :attr:`Cluster.host_set` (same hosts, new healthy
hosts) and tells the member-update callbacks with nothing added or
removed, so the cluster manager publishes it as it publishes a DNS change.

Stats: ``cluster.stats`` is a plain ``dict`` of Envoy-named counters and
gauges, written only on the main thread (reading it elsewhere gives a
possibly stale but whole value)::

    cluster.<name>.update_attempt      lookups started
    cluster.<name>.update_success      lookups that returned addresses
    cluster.<name>.update_failure      lookups that failed (hosts kept)
    cluster.<name>.update_no_rebuild   successful lookups that changed nothing
    cluster.<name>.membership_change   membership updates
    cluster.<name>.membership_total    hosts now (gauge)
    cluster.<name>.membership_healthy  healthy hosts now (gauge; degraded ones not included)
    cluster.<name>.membership_degraded degraded hosts now (gauge)
    cluster.<name>.membership_excluded hosts excluded from load balancing now (gauge)
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import logging
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.network.address import Address, parse_ip_address
from pyevent_envoy.network.ssl_socket import ssl_context_for
from pyevent_envoy.upstream.dns import DnsLookupFamily, DnsResolverImpl, ResolutionStatus
from pyevent_envoy.upstream.health_checker import HealthState, HealthTransition
from pyevent_envoy.upstream.host import HealthFlag, HostImpl, HostSet, LogicalHost
from pyevent_envoy.upstream.load_balancer import DEFAULT_CHOICE_COUNT, LbPolicy
from pyevent_envoy.upstream.resource_manager import ResourceManagerImpl

__all__ = [
    "CircuitBreakerThresholds",
    "Cluster",
    "ClusterImplBase",
    "ClusterInfo",
    "DiscoveryType",
    "Endpoint",
    "LogicalDnsCluster",
    "MemberUpdateCb",
    "StaticCluster",
    "StrictDnsCluster",
    "from_config",
]

_log = logging.getLogger("pyevent_envoy.upstream")

#: Envoy's defaults.
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_DNS_REFRESH_RATE = 5.0
DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024

#: ``cb(cluster, hosts_added, hosts_removed)`` on the main thread, after
#: ``cluster.host_set`` changed.
MemberUpdateCb = Callable[["Cluster", tuple[HostImpl, ...], tuple[HostImpl, ...]], None]


class DiscoveryType(enum.Enum):
    """``Cluster.DiscoveryType``: the types implemented here."""

    STATIC = "STATIC"
    STRICT_DNS = "STRICT_DNS"
    LOGICAL_DNS = "LOGICAL_DNS"


@dataclasses.dataclass(frozen=True, slots=True)
class CircuitBreakerThresholds:
    """``CircuitBreakers.Thresholds`` of one priority, with Envoy's defaults.

    Counted over every worker by the cluster's
    :class:`~pyevent_envoy.upstream.resource_manager.ResourceManagerImpl`
    (``ClusterInfo.resource_manager``), enforced by the connection pools
    and the router.  ``track_remaining`` adds Envoy's ``remaining_*`` gauges.
    """

    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3
    track_remaining: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.track_remaining, bool):
            raise ValueError(f"circuit breaker track_remaining must be a bool, got {self.track_remaining!r}")
        for field in dataclasses.fields(self):
            if field.name == "track_remaining":
                continue
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"circuit breaker {field.name} must be an int >= 0, got {value!r}")


def _coerce_enum(enum_cls: type[enum.Enum], value: Any, what: str) -> Any:
    """An ``enum_cls`` member from a member, its name, or another enum's member of the same name."""
    if isinstance(value, enum_cls):
        return value
    name = value.name if isinstance(value, enum.Enum) else str(value).upper()
    try:
        return enum_cls[name]
    except KeyError:
        supported = ", ".join(member.name for member in enum_cls)
        raise ValueError(f"{what} {name} is not supported (supported: {supported})") from None


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterInfo:
    """What every thread may know about a cluster; immutable and shared.

    Enum fields also accept member names (``"LEAST_REQUEST"``).

    Attributes:
        name: the cluster's name (routes refer to it).
        type: how membership is discovered.
        connect_timeout: seconds to establish an upstream connection.
        lb_policy: how a host is chosen.
        per_connection_buffer_limit_bytes: the upstream connections' buffer
            watermark (Envoy's default 1 MiB).
        circuit_breakers: the DEFAULT-priority thresholds.
        high_priority_circuit_breakers: the HIGH-priority thresholds.
        resource_manager: the DEFAULT priority's circuit-breaker counters,
            shared by every thread (made here, not compared).
        high_priority_resource_manager: the HIGH priority's (no route
            selects that priority here: only its gauges show).
        dns_refresh_rate: seconds between lookups (DNS types).
        dns_lookup_family: which address family to use (DNS types).
        least_request_choice_count: LEAST_REQUEST's sample size.
        health_checks: the cluster's ``HealthCheck`` configurations (at
            most one is used; see
            :mod:`pyevent_envoy.upstream.health_checker` for the fields read).
        outlier_detection: the ``OutlierDetection``, or None (see
            :mod:`pyevent_envoy.upstream.outlier_detection`).
        ssl_context: the ``ssl.SSLContext`` of the cluster's
            ``UpstreamTlsContext``, or None (plaintext upstream connections).
        tls_sni: the server name TLS connections send (empty: none).
    """

    name: str
    type: DiscoveryType = DiscoveryType.STATIC
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    lb_policy: LbPolicy = LbPolicy.ROUND_ROBIN
    per_connection_buffer_limit_bytes: int = DEFAULT_BUFFER_LIMIT_BYTES
    circuit_breakers: CircuitBreakerThresholds = CircuitBreakerThresholds()
    high_priority_circuit_breakers: CircuitBreakerThresholds = CircuitBreakerThresholds()
    dns_refresh_rate: float = DEFAULT_DNS_REFRESH_RATE
    dns_lookup_family: DnsLookupFamily = DnsLookupFamily.AUTO
    least_request_choice_count: int = DEFAULT_CHOICE_COUNT
    health_checks: tuple[Any, ...] = ()
    outlier_detection: Any = None
    ssl_context: Any = dataclasses.field(default=None, compare=False)
    tls_sni: str = ""
    resource_manager: ResourceManagerImpl = dataclasses.field(init=False, compare=False, repr=False)
    high_priority_resource_manager: ResourceManagerImpl = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "health_checks", tuple(self.health_checks))
        if len(self.health_checks) > 1:
            raise ValueError("at most one health check per cluster is supported")
        if not self.name:
            raise ValueError("a cluster needs a name")
        object.__setattr__(self, "type", _coerce_enum(DiscoveryType, self.type, "cluster type"))
        object.__setattr__(self, "lb_policy", _coerce_enum(LbPolicy, self.lb_policy, "lb_policy"))
        object.__setattr__(
            self, "dns_lookup_family", _coerce_enum(DnsLookupFamily, self.dns_lookup_family, "dns_lookup_family")
        )
        if not float(self.connect_timeout) > 0.0:
            raise ValueError(f"connect_timeout must be > 0 seconds, got {self.connect_timeout!r}")
        if not float(self.dns_refresh_rate) > 0.0:
            raise ValueError(f"dns_refresh_rate must be > 0 seconds, got {self.dns_refresh_rate!r}")
        if int(self.per_connection_buffer_limit_bytes) < 0:
            raise ValueError("per_connection_buffer_limit_bytes must be >= 0")
        if int(self.least_request_choice_count) < 2:
            raise ValueError("least_request_choice_count must be >= 2")
        for thresholds in (self.circuit_breakers, self.high_priority_circuit_breakers):
            if not isinstance(thresholds, CircuitBreakerThresholds):
                raise TypeError("circuit breakers must be CircuitBreakerThresholds")
        object.__setattr__(self, "resource_manager", ResourceManagerImpl(self.circuit_breakers))
        object.__setattr__(self, "high_priority_resource_manager", ResourceManagerImpl(self.high_priority_circuit_breakers))


class Endpoint(NamedTuple):
    """One configured endpoint: an IP (STATIC) or a DNS name, a port, a weight."""

    address: str
    port: int
    weight: int = 1


def _endpoints(endpoints: Iterable[Any]) -> tuple[Endpoint, ...]:
    result = []
    for endpoint in endpoints:
        endpoint = endpoint if isinstance(endpoint, Endpoint) else Endpoint(*endpoint)
        if not endpoint.address:
            raise ValueError("an endpoint needs an address")
        if not 0 <= int(endpoint.port) <= 65535:
            raise ValueError(f"endpoint {endpoint.address!r}: port {endpoint.port} is outside 0-65535")
        if int(endpoint.weight) < 1:
            raise ValueError(f"endpoint {endpoint.address!r}: weight must be >= 1, got {endpoint.weight}")
        result.append(Endpoint(str(endpoint.address), int(endpoint.port), int(endpoint.weight)))
    return tuple(result)


def _new_stats(name: str) -> dict[str, int]:
    prefix = f"cluster.{name}."
    return {
        prefix + stat: 0
        for stat in (
            "update_attempt",
            "update_success",
            "update_failure",
            "update_no_rebuild",
            "membership_change",
            "membership_total",
            "membership_healthy",
            "membership_degraded",
            "membership_excluded",
        )
    }


class Cluster(abc.ABC):
    """A cluster on the main thread (Envoy's ``Upstream::Cluster``).

    Every method is main-thread only.
    """

    __slots__ = ()

    @property
    @abc.abstractmethod
    def info(self) -> ClusterInfo:
        """The immutable configuration."""

    @property
    @abc.abstractmethod
    def host_set(self) -> HostSet:
        """The current membership snapshot (empty before initialization)."""

    @property
    @abc.abstractmethod
    def stats(self) -> dict[str, int]:
        """Envoy-named counters and gauges (see the module docstring)."""

    @property
    @abc.abstractmethod
    def initialized(self) -> bool:
        """True once the first host set is known."""

    @abc.abstractmethod
    def initialize(self, on_done: Callable[[], None]) -> None:
        """Start discovery; ``on_done()`` runs once the first host set is known.

        Inline when that is already so (always for STATIC); otherwise from a
        later main-loop iteration.  May be called more than once; each
        ``on_done`` runs once.
        """

    @abc.abstractmethod
    def add_member_update_cb(self, cb: MemberUpdateCb) -> None:
        """Call ``cb(cluster, hosts_added, hosts_removed)`` after every membership change."""

    @abc.abstractmethod
    def remove_member_update_cb(self, cb: MemberUpdateCb) -> None:
        """Stop calling ``cb``.  A callback not registered is ignored."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop timers and cancel lookups; the cluster stops changing.  Idempotent."""


class ClusterImplBase(Cluster):
    """Membership bookkeeping shared by the cluster types.

    Subclasses implement :meth:`_start_pre_init` (begin discovery) and call
    :meth:`_update_hosts` and :meth:`_on_pre_init_complete`.
    """

    __slots__ = (
        "_info",
        "_dispatcher",
        "_host_set",
        "_stats",
        "_prefix",
        "_initialized",
        "_init_started",
        "_init_cbs",
        "_member_cbs",
        "_shut_down",
        "_health_checker",
        "_hc_pending_hosts",
        "_outlier_detector",
        "__weakref__",
    )

    def __init__(self, info: ClusterInfo, dispatcher: Dispatcher) -> None:
        if not isinstance(info, ClusterInfo):
            raise TypeError(f"info must be a ClusterInfo, got {info!r}")
        self._info = info
        self._dispatcher = dispatcher
        self._host_set = HostSet()
        self._prefix = f"cluster.{info.name}."
        self._stats = _new_stats(info.name)
        self._initialized = False
        self._init_started = False
        self._init_cbs: list[Callable[[], None]] = []
        self._member_cbs: list[MemberUpdateCb] = []
        self._shut_down = False
        self._health_checker: Any = None
        self._outlier_detector: Any = None
        # Hosts whose first health check the initialization waits for (None: not waiting).
        self._hc_pending_hosts: set[HostImpl] | None = None

    def __repr__(self) -> str:
        state = "shut down" if self._shut_down else ("initialized" if self._initialized else "warming")
        return f"<{type(self).__name__} {self._info.name!r} {len(self._host_set)} hosts {state}>"

    # Cluster

    @property
    def info(self) -> ClusterInfo:
        return self._info

    @property
    def host_set(self) -> HostSet:
        return self._host_set

    @property
    def stats(self) -> dict[str, int]:
        return self._stats

    @property
    def initialized(self) -> bool:
        return self._initialized

    @property
    def dispatcher(self) -> Dispatcher:
        """The main dispatcher the cluster's timers and DNS callbacks run on."""
        return self._dispatcher

    def initialize(self, on_done: Callable[[], None]) -> None:
        self._assert_main()
        if self._shut_down:
            raise RuntimeError(f"cluster {self._info.name!r} is shut down")
        if self._initialized:
            on_done()
            return
        self._init_cbs.append(on_done)
        if not self._init_started:
            self._init_started = True
            self._start_pre_init()

    def add_member_update_cb(self, cb: MemberUpdateCb) -> None:
        self._member_cbs.append(cb)

    def remove_member_update_cb(self, cb: MemberUpdateCb) -> None:
        try:
            self._member_cbs.remove(cb)
        except ValueError:
            pass  # not registered: removing is idempotent

    def shutdown(self) -> None:
        self._shut_down = True
        self._init_cbs.clear()
        if self._health_checker is not None:
            self._health_checker.close()
        if self._outlier_detector is not None:
            self._outlier_detector.close()
        self._member_cbs.clear()

    @property
    def health_checker(self) -> Any:
        """The active health checker, or None."""
        return self._health_checker

    def set_health_checker(self, health_checker: Any) -> None:
        """Check this cluster's hosts with ``health_checker`` (a ``HealthCheckerImplBase``); starts it.

        Call before :meth:`initialize`, once.  Main thread.
        """
        self._assert_main()
        if self._health_checker is not None:
            raise RuntimeError(f"cluster {self._info.name!r} already has a health checker")
        if self._init_started:
            raise RuntimeError(f"cluster {self._info.name!r}: set the health checker before initialize()")
        self._health_checker = health_checker
        health_checker.add_host_check_complete_cb(self._on_health_check_complete)
        health_checker.start()

    @property
    def outlier_detector(self) -> Any:
        """The outlier detector, or None."""
        return self._outlier_detector

    def set_outlier_detector(self, detector: Any) -> None:
        """Eject hosts as ``detector`` (an ``OutlierDetectorImpl``) decides; starts it.  Main thread, once."""
        self._assert_main()
        if self._outlier_detector is not None:
            raise RuntimeError(f"cluster {self._info.name!r} already has an outlier detector")
        self._outlier_detector = detector
        detector.add_changed_state_cb(lambda _host: self._reload_healthy_hosts())
        detector.start()

    # for subclasses

    @abc.abstractmethod
    def _start_pre_init(self) -> None:
        """Begin discovery (once, from the first :meth:`initialize`)."""

    def _assert_main(self) -> None:
        assert self._dispatcher.is_thread_safe(), f"cluster {self._info.name!r} used off the main thread"

    def _inc(self, stat: str, amount: int = 1) -> None:
        self._stats[self._prefix + stat] += amount

    def _update_hosts(self, hosts: Sequence[HostImpl]) -> None:
        """Install a new membership and tell the member-update callbacks (when it differs)."""
        old = self._host_set.hosts
        hosts = tuple(hosts)
        if hosts == old:  # identity comparison: hosts hash and compare by identity
            return
        new_set = set(hosts)
        old_set = set(old)
        added = tuple(host for host in hosts if host not in old_set)
        removed = tuple(host for host in old if host not in new_set)
        if self._health_checker is not None:
            # Untested hosts take no traffic (unless in panic) until a check passes, as in Envoy.
            for host in added:
                host.health_flag_set(HealthFlag.FAILED_ACTIVE_HC)
        self._inc("membership_change")
        self._install_host_set(HostSet.from_hosts(hosts), added, removed)

    def _install_host_set(self, host_set: HostSet, added: tuple[HostImpl, ...], removed: tuple[HostImpl, ...]) -> None:
        self._host_set = host_set
        stats = self._stats
        prefix = self._prefix
        degraded = len(host_set.degraded_hosts)
        stats[prefix + "membership_total"] = len(host_set.hosts)
        stats[prefix + "membership_healthy"] = len(host_set.healthy_hosts) - degraded
        stats[prefix + "membership_degraded"] = degraded
        stats[prefix + "membership_excluded"] = len(host_set.excluded_hosts)
        for cb in list(self._member_cbs):
            cb(self, added, removed)
        pending = self._hc_pending_hosts
        if pending is not None and removed:
            # A host gone before its first check is not waited for.
            pending.difference_update(removed)
            if not pending:
                self._finish_initialization()

    def _on_health_check_complete(self, host: HostImpl, transition: HealthTransition, _state: HealthState) -> None:
        pending = self._hc_pending_hosts
        if transition is HealthTransition.CHANGED and host in self._host_set:
            self._reload_healthy_hosts()
        if pending is not None and host in pending:
            pending.discard(host)
            if not pending:
                self._finish_initialization()

    def _reload_healthy_hosts(self) -> None:
        """Same hosts, new health: a new snapshot for the workers (Envoy's ``reloadHealthyHosts``)."""
        if not self._shut_down:
            self._install_host_set(HostSet.from_hosts(self._host_set.hosts), (), ())

    def _on_pre_init_complete(self) -> None:
        """The first host set is known: wait for the first health checks, then run the ``initialize`` callbacks."""
        if self._initialized or self._shut_down or self._hc_pending_hosts is not None:
            return
        if self._health_checker is not None:
            self._hc_pending_hosts = {
                host for host in self._host_set.hosts if self._health_checker.session(host) is not None
            }
            if self._hc_pending_hosts:
                return
        self._finish_initialization()

    def _finish_initialization(self) -> None:
        if self._initialized or self._shut_down:
            return
        self._hc_pending_hosts = None
        if self._health_checker is not None:
            # Flags a first check set without a health change (a host that stayed
            # failed but is now excluded) count too, as Envoy's reloadHealthyHosts here.
            self._reload_healthy_hosts()
        self._initialized = True
        callbacks, self._init_cbs = self._init_cbs, []
        for cb in callbacks:
            cb()


class StaticCluster(ClusterImplBase):
    """STATIC: a fixed list of IP endpoints (Envoy's ``StaticClusterImpl``).

    Args:
        info: the cluster's configuration.
        endpoints: :class:`Endpoint` or ``(ip, port[, weight])`` tuples.
        dispatcher: the main dispatcher.

    Raises:
        ValueError: an endpoint address is not an IP literal.
    """

    __slots__ = ("_pending_hosts",)

    def __init__(self, info: ClusterInfo, endpoints: Iterable[Any], dispatcher: Dispatcher) -> None:
        super().__init__(info, dispatcher)
        hosts = []
        for endpoint in _endpoints(endpoints):
            try:
                address = parse_ip_address(endpoint.address, endpoint.port)
            except ValueError:
                raise ValueError(
                    f"cluster {info.name!r}: STATIC endpoint {endpoint.address!r} is not an IP address"
                ) from None
            hosts.append(HostImpl(address, weight=endpoint.weight, cluster_name=info.name))
        self._pending_hosts = tuple(hosts)

    def _start_pre_init(self) -> None:
        self._update_hosts(self._pending_hosts)
        self._on_pre_init_complete()


class _DnsClusterBase(ClusterImplBase):
    """What STRICT_DNS and LOGICAL_DNS share: a resolver and the lookup stats."""

    __slots__ = ("_resolver",)

    def __init__(self, info: ClusterInfo, dispatcher: Dispatcher, dns_resolver: DnsResolverImpl) -> None:
        super().__init__(info, dispatcher)
        self._resolver = dns_resolver


class _ResolveTarget:
    """One endpoint of a DNS cluster: its lookup, its refresh timer, its hosts.

    Owned by its cluster, on the main thread.
    """

    __slots__ = ("_cluster", "endpoint", "hosts", "_timer", "_query", "resolved_once", "_on_resolved_cb")

    def __init__(
        self,
        cluster: _DnsClusterBase,
        endpoint: Endpoint,
        on_resolved: Callable[[_ResolveTarget, ResolutionStatus, tuple[str, ...]], None],
    ) -> None:
        self._cluster = cluster
        self.endpoint = endpoint
        self.hosts: tuple[HostImpl, ...] = ()
        self._timer = cluster.dispatcher.create_timer(self.start_resolve)
        self._query = None
        self.resolved_once = False
        self._on_resolved_cb = on_resolved

    def start_resolve(self) -> None:
        cluster = self._cluster
        if cluster._shut_down:
            return
        cluster._inc("update_attempt")
        self._query = cluster._resolver.resolve(
            self.endpoint.address, cluster.info.dns_lookup_family, self._on_resolved
        )

    def _on_resolved(self, status: ResolutionStatus, addresses: tuple[str, ...]) -> None:
        self._query = None
        cluster = self._cluster
        if status is ResolutionStatus.SUCCESS:
            cluster._inc("update_success")
        else:
            cluster._inc("update_failure")
            _log.debug("cluster %r: DNS lookup of %r failed; keeping %d hosts",
                       cluster.info.name, self.endpoint.address, len(self.hosts))
        # Re-arm first: the callbacks below may shut the cluster down.
        self._timer.enable_timer(cluster.info.dns_refresh_rate)
        self._on_resolved_cb(self, status, addresses)

    def close(self) -> None:
        if self._query is not None:
            self._query.cancel()
            self._query = None
        self._timer.close()


class StrictDnsCluster(_DnsClusterBase):
    """STRICT_DNS: every address of every endpoint's name is a host (Envoy's ``StrictDnsClusterImpl``).

    Each endpoint is looked up every ``info.dns_refresh_rate`` seconds on its
    own timer.  Hosts whose address is still returned keep their identity
    (and so their connection pools); new addresses become new hosts.

    Args:
        info: the cluster's configuration.
        endpoints: :class:`Endpoint` or ``(name, port[, weight])`` tuples.
        dispatcher: the main dispatcher.
        dns_resolver: the resolver (owned by the caller).
    """

    __slots__ = ("_targets", "_targets_pending")

    def __init__(
        self,
        info: ClusterInfo,
        endpoints: Iterable[Any],
        dispatcher: Dispatcher,
        dns_resolver: DnsResolverImpl,
    ) -> None:
        super().__init__(info, dispatcher, dns_resolver)
        self._targets = [_ResolveTarget(self, endpoint, self._on_target_resolved) for endpoint in _endpoints(endpoints)]
        self._targets_pending = len(self._targets)

    def _start_pre_init(self) -> None:
        for target in self._targets:
            target.start_resolve()
        if not self._targets:  # nothing to resolve: initialized with no hosts, as Envoy
            self._on_pre_init_complete()

    def _on_target_resolved(self, target: _ResolveTarget, status: ResolutionStatus, addresses: tuple[str, ...]) -> None:
        if status is ResolutionStatus.SUCCESS:
            endpoint = target.endpoint
            existing = {host.address: host for host in target.hosts}
            hosts = []
            for ip in addresses:
                address = Address(ip, endpoint.port)
                host = existing.get(address)
                if host is None:
                    host = HostImpl(address, weight=endpoint.weight, cluster_name=self._info.name,
                                    hostname=endpoint.address)
                hosts.append(host)
            hosts_tuple = tuple(hosts)
            if hosts_tuple == target.hosts:
                self._inc("update_no_rebuild")
            else:
                target.hosts = hosts_tuple
                self._update_hosts(tuple(host for t in self._targets for host in t.hosts))
        if not target.resolved_once:
            target.resolved_once = True
            self._targets_pending -= 1
            if self._targets_pending == 0:
                self._on_pre_init_complete()

    def shutdown(self) -> None:
        if self._shut_down:
            return
        super().shutdown()
        for target in self._targets:
            target.close()


class LogicalDnsCluster(_DnsClusterBase):
    """LOGICAL_DNS: one host, at the first address of one name (Envoy's ``LogicalDnsCluster``).

    The host is a :class:`LogicalHost` created by the first successful
    lookup; later lookups only move its address, so membership does not
    change and its connection pools are never drained by DNS: existing
    connections stay where they are and new ones go to the new address.

    Args:
        info: the cluster's configuration.
        endpoints: exactly one :class:`Endpoint` or ``(name, port[, weight])``.
        dispatcher: the main dispatcher.
        dns_resolver: the resolver (owned by the caller).

    Raises:
        ValueError: not exactly one endpoint.
    """

    __slots__ = ("_target", "_host")

    def __init__(
        self,
        info: ClusterInfo,
        endpoints: Iterable[Any],
        dispatcher: Dispatcher,
        dns_resolver: DnsResolverImpl,
    ) -> None:
        super().__init__(info, dispatcher, dns_resolver)
        endpoints = _endpoints(endpoints)
        if len(endpoints) != 1:
            raise ValueError(
                f"cluster {info.name!r}: LOGICAL_DNS clusters must have exactly one endpoint, got {len(endpoints)}"
            )
        self._target = _ResolveTarget(self, endpoints[0], self._on_target_resolved)
        self._host: LogicalHost | None = None

    @property
    def logical_host(self) -> LogicalHost | None:
        """The host, once a lookup has succeeded."""
        return self._host

    def _start_pre_init(self) -> None:
        self._target.start_resolve()

    def _on_target_resolved(self, target: _ResolveTarget, status: ResolutionStatus, addresses: tuple[str, ...]) -> None:
        if status is ResolutionStatus.SUCCESS:
            address = Address(addresses[0], target.endpoint.port)
            if self._host is None:
                self._host = LogicalHost(address, weight=target.endpoint.weight, cluster_name=self._info.name,
                                         hostname=target.endpoint.address)
                target.hosts = (self._host,)
                self._update_hosts(target.hosts)
            elif self._host.address != address:
                self._host.set_address(address)
            else:
                self._inc("update_no_rebuild")
        target.resolved_once = True
        self._on_pre_init_complete()

    def shutdown(self) -> None:
        if self._shut_down:
            return
        super().shutdown()
        self._target.close()


def from_config(cluster_config: Any) -> tuple[ClusterInfo, tuple[Endpoint, ...]]:
    """``(info, endpoints)`` from a parsed ``cluster.v3.Cluster`` (``pyevent_envoy.config``).

    Reads the fields by name, so any object with Envoy's field names works:
    ``name``, ``type``, ``connect_timeout`` (seconds), ``lb_policy``,
    ``per_connection_buffer_limit_bytes``, ``circuit_breakers``
    (``thresholds``, each with a ``priority``), ``dns_refresh_rate``,
    ``dns_lookup_family``, ``health_checks``, ``outlier_detection``, ``transport_socket`` (a
    :class:`~pyevent_envoy.config.bootstrap.TlsContext` or None) and ``lb_endpoints`` (each with
    ``address.address``, ``address.port_value``, ``load_balancing_weight``).
    Enum fields are matched by member name.  Use it as
    ``cluster_manager.add_cluster(*from_config(cluster))``.

    Raises:
        ValueError: a cluster type, policy or lookup family not implemented here.
    """
    get = getattr
    breakers = get(cluster_config, "circuit_breakers", None)
    tls = get(cluster_config, "transport_socket", None)
    info = ClusterInfo(
        name=cluster_config.name,
        type=get(cluster_config, "type", DiscoveryType.STATIC),
        connect_timeout=float(get(cluster_config, "connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
        lb_policy=get(cluster_config, "lb_policy", LbPolicy.ROUND_ROBIN),
        per_connection_buffer_limit_bytes=int(
            get(cluster_config, "per_connection_buffer_limit_bytes", DEFAULT_BUFFER_LIMIT_BYTES)
        ),
        circuit_breakers=_thresholds(breakers, "DEFAULT"),
        high_priority_circuit_breakers=_thresholds(breakers, "HIGH"),
        dns_refresh_rate=float(get(cluster_config, "dns_refresh_rate", DEFAULT_DNS_REFRESH_RATE)),
        dns_lookup_family=get(cluster_config, "dns_lookup_family", DnsLookupFamily.AUTO),
        health_checks=tuple(get(cluster_config, "health_checks", ())),
        outlier_detection=get(cluster_config, "outlier_detection", None),
        ssl_context=ssl_context_for(tls) if tls is not None else None,
        tls_sni=tls.sni if tls is not None else "",
    )
    endpoints = tuple(
        Endpoint(e.address.address, int(e.address.port_value), int(get(e, "load_balancing_weight", 1) or 1))
        for e in get(cluster_config, "lb_endpoints", ())
    )
    return info, endpoints


def _thresholds(circuit_breakers: Any, priority: str) -> CircuitBreakerThresholds:
    """The thresholds of ``priority`` (``"DEFAULT"`` or ``"HIGH"``) in a parsed ``CircuitBreakers``."""
    if circuit_breakers is None:
        return CircuitBreakerThresholds()
    chosen = None
    for candidate in getattr(circuit_breakers, "thresholds", ()):
        candidate_priority = getattr(candidate, "priority", "DEFAULT")
        if getattr(candidate_priority, "name", candidate_priority) in (priority, 0 if priority == "DEFAULT" else 1):
            chosen = candidate
            break
    if chosen is None:
        return CircuitBreakerThresholds()
    defaults = CircuitBreakerThresholds()
    values = {f.name: getattr(chosen, f.name, getattr(defaults, f.name)) for f in dataclasses.fields(defaults)}
    return CircuitBreakerThresholds(
        **{name: (bool(value) if name == "track_remaining" else int(value)) for name, value in values.items()}
    )
