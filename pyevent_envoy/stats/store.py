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
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, NamedTuple

from pyevent_envoy.stats.scopes import COUNTER, GAUGE, StatsScope

__all__ = ["COUNTER", "GAUGE", "Stat", "StatsStore", "listener_stat_prefix"]


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

    def snapshot(self) -> list[Stat]:
        """Every stat, summed over the workers, sorted by name (as Envoy sorts them)."""
        with self._lock:
            scopes = [(prefix, list(group)) for prefix, group in self._scopes.items()]
            sources = list(self._sources)
        out: dict[str, Stat] = {}
        for prefix, group in scopes:
            kinds: dict[str, str] = {}
            sums: dict[str, int] = {}
            for scope in group:
                for name, kind, value in scope.values():
                    kinds[name] = kind
                    sums[name] = sums.get(name, 0) + value
            used_with = type(group[0]).GAUGE_USED_WITH
            for name, value in sums.items():
                kind = kinds[name]
                if kind == GAUGE:
                    counter = used_with.get(name)
                    used = True if counter is None else sums.get(counter, 0) > 0
                else:
                    used = value > 0
                out[prefix + name] = Stat(prefix + name, kind, value, used)
        for source in sources:
            for stat in source():
                out[stat.name] = stat
        return [out[name] for name in sorted(out)]
