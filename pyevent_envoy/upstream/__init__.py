"""Upstream: clusters, hosts, load balancers and the cluster manager (Envoy's ``source/common/upstream``).

The main thread owns clusters and their discovery (STATIC, STRICT_DNS,
LOGICAL_DNS; DNS on a thread pool, never on a loop).  Each thread gets
immutable ``(ClusterInfo, HostSet)`` snapshots through a thread-local slot
and picks hosts with its own load balancer, without locks::

    cm = ClusterManagerImpl(main_dispatcher, tls)
    cm.add_cluster(*from_config(cluster_config))
    cm.initialize(on_ready)
    ...
    # on any registered thread
    tlc = cm.get_thread_local_cluster("backend")
    host = tlc.choose_host() if tlc is not None else None

Active health checks (:mod:`pyevent_envoy.upstream.health_checker`) and
outlier detection's decisions (:mod:`pyevent_envoy.upstream.outlier_detection`)
run on the main thread and reach workers as new host sets.  A host's health is
``host.health_flags`` (a :class:`HealthFlag`), which
:func:`health_flags_to_string` renders as Envoy's admin does.
"""

from pyevent_envoy.upstream.cluster import CircuitBreakerThresholds as CircuitBreakerThresholds
from pyevent_envoy.upstream.cluster import Cluster as Cluster
from pyevent_envoy.upstream.cluster import ClusterImplBase as ClusterImplBase
from pyevent_envoy.upstream.cluster import ClusterInfo as ClusterInfo
from pyevent_envoy.upstream.cluster import DiscoveryType as DiscoveryType
from pyevent_envoy.upstream.cluster import Endpoint as Endpoint
from pyevent_envoy.upstream.cluster import LogicalDnsCluster as LogicalDnsCluster
from pyevent_envoy.upstream.cluster import StaticCluster as StaticCluster
from pyevent_envoy.upstream.cluster import StrictDnsCluster as StrictDnsCluster
from pyevent_envoy.upstream.cluster import from_config as from_config
from pyevent_envoy.upstream.cluster_manager import ClusterManagerImpl as ClusterManagerImpl
from pyevent_envoy.upstream.cluster_manager import ClusterSnapshot as ClusterSnapshot
from pyevent_envoy.upstream.cluster_manager import ThreadLocalCluster as ThreadLocalCluster
from pyevent_envoy.upstream.cluster_manager import ThreadLocalClusterManager as ThreadLocalClusterManager
from pyevent_envoy.upstream.dns import ActiveDnsQuery as ActiveDnsQuery
from pyevent_envoy.upstream.dns import DnsLookupFamily as DnsLookupFamily
from pyevent_envoy.upstream.dns import DnsResolverImpl as DnsResolverImpl
from pyevent_envoy.upstream.dns import ResolutionStatus as ResolutionStatus
from pyevent_envoy.upstream.dns import getaddrinfo_resolve as getaddrinfo_resolve
from pyevent_envoy.upstream.health_checker import FailureType as FailureType
from pyevent_envoy.upstream.health_checker import HealthCheckerImplBase as HealthCheckerImplBase
from pyevent_envoy.upstream.health_checker import HealthCheckerStats as HealthCheckerStats
from pyevent_envoy.upstream.health_checker import HealthState as HealthState
from pyevent_envoy.upstream.health_checker import HealthTransition as HealthTransition
from pyevent_envoy.upstream.health_checker import HttpHealthCheckerImpl as HttpHealthCheckerImpl
from pyevent_envoy.upstream.health_checker import TcpHealthCheckerImpl as TcpHealthCheckerImpl
from pyevent_envoy.upstream.health_checker import create_health_checker as create_health_checker
from pyevent_envoy.upstream.host import HealthFlag as HealthFlag
from pyevent_envoy.upstream.host import HostImpl as HostImpl
from pyevent_envoy.upstream.host import HostSet as HostSet
from pyevent_envoy.upstream.host import HostStats as HostStats
from pyevent_envoy.upstream.host import HostStatsMap as HostStatsMap
from pyevent_envoy.upstream.host import LogicalHost as LogicalHost
from pyevent_envoy.upstream.host import health_flags_to_string as health_flags_to_string
from pyevent_envoy.upstream.load_balancer import DegradedSplitLoadBalancer as DegradedSplitLoadBalancer
from pyevent_envoy.upstream.load_balancer import LbPolicy as LbPolicy
from pyevent_envoy.upstream.load_balancer import LeastRequestLoadBalancer as LeastRequestLoadBalancer
from pyevent_envoy.upstream.load_balancer import LoadBalancer as LoadBalancer
from pyevent_envoy.upstream.load_balancer import RandomLoadBalancer as RandomLoadBalancer
from pyevent_envoy.upstream.load_balancer import RoundRobinLoadBalancer as RoundRobinLoadBalancer
from pyevent_envoy.upstream.load_balancer import create_load_balancer as create_load_balancer
from pyevent_envoy.upstream.outlier_detection import EjectionType as EjectionType
from pyevent_envoy.upstream.outlier_detection import OutlierDetectionStats as OutlierDetectionStats
from pyevent_envoy.upstream.outlier_detection import OutlierDetectorImpl as OutlierDetectorImpl
from pyevent_envoy.upstream.outlier_detection import OutlierMonitors as OutlierMonitors

__all__ = [
    "ActiveDnsQuery",
    "CircuitBreakerThresholds",
    "Cluster",
    "ClusterImplBase",
    "ClusterInfo",
    "ClusterManagerImpl",
    "ClusterSnapshot",
    "DegradedSplitLoadBalancer",
    "DiscoveryType",
    "DnsLookupFamily",
    "DnsResolverImpl",
    "EjectionType",
    "Endpoint",
    "FailureType",
    "HealthCheckerImplBase",
    "HealthCheckerStats",
    "HealthFlag",
    "HealthState",
    "HealthTransition",
    "HostImpl",
    "HostSet",
    "HostStats",
    "HostStatsMap",
    "HttpHealthCheckerImpl",
    "LbPolicy",
    "LeastRequestLoadBalancer",
    "LoadBalancer",
    "LogicalDnsCluster",
    "LogicalHost",
    "OutlierDetectionStats",
    "OutlierDetectorImpl",
    "OutlierMonitors",
    "RandomLoadBalancer",
    "ResolutionStatus",
    "RoundRobinLoadBalancer",
    "StaticCluster",
    "StrictDnsCluster",
    "TcpHealthCheckerImpl",
    "ThreadLocalCluster",
    "ThreadLocalClusterManager",
    "create_health_checker",
    "create_load_balancer",
    "from_config",
    "getaddrinfo_resolve",
    "health_flags_to_string",
]
