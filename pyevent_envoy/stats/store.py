"""The stats store: where the admin finds every thread's scopes, and sums them.

Envoy keeps one atomic counter per stat shared by every worker; here each
worker owns its own :mod:`scope <pyevent_envoy.stats.scopes>` objects
(plain ints, no locks on the hot path) and the store adds them up when the
admin reads them.

Threading contract:

- :meth:`StatsStore.register` / :meth:`StatsStore.unregister` may be called
  from any thread (a worker registers the scopes it creates); they take a
  lock, which is fine: a scope is registered once, when its listener or
  cluster is set up on that worker, never per request.
- :meth:`StatsStore.add_source` is for main-thread stats (server,
  cluster membership, cluster manager): a callable run on the reading thread.
- :meth:`StatsStore.snapshot` may be called from any thread, in practice the
  main thread (admin).  It copies the registry under the lock, then reads the
  scopes without it: every value is an ``int`` some owner stored recently
  (see :mod:`pyevent_envoy.stats.scopes`).
- :meth:`StatsStore.reset_counters` (admin ``/reset_counters``) writes
  nothing into the scopes, which only their owners write: it records each
  counter's current value as a baseline that :meth:`~StatsStore.snapshot`
  subtracts from then on.
- :meth:`StatsStore.merge_histograms` (the stats flush) and
  :meth:`StatsStore.histograms` (the admin) run on one thread, the main
  one; the flush only reads the workers' recorders (see
  :mod:`pyevent_envoy.stats.histogram`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, NamedTuple, Optional

from pyevent_envoy.stats.histogram import HistogramRecorder, ParentHistogram
from pyevent_envoy.stats.scopes import COUNTER, GAUGE, StatsScope

__all__ = ["COUNTER", "GAUGE", "PerThreadScopes", "Stat", "StatsStore", "listener_stat_prefix"]


class Stat(NamedTuple):
    """One stat as the admin shows it.

    Attributes:
        name: Envoy's full name, e.g. ``cluster.app.upstream_rq_total``.
        kind: ``"counter"`` or ``"gauge"``.
        value: the sum over the workers.
        used: what Envoy's ``usedonly`` keeps: a counter that was ever
            incremented, a gauge that was ever changed.
    """

    name: str
    kind: str
    value: int
    used: bool


#: A main-thread source: yields ``Stat`` tuples.
Source = Callable[[], Iterable[Stat]]


def listener_stat_prefix(ip: str, port: int) -> str:
    """``listener.<address>.`` as Envoy names it: ``127.0.0.1_10000``, ``[__1]_10000`` for IPv6."""
    host = f"[{ip.replace(':', '_')}]" if ":" in ip else ip
    return f"listener.{host}_{port}."


class StatsStore:
    """Every scope by stat prefix (``"http.ingress."``), plus main-thread sources."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scopes: dict[str, list[StatsScope]] = {}
        self._sources: list[Source] = []
        #: Counter values at the last reset, per scope and for source stats by name.
        self._scope_baselines: dict[StatsScope, dict[str, int]] = {}
        self._source_baselines: dict[str, int] = {}
        # Main thread only (the flush and the admin): the merged histograms
        # by name, and each recorder's counts as the last flush copied them.
        self._histograms: dict[str, ParentHistogram] = {}
        self._seen: dict[HistogramRecorder, list[int]] = {}

    def __repr__(self) -> str:
        return f"<StatsStore {sorted(self._scopes)}>"

    def register(self, prefix: str, scope: StatsScope) -> StatsScope:
        """Show ``scope``'s stats under ``prefix`` (ending in ``.``), summed with the other scopes there.

        Any thread.  Returns ``scope``.
        """
        if not prefix.endswith("."):
            raise ValueError(f"a stat prefix ends with '.', got {prefix!r}")
        with self._lock:
            self._scopes.setdefault(prefix, []).append(scope)
        return scope

    def unregister(self, prefix: str, scope: StatsScope) -> None:
        """Stop showing ``scope`` (e.g. its cluster was removed).  Any thread; unknown scopes are ignored."""
        with self._lock:
            scopes = self._scopes.get(prefix)
            if scopes is None:
                return
            self._scopes[prefix] = [s for s in scopes if s is not scope]
            self._scope_baselines.pop(scope, None)
            if not self._scopes[prefix]:
                del self._scopes[prefix]

    def scopes(self, prefix: str) -> list[StatsScope]:
        """The scopes registered under ``prefix`` now (a copy).  Any thread; read them, never write."""
        with self._lock:
            return list(self._scopes.get(prefix, ()))

    def add_source(self, source: Source) -> None:
        """Add stats computed on the reading thread (``source()`` yields :class:`Stat` tuples)."""
        with self._lock:
            self._sources.append(source)

    def reset_counters(self) -> None:
        """Zero every counter, as Envoy's admin ``/reset_counters`` does; gauges keep their values.

        Any thread.  A counter that was ever used stays *used* (``usedonly``
        still shows it), as in Envoy.
        """
        with self._lock:
            scopes = [scope for group in self._scopes.values() for scope in group]
            sources = list(self._sources)
        scope_baselines = {
            scope: {item[0]: item[2] for item in scope.values() if item[1] == COUNTER} for scope in scopes
        }
        source_baselines = {stat.name: stat.value for source in sources for stat in source() if stat.kind == COUNTER}
        with self._lock:
            self._scope_baselines.update(scope_baselines)
            self._source_baselines = source_baselines

    def _registry(self) -> list[tuple[str, list[StatsScope]]]:
        with self._lock:
            return [(prefix, list(group)) for prefix, group in self._scopes.items()]

    def snapshot(self) -> list[Stat]:
        """Every counter and gauge, summed over the workers, sorted by name (as Envoy sorts them)."""
        scopes = self._registry()
        with self._lock:
            sources = list(self._sources)
            scope_baselines = dict(self._scope_baselines)
            source_baselines = self._source_baselines
        out: dict[str, Stat] = {}
        for prefix, group in scopes:
            kinds: dict[str, str] = {}
            totals: dict[str, int] = {}  # since start: what decides "used"
            sums: dict[str, int] = {}  # since the last reset: the value shown
            known_used: dict[str, bool] = {}
            for scope in group:
                baseline = scope_baselines.get(scope)
                for item in scope.values():
                    name, kind, value = item[:3]
                    kinds[name] = kind
                    totals[name] = totals.get(name, 0) + value
                    if baseline:
                        value -= baseline.get(name, 0)
                    sums[name] = sums.get(name, 0) + value
                    if len(item) == 4:
                        known_used[name] = known_used.get(name, False) or item[3]
            used_with = type(group[0]).GAUGE_USED_WITH
            for name, value in sums.items():
                kind = kinds[name]
                if name in known_used:
                    used = known_used[name]
                elif kind == GAUGE:
                    counter = used_with.get(name)
                    used = True if counter is None else totals.get(counter, 0) > 0
                else:
                    used = totals[name] > 0
                out[prefix + name] = Stat(prefix + name, kind, value, used)
        for source in sources:
            for stat in source():
                if stat.kind == COUNTER and stat.name in source_baselines:
                    # max(): a source may start a counter over (its cluster was re-added).
                    stat = stat._replace(value=max(0, stat.value - source_baselines[stat.name]))
                out[stat.name] = stat
        return [out[name] for name in sorted(out)]

    # histograms

    def merge_histograms(self) -> None:
        """The stats flush: end the interval of every histogram (Envoy's ``mergeHistograms``).

        Main thread only.  Each recorder's counts are copied and the copy
        taken at the previous flush subtracted; the sums over the recorders
        of a name become that histogram's interval, and are added to its
        cumulative counts.  A histogram whose scopes are all gone is dropped.
        """
        intervals: dict[str, Optional[list[int]]] = {}
        seen: dict[HistogramRecorder, list[int]] = {}
        for prefix, group in self._registry():
            for scope in group:
                for name, recorder in scope.histograms():
                    full = prefix + name
                    total = intervals.get(full)
                    counts = list(recorder.counts)  # one C-level copy: a consistent view under the GIL
                    if not counts:
                        intervals.setdefault(full, None)
                        continue
                    seen[recorder] = counts
                    before = self._seen.get(recorder)
                    delta = counts if before is None else [now - then for now, then in zip(counts, before)]
                    intervals[full] = delta if total is None else [a + b for a, b in zip(total, delta)]
        self._seen = seen
        merged: dict[str, ParentHistogram] = {}
        for full, delta in intervals.items():
            parent = self._histograms.get(full) or ParentHistogram(full)
            parent.merge(delta)
            merged[full] = parent
        self._histograms = merged

    def histograms(self) -> list[ParentHistogram]:
        """Every histogram, sorted by name, with its values as of the last :meth:`merge_histograms`.

        Main thread only.  A histogram no flush has merged yet is shown
        empty (``No recorded values``), as in Envoy.
        """
        names = {prefix + name for prefix, group in self._registry() for scope in group for name, _ in scope.histograms()}
        return [self._histograms.get(name) or ParentHistogram(name) for name in sorted(names)]


class PerThreadScopes:
    """One :class:`StatsScope` per thread under one prefix, for stats of an object every worker shares.

    An HTTP filter's configuration is shared by the workers, but a scope
    has one writer (see :mod:`pyevent_envoy.stats.scopes`): :meth:`get`
    returns the calling thread's scope, made and registered on its first
    call there.  A scope registered at creation, never written, makes the
    stats show (as zeros) before any thread counted, as Envoy shows them
    once the configuration is loaded.

    Args:
        store: where the scopes are shown; ``None`` keeps them unshown.
        prefix: the stat prefix, ending in ``.``.
        make_scope: builds an empty scope.
    """

    __slots__ = ("_store", "_prefix", "_make_scope", "_local")

    def __init__(self, store: Optional[StatsStore], prefix: str, make_scope: Callable[[], StatsScope]) -> None:
        self._store = store
        self._prefix = prefix
        self._make_scope = make_scope
        self._local = threading.local()
        if store is not None:
            store.register(prefix, make_scope())

    def get(self) -> Any:
        """The calling thread's scope (write it from this thread only)."""
        scope = getattr(self._local, "scope", None)
        if scope is None:
            scope = self._local.scope = self._make_scope()
            if self._store is not None:
                self._store.register(self._prefix, scope)
        return scope

