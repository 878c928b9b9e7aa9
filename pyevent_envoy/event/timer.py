"""The timer interface (Envoy's ``envoy/event/timer.h``)."""

from __future__ import annotations

import abc
import datetime
from typing import Callable, Union

__all__ = ["Duration", "Timer", "TimerCb", "to_seconds"]

TimerCb = Callable[[], None]
Duration = Union[float, int, datetime.timedelta]

# libevent takes a struct timeval; Envoy clips anything past INT32_MAX seconds.
_MAX_SECONDS = float(2**31 - 1)


def to_seconds(delay: Duration) -> float:
    """Convert a delay in seconds or a ``timedelta`` to float seconds.

    Raises:
        ValueError: the delay is negative or not a number.
    """
    if isinstance(delay, datetime.timedelta):
        seconds = delay.total_seconds()
    else:
        seconds = float(delay)
    if not seconds >= 0.0:  # also rejects NaN
        raise ValueError(f"timer delay must be >= 0 seconds, got {delay!r}")
    return min(seconds, _MAX_SECONDS)


class Timer(abc.ABC):
    """A one-shot timer.  Re-arm it in its callback for periodic behaviour.

    Created disabled by :meth:`Dispatcher.create_timer`.  All methods must be
    called on the dispatcher's thread.
    """

    __slots__ = ()

    @abc.abstractmethod
    def enable_timer(self, delay: Duration) -> None:
        """Arm the timer to fire once after ``delay``.

        Re-arming an armed timer replaces its deadline.  A zero delay fires
        after the next poll of the loop, in the timer phase of the next
        iteration, never in the current one.

        Raises:
            ValueError: ``delay`` is negative.
        """

    @abc.abstractmethod
    def enable_hr_timer(self, delay: Duration) -> None:
        """Same as :meth:`enable_timer`; both have microsecond resolution here."""

    @abc.abstractmethod
    def disable_timer(self) -> None:
        """Disarm the timer; it stays usable."""

    @abc.abstractmethod
    def enabled(self) -> bool:
        """True while armed, including fired but not yet run; False inside its own callback unless re-armed."""

    @abc.abstractmethod
    def close(self) -> None:
        """Disarm and release the timer.  Idempotent."""
