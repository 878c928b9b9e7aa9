"""The worker interface (Envoy's ``envoy/server/worker.h``)."""

from __future__ import annotations

import abc
from typing import Callable

from pyevent_envoy.event.dispatcher import Dispatcher

__all__ = ["Worker"]


class Worker(abc.ABC):
    """A dispatcher running on a thread of its own.

    Every mutating call is carried out on the worker's thread through
    :meth:`Dispatcher.post`, so the worker's state needs no locks.
    """

    __slots__ = ()

    @property
    @abc.abstractmethod
    def dispatcher(self) -> Dispatcher:
        """The worker's dispatcher: ``post`` to it from any thread, use the rest on the worker only."""

    @abc.abstractmethod
    def start(self, on_started: Callable[[], None] | None = None) -> None:
        """Start the thread.  ``on_started()`` runs on it before any other event.

        Raises:
            RuntimeError: already started or stopped.
        """

    @abc.abstractmethod
    def stop(self) -> None:
        """Exit the loop and join the thread.  Safe to call twice, and before :meth:`start`."""
