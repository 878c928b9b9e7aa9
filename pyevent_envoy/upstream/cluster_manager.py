"""The cluster manager (Envoy's ``ClusterManagerImpl`` and ``ThreadLocalClusterManagerImpl``).

Two halves, as in Envoy:

- :class:`ClusterManagerImpl` lives on the main thread.  It owns the
  clusters, the DNS resolver and one thread-local slot.  Whenever a
  cluster's membership changes it builds a :class:`ClusterSnapshot`
  (``ClusterInfo`` + ``HostSet``, both immutable) and pushes it with
  ``slot.run_on_all_threads``: the main thread swaps it in inline, each
  worker in a posted callback (read-copy-update: work in flight keeps the
  snapshot it started with).
- :class:`ThreadLocalClusterManager` is the slot's value on each thread.
  It holds one :class:`ThreadLocalCluster` per cluster: the current
  snapshot, the thread's own load balancer over it, the thread's per-host
  counters and the thread's connection pools.  Only its own thread touches
  it, so nothing there takes a lock.

A cluster becomes visible to workers (``get_thread_local_cluster``) when it
has initialized, as in Envoy; until then the name is unknown on workers.

Traffic stats (``cluster.<name>.upstream_*``) are per thread: each
:class:`ThreadLocalCluster` has its own
:class:`~pyevent_envoy.stats.ClusterTrafficStats`, registered with the
manager's :class:`~pyevent_envoy.stats.StatsStore` (when it has one), which
sums them for the admin.

Stats: ``cluster_manager.stats`` is a plain ``dict``, main thread only::

    cluster_manager.cluster_added      clusters added
    cluster_manager.cluster_removed    clusters removed
    cluster_manager.active_clusters    initialized clusters (gauge)
    cluster_manager.warming_clusters   clusters not yet initialized (gauge)
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from typing import Any, Callable, Iterable, Mapping

from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.stats import COUNTER, GAUGE, ClusterTrafficStats, SslStats, Stat, StatsStore
from pyevent_envoy.thread_local.thread_local import Instance, Slot
from pyevent_envoy.upstream.cluster import (
    Cluster,
    ClusterInfo,
    DiscoveryType,
    LogicalDnsCluster,
    StaticCluster,
    StrictDnsCluster,
)
from pyevent_envoy.upstream.dns import DEFAULT_RESOLVER_THREADS, DnsResolverImpl, ResolveFn
from pyevent_envoy.upstream.health_checker import create_health_checker
from pyevent_envoy.upstream.outlier_detection import OutlierDetectorImpl, OutlierMonitors, RequestCounts
from pyevent_envoy.upstream.host import HostImpl, HostSet, HostStats, HostStatsMap
from pyevent_envoy.upstream.load_balancer import LoadBalancer, create_load_balancer

__all__ = ["ClusterManagerImpl", "ClusterSnapshot", "ThreadLocalCluster", "ThreadLocalClusterManager"]

_log = logging.getLogger("pyevent_envoy.upstream")

#: How long :meth:`ClusterManagerImpl.initialize` waits for DNS clusters'
#: first lookups before going ahead with whatever hosts they have.
DEFAULT_INIT_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """What a thread knows of a cluster at one moment: immutable, shared by all threads.

    ``stats_store`` is where each thread registers its traffic stats for the
    cluster (None: kept but not shown anywhere).  ``outlier_detector`` is the
    cluster's detector on the main thread, which a thread may only
    ``report()`` to.
    """

    info: ClusterInfo
    host_set: HostSet
    stats_store: StatsStore | None = dataclasses.field(default=None, compare=False)
    outlier_detector: OutlierDetectorImpl | None = dataclasses.field(default=None, compare=False)


class ThreadLocalCluster:
    """One cluster as one thread sees it.  Owned by a :class:`ThreadLocalClusterManager`.

    The object stays the same across membership updates (only its snapshot
    and balancer are replaced), so the HTTP layer may keep a reference.

    Attributes:
        conn_pools: this thread's connection pools, keyed by host; filled by
            the HTTP layer.  When a host leaves the cluster its pool is
            removed from the map and, if it has a ``drain()`` method,
            drained (the pool then closes itself when idle; it must keep
            itself alive meanwhile, e.g. through its connections' events).
        host_stats: this thread's per-host counters (LEAST_REQUEST reads
            ``rq_active``; the connection pool keeps them up to date).
        stats: this thread's ``cluster.<name>.`` traffic stats (written by
            this thread's pools and router filters only), registered with the
            snapshot's stats store until the cluster goes away.
        outlier: this thread's consecutive-error counts
            (:class:`~pyevent_envoy.upstream.outlier_detection.OutlierMonitors`)
            when the cluster has outlier detection, else None; the router
            records each attempt's outcome there.
    """

    __slots__ = ("_snapshot", "_lb", "_panic", "_rng", "conn_pools", "host_stats", "stats", "outlier")

    def __init__(self, snapshot: ClusterSnapshot, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        self.conn_pools: dict[HostImpl, Any] = {}
        self.host_stats = HostStatsMap()
        self.stats = ClusterTrafficStats()
        if snapshot.info.ssl_context is not None:
            self.stats.ssl = SslStats()
        detector = snapshot.outlier_detector
        self.outlier = OutlierMonitors(detector) if detector is not None else None
        if snapshot.stats_store is not None:
            snapshot.stats_store.register(self._stats_prefix(snapshot), self.stats)
        self._snapshot = snapshot
        self._lb = self._new_load_balancer(snapshot)
        self._panic = snapshot.host_set.in_panic

    def __repr__(self) -> str:
        return f"<ThreadLocalCluster {self.info.name!r} {len(self._snapshot.host_set)} hosts>"

    @property
    def info(self) -> ClusterInfo:
        return self._snapshot.info

    @property
    def host_set(self) -> HostSet:
        return self._snapshot.host_set

    @property
    def snapshot(self) -> ClusterSnapshot:
        return self._snapshot

    @property
    def load_balancer(self) -> LoadBalancer:
        """This thread's balancer over the current snapshot."""
        return self._lb

    def choose_host(self, context: Any = None) -> HostImpl | None:
        """The host for the next request, or ``None`` when the cluster has no host.

        Counts ``lb_healthy_panic`` when the pick is among every host because
        too few are healthy (one attribute test per request otherwise).
        """
        if self._panic:
            self.stats.lb_healthy_panic += 1
        return self._lb.choose_host(context)

    def _new_load_balancer(self, snapshot: ClusterSnapshot) -> LoadBalancer:
        info = snapshot.info
        return create_load_balancer(
            info.lb_policy,
            snapshot.host_set,
            host_stats=self.host_stats,
            choice_count=info.least_request_choice_count,
            rng=self._rng,
        )

    def _update(self, snapshot: ClusterSnapshot) -> None:
        # Swap first, so that a failing drain() below leaves a consistent state.
        self._snapshot = snapshot
        self._lb = self._new_load_balancer(snapshot)
        self._panic = snapshot.host_set.in_panic
        hosts = snapshot.host_set.hosts
        self.host_stats.retain(hosts)
        if self.outlier is not None:
            self.outlier.retain(hosts)
        keep = set(hosts)
        self._drain_pools([host for host in self.conn_pools if host not in keep])

    def _drain_pools(self, hosts: Iterable[HostImpl]) -> None:
        for host in list(hosts):
            pool = self.conn_pools.pop(host, None)
            drain = getattr(pool, "drain", None)
            if drain is None:
                continue
            try:
                drain()
            except Exception:
                _log.exception("cluster %r: draining the pool of %s failed", self.info.name, host)

    @staticmethod
    def _stats_prefix(snapshot: ClusterSnapshot) -> str:
        return f"cluster.{snapshot.info.name}."

    def _shutdown(self) -> None:
        self._drain_pools(list(self.conn_pools))
        self.host_stats.retain(())
        # A removed cluster's stats go with it, as in Envoy.
        if self._snapshot.stats_store is not None:
            self._snapshot.stats_store.unregister(self._stats_prefix(self._snapshot), self.stats)


class ThreadLocalClusterManager:
    """One thread's view of every initialized cluster (the slot's value on that thread)."""

    __slots__ = ("_dispatcher", "_clusters")

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._clusters: dict[str, ThreadLocalCluster] = {}

    def __repr__(self) -> str:
        return f"<ThreadLocalClusterManager {self._dispatcher.name!r} {sorted(self._clusters)}>"

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher of the thread this value belongs to."""
        return self._dispatcher

    def get(self, name: str) -> ThreadLocalCluster | None:
        return self._clusters.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._clusters)

    def __len__(self) -> int:
        return len(self._clusters)

    def __contains__(self, name: object) -> bool:
        return name in self._clusters

    def _update_cluster(self, snapshot: ClusterSnapshot) -> None:
        tlc = self._clusters.get(snapshot.info.name)
        if tlc is None:
            self._clusters[snapshot.info.name] = ThreadLocalCluster(snapshot)
        else:
            tlc._update(snapshot)

    def _remove_cluster(self, name: str) -> None:
        tlc = self._clusters.pop(name, None)
        if tlc is not None:
            tlc._shutdown()

    def _shutdown(self) -> None:
        clusters, self._clusters = self._clusters, {}
        for tlc in clusters.values():
            tlc._shutdown()


# Slot callbacks are module-level and capture only immutable data: a slot
# callback must not capture the slot or the manager.


def _new_thread_local_cluster_manager(dispatcher: Dispatcher) -> ThreadLocalClusterManager:
    return ThreadLocalClusterManager(dispatcher)


def _push_update(snapshot: ClusterSnapshot) -> Callable[[Any], None]:
    def update(tlcm: ThreadLocalClusterManager | None) -> None:
        if tlcm is not None:
            tlcm._update_cluster(snapshot)

    return update


def _push_removal(name: str) -> Callable[[Any], None]:
    def remove(tlcm: ThreadLocalClusterManager | None) -> None:
        if tlcm is not None:
            tlcm._remove_cluster(name)

    return remove


def _shutdown_thread_local(tlcm: ThreadLocalClusterManager | None) -> None:
    if tlcm is not None:
        tlcm._shutdown()


class _ClusterEntry:
    __slots__ = ("cluster", "published", "member_cb")

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.published = False
        self.member_cb: Callable[..., None] | None = None


class ClusterManagerImpl:
    """Owns the clusters on the main thread and feeds their snapshots to every thread.

    Create it on the main thread, after the main thread and every worker are
    registered with ``tls_instance`` (a worker registered later gets no
    value in the slot).

    Args:
        main_dispatcher: the main thread's dispatcher: cluster timers and
            DNS results run there.
        tls_instance: the thread-local registry.
        resolve_fn: the blocking DNS lookup run on the resolver's threads
            (default ``getaddrinfo``); see :data:`~pyevent_envoy.upstream.dns.ResolveFn`.
        dns_threads: resolver pool size.
        stats_store: where every thread's ``cluster.<name>.`` traffic stats
            are registered, and where :meth:`main_thread_stats` is added as
            a source (None: stats are kept but not published).
    """

    __slots__ = (
        "_stats_store",
        "_dispatcher",
        "_tls",
        "_slot",
        "_resolver",
        "_clusters",
        "_init_cbs",
        "_init_timer",
        "_initializing",
        "_stats",
        "_shut_down",
    )

    def __init__(
        self,
        main_dispatcher: Dispatcher,
        tls_instance: Instance,
        *,
        resolve_fn: ResolveFn | None = None,
        dns_threads: int = DEFAULT_RESOLVER_THREADS,
        stats_store: StatsStore | None = None,
    ) -> None:
        self._stats_store = stats_store
        self._dispatcher = main_dispatcher
        self._tls = tls_instance
        self._slot: Slot = tls_instance.allocate_slot()
        self._slot.set(_new_thread_local_cluster_manager)
        self._resolver = DnsResolverImpl(main_dispatcher, resolve_fn=resolve_fn, max_threads=dns_threads)
        self._clusters: dict[str, _ClusterEntry] = {}
        self._init_cbs: list[Callable[[], None]] = []
        self._init_timer = None
        self._initializing = False
        self._stats = {
            "cluster_manager.cluster_added": 0,
            "cluster_manager.cluster_removed": 0,
            "cluster_manager.active_clusters": 0,
            "cluster_manager.warming_clusters": 0,
        }
        self._shut_down = False
        if stats_store is not None:
            stats_store.add_source(self.main_thread_stats)

    def __repr__(self) -> str:
        return f"<ClusterManagerImpl {sorted(self._clusters)}{' shut down' if self._shut_down else ''}>"

    # main thread

    @property
    def stats(self) -> dict[str, int]:
        return self._stats

    def main_thread_stats(self) -> list[Stat]:
        """The stats kept on the main thread, as the admin shows them (main thread).

        ``cluster_manager.*``, each cluster's ``membership_change``,
        ``membership_degraded``, ``membership_excluded``,
        ``membership_healthy`` and ``membership_total`` (the DNS ``update_*``
        counters are left out: their counting differs from Envoy's), the
        ``circuit_breakers.{default,high}.*`` gauges (counted over every
        thread), and the ``health_check.*`` and ``outlier_detection.*`` stats of the
        clusters that have them.
        """
        out = []
        for name, value in self._stats.items():
            kind = GAUGE if name.endswith("_clusters") else COUNTER
            out.append(Stat(name, kind, value, kind == GAUGE or value > 0))
        for name, entry in self._clusters.items():
            stats = entry.cluster.stats
            prefix = f"cluster.{name}."
            for stat, kind in (
                ("membership_change", COUNTER),
                ("membership_degraded", GAUGE),
                ("membership_excluded", GAUGE),
                ("membership_healthy", GAUGE),
                ("membership_total", GAUGE),
            ):
                value = stats.get(prefix + stat, 0)
                # Envoy sets the membership gauges when the cluster is created: always used.
                out.append(Stat(prefix + stat, kind, value, kind == GAUGE or value > 0))
            info = entry.cluster.info
            for priority, resources in (("default", info.resource_manager), ("high", info.high_priority_resource_manager)):
                for stat, value, used in resources.gauges(f"{prefix}circuit_breakers.{priority}."):
                    out.append(Stat(stat, GAUGE, value, used))
            for scope_name, owner in (("health_check", "health_checker"), ("outlier_detection", "outlier_detector")):
                component = getattr(entry.cluster, owner, None)
                if component is not None:
                    scope = component.stats
                    for stat, kind, value in scope.values():
                        used = stat in scope.gauges_used if kind == GAUGE else value > 0
                        out.append(Stat(f"{prefix}{scope_name}.{stat}", kind, value, used))
        return out

    @property
    def dns_resolver(self) -> DnsResolverImpl:
        return self._resolver

    @property
    def clusters(self) -> Mapping[str, Cluster]:
        """Every cluster by name (main thread)."""
        return {name: entry.cluster for name, entry in self._clusters.items()}

    def get_cluster(self, name: str) -> Cluster | None:
        """The main-thread cluster object called ``name``."""
        entry = self._clusters.get(name)
        return None if entry is None else entry.cluster

    @property
    def initialized(self) -> bool:
        """True when every cluster has initialized (or the init bound passed)."""
        return all(entry.published for entry in self._clusters.values())

    def add_cluster(self, info: ClusterInfo, endpoints: Iterable[Any] = ()) -> Cluster:
        """Create the cluster of ``info.type`` and start its discovery.

        A STATIC cluster is visible on every thread when this returns (the
        main thread at once, workers from their next loop iteration); a DNS
        cluster once its first lookups complete.

        Args:
            info: the configuration (``from_config(cluster)[0]``).
            endpoints: :class:`~pyevent_envoy.upstream.cluster.Endpoint` or
                ``(address, port[, weight])`` tuples.

        Raises:
            ValueError: a cluster of that name exists, or bad endpoints.
        """
        self._assert_main()
        if self._shut_down:
            raise RuntimeError("cluster manager is shut down")
        if info.name in self._clusters:
            raise ValueError(f"cluster {info.name!r} already exists")
        if info.type is DiscoveryType.STATIC:
            cluster: Cluster = StaticCluster(info, endpoints, self._dispatcher)
        elif info.type is DiscoveryType.STRICT_DNS:
            cluster = StrictDnsCluster(info, endpoints, self._dispatcher, self._resolver)
        else:
            cluster = LogicalDnsCluster(info, endpoints, self._dispatcher, self._resolver)
        entry = _ClusterEntry(cluster)
        self._clusters[info.name] = entry
        self._stats["cluster_manager.cluster_added"] += 1
        self._stats["cluster_manager.warming_clusters"] += 1

        def on_members(cluster: Cluster, _added: tuple, _removed: tuple) -> None:
            if entry.published:
                self._push(cluster)

        entry.member_cb = on_members
        cluster.add_member_update_cb(on_members)
        if info.health_checks:
            prefix = f"cluster.{info.name}."
            cluster.set_health_checker(  # type: ignore[attr-defined]
                create_health_checker(
                    cluster, info.health_checks[0], self._dispatcher, traffic_seen=lambda: self._traffic_seen(prefix)
                )
            )
        if info.outlier_detection is not None:
            cluster.set_outlier_detector(  # type: ignore[attr-defined]
                OutlierDetectorImpl(
                    cluster,
                    info.outlier_detection,
                    self._dispatcher,
                    collect_request_counts=lambda on_done: self.collect_outlier_request_counts(info.name, on_done),
                )
            )
        cluster.initialize(lambda: self._on_cluster_init(entry))
        return cluster

    def remove_cluster(self, name: str) -> bool:
        """Shut the cluster down and drop it from every thread (its pools drained).

        Returns:
            False when there is no such cluster.
        """
        self._assert_main()
        entry = self._clusters.pop(name, None)
        if entry is None:
            return False
        entry.cluster.shutdown()
        self._stats["cluster_manager.cluster_removed"] += 1
        if entry.published:
            self._stats["cluster_manager.active_clusters"] -= 1
            if self._can_push():
                self._slot.run_on_all_threads(_push_removal(name))
        else:
            self._stats["cluster_manager.warming_clusters"] -= 1
            self._maybe_finish_init()
        return True

    def initialize(self, on_done: Callable[[], None], *, timeout: float | None = DEFAULT_INIT_TIMEOUT) -> None:
        """Run ``on_done()`` on the main thread once every cluster has initialized.

        Inline when they all have.  Otherwise the main loop must run: DNS
        clusters complete as their first lookups come back.  After
        ``timeout`` seconds (``None``: no bound) the clusters still waiting
        are published with the hosts they have (none, usually) and keep
        resolving; ``on_done`` runs then.  Clusters added before completion
        are waited for too.
        """
        self._assert_main()
        if self._shut_down:
            raise RuntimeError("cluster manager is shut down")
        if self.initialized:
            on_done()
            return
        self._init_cbs.append(on_done)
        if timeout is not None and self._init_timer is None:
            self._init_timer = self._dispatcher.create_timer(self._on_init_timeout)
            self._init_timer.enable_timer(timeout)

    def collect_host_stats(self, on_done: Callable[[dict[HostImpl, HostStats]], None]) -> None:
        """Sum every thread's per-host counters; ``on_done(totals)`` runs on the main thread.

        Each thread copies its own :class:`HostStatsMap` in a callback posted
        to it (no thread reads another's counters); ``on_done`` runs once
        every worker has answered, so a worker that has not started its loop
        yet delays it until it does.  ``totals`` maps each host some thread
        has counters for to their sum.  Main thread only; after
        :meth:`shutdown`, ``on_done({})`` is posted.
        """
        self._assert_main()

        def copy_own(tlcm: ThreadLocalClusterManager) -> list[tuple[HostImpl, HostStats]]:
            mine = []
            for name in tlcm.names():
                for host, stats in tlcm.get(name).host_stats.items():
                    copy = HostStats()
                    copy.add(stats)
                    mine.append((host, copy))
            return mine

        def sum_copies(copies: list[tuple[HostImpl, HostStats]]) -> None:
            totals: dict[HostImpl, HostStats] = {}
            for host, stats in copies:
                totals.setdefault(host, HostStats()).add(stats)
            on_done(totals)

        self._gather_from_threads(copy_own, sum_copies)

    def collect_outlier_request_counts(self, cluster_name: str, on_done: Callable[[RequestCounts], None]) -> None:
        """Take and sum every thread's outlier request counts of one cluster; ``on_done(counts)`` on the main thread.

        Each thread hands over (and restarts) its own counts in a callback
        posted to it (:meth:`OutlierMonitors.take_request_counts`); the
        detector calls this at each interval.  Main thread only; after
        :meth:`shutdown`, ``on_done({})`` is posted.
        """
        self._assert_main()

        def take_own(tlcm: ThreadLocalClusterManager) -> list[tuple[HostImpl, int, int]]:
            cluster = tlcm.get(cluster_name)
            if cluster is None or cluster.outlier is None:
                return []
            return cluster.outlier.take_request_counts()

        def sum_counts(taken: list[tuple[HostImpl, int, int]]) -> None:
            counts: RequestCounts = {}
            for host, successes, total in taken:
                before = counts.get(host, (0, 0))
                counts[host] = (before[0] + successes, before[1] + total)
            on_done(counts)

        self._gather_from_threads(take_own, sum_counts)

    def _gather_from_threads(
        self, take: Callable[[ThreadLocalClusterManager], list], on_done: Callable[[list], None]
    ) -> None:
        """Run ``take(tlcm)`` on every thread (a post to each), then ``on_done(all items)`` on the main thread."""
        if not self._can_push():
            self._dispatcher.post(lambda: on_done([]))
            return
        lock = threading.Lock()
        items: list = []

        def take_own(tlcm: ThreadLocalClusterManager | None) -> None:
            if tlcm is None:
                return
            mine = take(tlcm)
            with lock:
                items.extend(mine)

        def finish() -> None:
            with lock:
                gathered = list(items)
            on_done(gathered)

        self._slot.run_on_all_threads(take_own, finish)

    # any registered thread

    def get_thread_local_cluster(self, name: str) -> ThreadLocalCluster | None:
        """This thread's view of cluster ``name``.

        Callable on the main thread and on any registered worker; ``None``
        when the cluster does not exist or has not initialized yet, when the
        calling thread is not registered, or after :meth:`shutdown`.
        """
        if self._shut_down:
            return None
        try:
            tlcm = self._slot.get()
        except LookupError:
            return None
        return tlcm.get(name)

    def thread_local_cluster_manager(self) -> ThreadLocalClusterManager | None:
        """This thread's :class:`ThreadLocalClusterManager`, or ``None``."""
        if self._shut_down:
            return None
        try:
            return self._slot.get()
        except LookupError:
            return None

    # main thread: teardown

    def shutdown(self) -> None:
        """Stop every cluster's timers and lookups, stop the resolver's threads, free the slot.

        Drains every thread's connection pools while the thread-local
        registry still reaches the workers (through posts: a worker stopped
        before running them drops them, with a ``ResourceWarning``); after
        the registry's ``shutdown_global_threading`` only the main thread's
        pools are drained (the workers' values go when their threads exit).
        Waits for lookups already running on the resolver's threads.
        Idempotent.
        """
        self._assert_main()
        if self._shut_down:
            return
        self._shut_down = True
        if self._init_timer is not None:
            self._init_timer.close()
            self._init_timer = None
        self._init_cbs.clear()
        for entry in self._clusters.values():
            entry.cluster.shutdown()
        self._resolver.shutdown(wait=True)
        # The slot object stays referenced: a posted slot callback runs only
        # while its slot is alive, and the workers' drains are still queued.
        slot = self._slot
        if not self._tls.is_shutdown():
            slot.run_on_all_threads(_shutdown_thread_local)
        else:
            try:
                _shutdown_thread_local(slot.get())
            except LookupError:
                pass  # this thread never received the slot's value: nothing to shut down
        slot.close()

    # internals

    def _assert_main(self) -> None:
        assert self._dispatcher.is_thread_safe(), "ClusterManagerImpl used off the main thread"

    def _traffic_seen(self, prefix: str) -> bool:
        """True once some thread opened an upstream connection of the cluster (main thread; reads workers' counters).

        Without a stats store the workers' counters are not reachable: the
        cluster then counts as never having had traffic.
        """
        store = self._stats_store
        if store is None:
            return False
        return any(getattr(scope, "upstream_cx_total", 0) for scope in store.scopes(prefix))

    def _can_push(self) -> bool:
        return not self._shut_down and not self._tls.is_shutdown()

    def _push(self, cluster: Cluster) -> None:
        if self._can_push():
            snapshot = ClusterSnapshot(
                cluster.info, cluster.host_set, self._stats_store, getattr(cluster, "outlier_detector", None)
            )
            self._slot.run_on_all_threads(_push_update(snapshot))

    def _publish(self, entry: _ClusterEntry) -> None:
        entry.published = True
        self._stats["cluster_manager.warming_clusters"] -= 1
        self._stats["cluster_manager.active_clusters"] += 1
        self._push(entry.cluster)

    def _on_cluster_init(self, entry: _ClusterEntry) -> None:
        if self._shut_down or entry.published or self._clusters.get(entry.cluster.info.name) is not entry:
            return
        self._publish(entry)
        self._maybe_finish_init()

    def _on_init_timeout(self) -> None:
        waiting = [name for name, entry in self._clusters.items() if not entry.published]
        if waiting:
            _log.warning("clusters still resolving after the initialization bound: %s", ", ".join(waiting))
        for entry in list(self._clusters.values()):
            if not entry.published:
                self._publish(entry)
        self._maybe_finish_init()

    def _maybe_finish_init(self) -> None:
        if not self._init_cbs or not self.initialized or self._initializing:
            return
        if self._init_timer is not None:
            self._init_timer.close()
            self._init_timer = None
        callbacks, self._init_cbs = self._init_cbs, []
        self._initializing = True
        try:
            for cb in callbacks:
                cb()
        finally:
            self._initializing = False
