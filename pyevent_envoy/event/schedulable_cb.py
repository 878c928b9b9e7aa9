"""The schedulable callback interface (Envoy's ``envoy/event/schedulable_cb.h``)."""

from __future__ import annotations

import abc

__all__ = ["SchedulableCallback"]


class SchedulableCallback(abc.ABC):
    """A callback that can be scheduled to run once, in this iteration or the next.

    Created unscheduled by :meth:`Dispatcher.create_schedulable_callback`.
    All methods must be called on the dispatcher's thread.  Scheduling an
    already scheduled callback is a no-op unless it moves between the two
    queues: the last call wins, as with libevent's ``event_active`` and
    ``event_add``.
    """

    __slots__ = ()

    @abc.abstractmethod
    def schedule_callback_current_iteration(self) -> None:
        """Run in the current iteration, after everything already queued for it.

        Called from the same-iteration phase itself (for example from another
        current-iteration callback), it runs in that phase's next round, still
        in this pass; after ``MAX_SAME_ITERATION_ROUNDS`` (16) rounds what is
        left runs in the next pass, after a non-blocking poll, so that a
        callback re-scheduling itself forever cannot starve I/O.
        """

    @abc.abstractmethod
    def schedule_callback_next_iteration(self) -> None:
        """Run in the next iteration, after its poll.  No ordering among such callbacks."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Unschedule; the callback will not run until scheduled again."""

    @abc.abstractmethod
    def enabled(self) -> bool:
        """True while scheduled and not yet run."""

    @abc.abstractmethod
    def close(self) -> None:
        """Cancel and release.  Idempotent."""
