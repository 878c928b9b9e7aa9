"""Clocks for :class:`~pyevent_envoy.testing.ReferenceDispatcher`: real and simulated.

A :class:`ReferenceDispatcher` reads the time only through its clock: timer
deadlines, the approximate monotonic time, and how long a poll may wait.
With :class:`SimulatedClock` (Envoy's ``SimulatedTimeSystem``, trio's
``MockClock``) time stands still until a test moves it, so a timer test
asserts exact deadlines without sleeping and cannot fail on a slow machine::

    clock = SimulatedClock()
    dispatcher = ReferenceDispatcher("test", clock=clock)
    timer = dispatcher.create_timer(fired.append)
    timer.enable_timer(5.0)
    clock.advance(4.999)
    run_nonblock(dispatcher)      # not yet
    clock.advance(0.001)
    run_nonblock(dispatcher)      # fired

The clock protocol a dispatcher uses: ``monotonic()``; ``simulated`` (when
true, a poll never waits for a timer deadline, because real time does not
move simulated time); ``autojump``; ``jump_to(t)``; ``attach(waker)`` and
``detach(waker)`` (``advance`` calls every attached waker, which wakes a
dispatcher blocked in its poll so it sees the new time).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from pyevent_envoy.event.timer import Duration, to_seconds

__all__ = ["RealClock", "SimulatedClock"]

Waker = Callable[[], None]


class RealClock:
    """``time.monotonic()``; the default clock of a reference dispatcher."""

    __slots__ = ()

    simulated = False
    autojump = False

    def monotonic(self) -> float:
        return time.monotonic()

    def jump_to(self, when: float) -> None:
        raise TypeError("the real clock cannot jump")

    def attach(self, waker: Waker) -> None:
        """Real time moves by itself; nothing to wake."""

    def detach(self, waker: Waker) -> None:
        """Nothing was attached."""

    def __repr__(self) -> str:
        return "<RealClock>"


class SimulatedClock:
    """A monotonic clock that moves only when told to.

    Args:
        start: the initial reading, in seconds.
        autojump: when true, a dispatcher whose poll finds nothing ready
            while a timer is pending moves the clock straight to that timer's
            deadline (trio's ``MockClock(autojump_threshold=0)``): a test can
            then ``run(RunType.BLOCK)`` through hours of timers at once.

    :meth:`advance` may be called from any thread.
    """

    __slots__ = ("_now", "_lock", "_wakers", "autojump")

    simulated = True

    def __init__(self, start: float = 0.0, *, autojump: bool = False) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self._wakers: list[Waker] = []
        self.autojump = autojump

    def __repr__(self) -> str:
        return f"<SimulatedClock t={self._now!r}{' autojump' if self.autojump else ''}>"

    def monotonic(self) -> float:
        """The current simulated time, in seconds."""
        return self._now

    def advance(self, delay: Duration) -> None:
        """Move the clock forward by ``delay`` (seconds or ``timedelta``) and wake attached dispatchers.

        Raises:
            ValueError: ``delay`` is negative: a monotonic clock never goes back.
        """
        seconds = to_seconds(delay)
        with self._lock:
            self._now += seconds
            wakers = list(self._wakers)
        for wake in wakers:
            wake()

    def jump_to(self, when: float) -> None:
        """Move the clock to ``when`` if that is later (the autojump step); never backwards."""
        with self._lock:
            if when > self._now:
                self._now = when

    def attach(self, waker: Waker) -> None:
        with self._lock:
            self._wakers.append(waker)

    def detach(self, waker: Waker) -> None:
        with self._lock:
            try:
                self._wakers.remove(waker)
            except ValueError:
                pass  # already removed: idempotent
