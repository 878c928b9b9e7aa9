"""The signal event interface (Envoy's ``envoy/event/signal.h``)."""

from __future__ import annotations

import abc

__all__ = ["SignalEvent"]


class SignalEvent(abc.ABC):
    """A subscription to a POSIX signal; it exists while it is not closed.

    Only one dispatcher per process should listen for signals (libevent
    delivers a process's signals to one event base), normally the main one.
    """

    __slots__ = ()

    @abc.abstractmethod
    def close(self) -> None:
        """Stop listening and restore the previous handler.  Idempotent."""
