"""Thread-local storage interfaces (Envoy's ``envoy/thread_local/thread_local.h``).

This is how state reaches workers without locks: the main thread builds an
immutable snapshot and a slot's :meth:`Slot.set` or
:meth:`Slot.run_on_all_threads` hands it to every registered thread through
that thread's dispatcher (:meth:`~pyevent_envoy.event.Dispatcher.post`).
Work in flight keeps the snapshot it started with; each thread sees the new
one from its next callback on (eventually consistent, like RCU).
"""

from __future__ import annotations

import abc
from typing import Any, Callable

from pyevent_envoy.event.dispatcher import Dispatcher

__all__ = ["InitializeCb", "Instance", "Slot", "UpdateCb"]

#: ``init_cb(dispatcher) -> value``: builds a thread's value, on that thread.
InitializeCb = Callable[[Dispatcher], Any]
#: ``update_cb(value)``: runs on each thread with that thread's value (``None`` if unset).
UpdateCb = Callable[[Any], None]


class Slot(abc.ABC):
    """One thread-local variable, an index into every thread's storage."""

    __slots__ = ()

    @abc.abstractmethod
    def get(self) -> Any:
        """This thread's value.  No locks.

        Raises:
            LookupError: nothing was set for this thread (yet).
        """

    @abc.abstractmethod
    def current_thread_registered(self) -> bool:
        """True when this thread has a value for the slot."""

    @abc.abstractmethod
    def set(self, init_cb: InitializeCb) -> None:
        """Main thread only: store ``init_cb(dispatcher)`` on every thread.

        Runs inline for the main thread and is posted to each worker, where it
        runs on the worker's thread with the worker's dispatcher.  ``init_cb``
        may return one shared (immutable) object or a new one per thread.
        It must not capture the slot: a post that runs after the slot is
        closed is skipped.
        """

    @abc.abstractmethod
    def run_on_all_threads(self, update_cb: UpdateCb, complete_cb: Callable[[], None] | None = None) -> None:
        """Main thread only: run ``update_cb(value)`` on every thread.

        The main thread runs it first, inline; then each worker, through a
        post.  ``complete_cb()`` is posted to the main thread once the last
        worker has run ``update_cb``.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Free the slot: its index is cleared on every thread and reused later.  Idempotent."""


class Instance(abc.ABC):
    """The registry of threads and slots."""

    __slots__ = ()

    @abc.abstractmethod
    def allocate_slot(self) -> Slot:
        """Main thread only: a new slot (freed indexes are reused)."""

    @abc.abstractmethod
    def register_thread(self, dispatcher: Dispatcher, main: bool) -> None:
        """Main thread only, before any :meth:`Slot.set`: add a thread by its dispatcher.

        The main thread registers itself with ``main=True``; each worker's
        dispatcher is registered with ``main=False`` before the worker starts
        (a post binds it to the worker's thread).
        """

    @abc.abstractmethod
    def shutdown_global_threading(self) -> None:
        """Main thread, before the workers exit: slot changes stop reaching workers."""

    @abc.abstractmethod
    def shutdown_thread(self) -> None:
        """On an exiting thread: drop its values, in reverse slot order."""

    @abc.abstractmethod
    def dispatcher(self) -> Dispatcher:
        """The calling thread's dispatcher.

        Raises:
            LookupError: the calling thread is not registered.
        """

    @abc.abstractmethod
    def is_shutdown(self) -> bool:
        """True after :meth:`shutdown_global_threading`."""
