"""Envoy's drain manager (``source/server/drain_manager_impl``): whether a connection should close.

Envoy's admin ``POST /drain_listeners`` starts a *drain sequence* of
``--drain-time-s`` seconds, and a failed health check
(``/healthcheck/fail``) makes every connection go as well.  While either
holds, each HTTP response asks :meth:`DrainManager.drain_close` whether to
send ``connection: close`` (and close after it); Envoy's default "gradual"
strategy answers yes with a probability that grows with the time spent
draining, so that clients leave spread over the drain time, not all at once:
with ``e`` whole seconds elapsed of ``T``, yes when ``e > random() % T``
(never in the first second; always once ``T`` has passed; always when ``T`` is
0).  Idle connections are left alone, as Envoy leaves them.

Threading: the main thread writes (:meth:`start_drain_sequence`,
:attr:`health_check_failed`); workers only read.  Each write replaces one
attribute by an immutable value (a bool, a float), which a worker reads
whole, before or after the change, on GIL and free-threaded builds alike:
no lock is needed, and a response sees a drain at most one response late.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Optional

__all__ = ["DrainManager"]


class DrainManager:
    """The server's drain decision, shared read-only by every worker's connection managers.

    Args:
        drain_time_s: the drain sequence's length (``--drain-time-s``).
        clock: monotonic seconds (``time.monotonic`` by default).
        rng: where the gradual strategy's random numbers come from.
    """

    __slots__ = ("drain_time_s", "active", "_draining", "_health_check_failed", "_deadline", "_clock", "_rng")

    def __init__(self, drain_time_s: float, clock: Callable[[], float] = time.monotonic, rng: Optional[random.Random] = None) -> None:
        self.drain_time_s = drain_time_s
        #: True while draining or health-check failed: the one attribute a
        #: response reads when nothing is draining (the common case).
        self.active = False
        self._draining = False
        self._health_check_failed = False
        self._deadline = 0.0
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()

    @property
    def draining(self) -> bool:
        """True once :meth:`start_drain_sequence` ran (it never ends, as in Envoy)."""
        return self._draining

    def start_drain_sequence(self) -> bool:
        """Begin draining (main thread).  False, and nothing changes, when already draining."""
        if self._draining:
            return False
        self._deadline = self._clock() + self.drain_time_s
        self._draining = True
        self.active = True
        return True

    @property
    def health_check_failed(self) -> bool:
        return self._health_check_failed

    @health_check_failed.setter
    def health_check_failed(self, failed: bool) -> None:
        # Envoy: while health checks fail, every connection is drained (listeners' DEFAULT drain type).
        self._health_check_failed = failed
        self.active = failed or self._draining

    def drain_close(self) -> bool:
        """Whether the connection answering now should close after this response (any thread)."""
        if self._health_check_failed:
            return True
        if not self._draining:
            return False
        whole_seconds = int(self.drain_time_s)
        if whole_seconds <= 0:
            return True
        remaining = int(self._deadline - self._clock())  # whole seconds, truncated as Envoy's duration_cast
        return whole_seconds - remaining > self._rng.getrandbits(64) % whole_seconds
