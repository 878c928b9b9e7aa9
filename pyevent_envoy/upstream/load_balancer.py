"""Load balancers (Envoy's ``load_balancer_impl.cc``, ``round_robin_lb``, ``least_request_lb``, ``random_lb``).

Each worker builds its own balancer over an immutable :class:`HostSet`
snapshot and rebuilds it when the snapshot changes, as Envoy rebuilds its
schedulers on every membership update.  A balancer is used by one thread
only and holds only that thread's state (its position, its random
generator, its scheduler), so :meth:`LoadBalancer.choose_host` takes no lock.

How each policy picks, following Envoy:

- ROUND_ROBIN: with equal weights, the next host in order, starting at a
  random offset so that workers do not all begin with the first host.  With
  different weights, an earliest-deadline-first (EDF) schedule: a host of
  weight ``w`` is due every ``1/w`` of virtual time, ties go to the entry
  scheduled first.  Over ``sum(weights)`` picks each host is chosen exactly
  ``weight`` times.
- LEAST_REQUEST: with equal weights, ``choice_count`` (default 2) random
  hosts are sampled and the one with the fewest active requests wins, the
  first sample on ties ("power of two choices").  With different weights,
  an EDF schedule where a host's weight is
  ``weight / (active_requests + 1) ** active_request_bias`` at the time it
  is (re)scheduled.  Active requests are the worker's own
  (:class:`~pyevent_envoy.upstream.host.HostStatsMap`).
- RANDOM: a uniformly random host; weights are ignored, as in Envoy.

Degraded hosts (``HostSet.degraded_hosts_to_use``) get the share of the
load the healthy ones cannot take (``HostSet.healthy_load``, Envoy's
priority load for one priority): each pick draws which of the two, then
the policy picks within it with its own state for each (as Envoy keeps a
schedule per host source).  Without degraded hosts there is no draw.

Every balancer returns ``None`` when there is no host to pick.
"""

from __future__ import annotations

import abc
import enum
import heapq
import random
from typing import Any, Callable

from pyevent_envoy.upstream.host import HostImpl, HostSet, HostStatsMap

__all__ = [
    "DegradedSplitLoadBalancer",
    "LbPolicy",
    "LeastRequestLoadBalancer",
    "LoadBalancer",
    "RandomLoadBalancer",
    "RoundRobinLoadBalancer",
    "create_load_balancer",
]

#: Envoy's default ``least_request_lb_config.choice_count``.
DEFAULT_CHOICE_COUNT = 2
#: Envoy's default ``active_request_bias``.
DEFAULT_ACTIVE_REQUEST_BIAS = 1.0


class LbPolicy(enum.Enum):
    """``Cluster.LbPolicy``: the policies implemented here."""

    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"
    RANDOM = "RANDOM"


class LoadBalancer(abc.ABC):
    """Picks an upstream host for each request.  One instance per worker and cluster."""

    __slots__ = ()

    @abc.abstractmethod
    def choose_host(self, context: Any = None) -> HostImpl | None:
        """The host for the next request, or ``None`` when the host set is empty.

        Call only on the thread that owns the balancer.

        Args:
            context: per-request data (Envoy's ``LoadBalancerContext``); the
                policies here do not use it.
        """


class _EdfScheduler:
    """Earliest-deadline-first schedule over hosts (Envoy's ``EdfScheduler``).

    Entries are ``[deadline, order, host]`` in a heap.  Picking pops the
    earliest deadline, moves virtual time to it, and re-adds the host with a
    deadline ``1 / weight`` later, the weight being read at that moment (so
    LEAST_REQUEST can scale it by the host's load).  ``order`` breaks ties in
    insertion order.
    """

    __slots__ = ("_heap", "_now", "_order", "_weight_of")

    def __init__(self, hosts: tuple[HostImpl, ...], weight_of: Callable[[HostImpl], float]) -> None:
        self._weight_of = weight_of
        self._now = 0.0
        self._heap = [[1.0 / weight_of(host), order, host] for order, host in enumerate(hosts)]
        self._order = len(hosts)
        heapq.heapify(self._heap)

    def pick_and_add(self) -> HostImpl:
        heap = self._heap
        deadline, _order, host = heap[0]
        self._now = deadline
        order = self._order
        self._order = order + 1
        heapq.heapreplace(heap, [deadline + 1.0 / self._weight_of(host), order, host])
        return host


def _weights_equal(hosts: tuple[HostImpl, ...]) -> bool:
    if not hosts:
        return True
    first = hosts[0].weight
    return all(host.weight == first for host in hosts)


class _LoadBalancerBase(LoadBalancer):
    __slots__ = ("_host_set", "_hosts", "_rng")

    def __init__(self, host_set: HostSet, rng: random.Random | None) -> None:
        if not isinstance(host_set, HostSet):
            raise TypeError(f"host_set must be a HostSet, got {host_set!r}")
        self._host_set = host_set
        self._hosts = host_set.hosts_to_use
        # One generator per balancer: the module-level one is shared by all
        # threads (and locks on free-threaded builds).
        self._rng = rng if rng is not None else random.Random()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self._hosts)} hosts>"

    @property
    def host_set(self) -> HostSet:
        """The snapshot this balancer was built over."""
        return self._host_set


class RoundRobinLoadBalancer(_LoadBalancerBase):
    """ROUND_ROBIN: plain rotation with equal weights, an EDF schedule otherwise.

    Args:
        host_set: the snapshot to pick from.
        rng: the random generator (seed it for reproducible tests); it only
            sets the starting offset.
    """

    __slots__ = ("_rr_index", "_edf")

    def __init__(self, host_set: HostSet, *, rng: random.Random | None = None) -> None:
        super().__init__(host_set, rng)
        hosts = self._hosts
        seed = self._rng.getrandbits(32)
        self._rr_index = seed
        self._edf: _EdfScheduler | None = None
        if len(hosts) > 1 and not _weights_equal(hosts):
            self._edf = _EdfScheduler(hosts, _static_weight)
            # A random start in the schedule too, so workers are out of step.
            for _ in range(seed % len(hosts)):
                self._edf.pick_and_add()

    def choose_host(self, context: Any = None) -> HostImpl | None:
        edf = self._edf
        if edf is not None:
            return edf.pick_and_add()
        hosts = self._hosts
        if not hosts:
            return None
        index = self._rr_index
        self._rr_index = index + 1
        return hosts[index % len(hosts)]


def _static_weight(host: HostImpl) -> float:
    return float(host.weight)


class LeastRequestLoadBalancer(_LoadBalancerBase):
    """LEAST_REQUEST: power of N choices with equal weights, load-scaled EDF otherwise.

    Args:
        host_set: the snapshot to pick from.
        host_stats: this worker's per-host counters; a private, empty map
            when not given (every host then looks idle).
        choice_count: hosts sampled per pick, at least 2 (Envoy's default 2).
        active_request_bias: how strongly active requests lower a weighted
            host's weight (Envoy's default 1.0; 0 ignores load).
        rng: the random generator (seed it for reproducible tests).
    """

    __slots__ = ("_host_stats", "_choice_count", "_bias", "_edf")

    def __init__(
        self,
        host_set: HostSet,
        *,
        host_stats: HostStatsMap | None = None,
        choice_count: int = DEFAULT_CHOICE_COUNT,
        active_request_bias: float = DEFAULT_ACTIVE_REQUEST_BIAS,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(host_set, rng)
        if int(choice_count) < 2:
            raise ValueError(f"choice_count must be >= 2, got {choice_count}")
        if not float(active_request_bias) >= 0.0:
            raise ValueError(f"active_request_bias must be >= 0, got {active_request_bias}")
        self._host_stats = host_stats if host_stats is not None else HostStatsMap()
        self._choice_count = int(choice_count)
        self._bias = float(active_request_bias)
        self._edf: _EdfScheduler | None = None
        hosts = self._hosts
        if len(hosts) > 1 and not _weights_equal(hosts):
            self._edf = _EdfScheduler(hosts, self._host_weight)

    @property
    def host_stats(self) -> HostStatsMap:
        return self._host_stats

    def _host_weight(self, host: HostImpl) -> float:
        bias = self._bias
        if bias == 0.0:
            return float(host.weight)
        active = self._host_stats.active_requests(host) + 1
        if bias == 1.0:
            return host.weight / active
        return host.weight / active**bias

    def choose_host(self, context: Any = None) -> HostImpl | None:
        edf = self._edf
        if edf is not None:
            return edf.pick_and_add()
        hosts = self._hosts
        n = len(hosts)
        if not n:
            return None
        randbelow = self._rng.randrange
        active = self._host_stats.active_requests
        candidate = hosts[randbelow(n)]
        candidate_active = active(candidate)
        for _ in range(self._choice_count - 1):
            sampled = hosts[randbelow(n)]
            sampled_active = active(sampled)
            if sampled_active < candidate_active:
                candidate, candidate_active = sampled, sampled_active
        return candidate


class DegradedSplitLoadBalancer(LoadBalancer):
    """Sends ``healthy_load`` % of picks to one balancer, the rest to another over the degraded hosts.

    Args:
        healthy: the balancer over the host set's ``hosts_to_use``.
        degraded: the same policy over its ``degraded_hosts_to_use``.
        healthy_load: percentage of picks for ``healthy`` (0-100).
        rng: draws each pick's side (Envoy draws ``random() % 100 + 1``
            against the healthy load).
    """

    __slots__ = ("_healthy", "_degraded", "_healthy_load", "_rng")

    def __init__(self, healthy: LoadBalancer, degraded: LoadBalancer, healthy_load: int, rng: random.Random) -> None:
        self._healthy = healthy
        self._degraded = degraded
        self._healthy_load = int(healthy_load)
        self._rng = rng

    def __repr__(self) -> str:
        return f"<DegradedSplitLoadBalancer {self._healthy_load}% {self._healthy!r} / {self._degraded!r}>"

    def choose_host(self, context: Any = None) -> HostImpl | None:
        if self._rng.randrange(100) < self._healthy_load:
            return self._healthy.choose_host(context)
        return self._degraded.choose_host(context)


class RandomLoadBalancer(_LoadBalancerBase):
    """RANDOM: a uniformly random host (weights ignored, as in Envoy).

    Args:
        host_set: the snapshot to pick from.
        rng: the random generator (seed it for reproducible tests).
    """

    __slots__ = ()

    def __init__(self, host_set: HostSet, *, rng: random.Random | None = None) -> None:
        super().__init__(host_set, rng)

    def choose_host(self, context: Any = None) -> HostImpl | None:
        hosts = self._hosts
        if not hosts:
            return None
        return hosts[self._rng.randrange(len(hosts))]


def create_load_balancer(
    policy: LbPolicy,
    host_set: HostSet,
    *,
    host_stats: HostStatsMap | None = None,
    choice_count: int = DEFAULT_CHOICE_COUNT,
    rng: random.Random | None = None,
) -> LoadBalancer:
    """The balancer for ``policy`` over ``host_set`` (split with its degraded hosts when they take a share).

    Args:
        policy: an :class:`LbPolicy` or its name.
        host_set: the snapshot to pick from.
        host_stats: the worker's per-host counters (LEAST_REQUEST reads them).
        choice_count: LEAST_REQUEST's sample size.
        rng: the random generator.

    Raises:
        ValueError: an unknown policy name.
    """
    if not isinstance(policy, LbPolicy):
        try:
            policy = LbPolicy[str(policy).upper()]
        except KeyError:
            raise ValueError(f"lb_policy {policy!r} is not supported") from None
    healthy = _create_one(policy, host_set, host_stats, choice_count, rng)
    if host_set.healthy_load >= 100 or not host_set.degraded_hosts_to_use:
        return healthy
    rng = rng if rng is not None else random.Random()
    degraded = _create_one(policy, HostSet(host_set.degraded_hosts_to_use), host_stats, choice_count, rng)
    return DegradedSplitLoadBalancer(healthy, degraded, host_set.healthy_load, rng)


def _create_one(
    policy: LbPolicy, host_set: HostSet, host_stats: HostStatsMap | None, choice_count: int, rng: random.Random | None
) -> LoadBalancer:
    if policy is LbPolicy.ROUND_ROBIN:
        return RoundRobinLoadBalancer(host_set, rng=rng)
    if policy is LbPolicy.LEAST_REQUEST:
        return LeastRequestLoadBalancer(host_set, host_stats=host_stats, choice_count=choice_count, rng=rng)
    return RandomLoadBalancer(host_set, rng=rng)
