"""Thread-local slots (Envoy's ``source/common/thread_local/thread_local_impl.cc``).

Storage is one ``threading.local`` per :class:`InstanceImpl` holding the
thread's dispatcher and a list of values indexed by slot.  Reads take no
lock.  Writes to another thread's storage always happen on that thread,
through its dispatcher's ``post``; the main thread's run inline.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable

from pyevent_envoy.errors import DispatcherClosedError
from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.thread_local.thread_local import InitializeCb, Instance, Slot, UpdateCb

__all__ = ["InstanceImpl", "SlotImpl"]


class _Countdown:
    """Posts ``complete_cb`` to the main dispatcher when ``remaining`` reaches zero."""

    __slots__ = ("_lock", "_remaining", "_main", "_complete_cb")

    def __init__(self, remaining: int, main: Dispatcher, complete_cb: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._remaining = remaining
        self._main = main
        self._complete_cb = complete_cb

    def done(self) -> None:
        with self._lock:
            self._remaining -= 1
            last = self._remaining == 0
        if last:
            self._main.post(self._complete_cb)


class SlotImpl(Slot):
    """A slot of an :class:`InstanceImpl`.  Created by :meth:`InstanceImpl.allocate_slot` only."""

    __slots__ = ("_instance", "_index", "_closed", "__weakref__")

    def __init__(self, instance: InstanceImpl, index: int) -> None:
        self._instance = instance
        self._index = index
        self._closed = False

    @property
    def index(self) -> int:
        return self._index

    def get(self) -> Any:
        data = self._instance._data()
        index = self._index
        if index < len(data) and data[index] is not _UNSET:
            return data[index]
        raise LookupError(f"thread-local slot {index} has no value on this thread")

    def current_thread_registered(self) -> bool:
        data = self._instance._data()
        return self._index < len(data) and data[self._index] is not _UNSET

    def set(self, init_cb: InitializeCb) -> None:
        instance = self._instance
        instance._check_main("Slot.set")
        self._check_open()
        ref = weakref.ref(self)
        index = self._index
        for dispatcher in instance._workers:
            instance._post(dispatcher, _make_set(ref, instance, index, init_cb, dispatcher))
        instance._store(index, init_cb(instance._main_dispatcher))

    def run_on_all_threads(self, update_cb: UpdateCb, complete_cb: Callable[[], None] | None = None) -> None:
        instance = self._instance
        instance._check_main("Slot.run_on_all_threads")
        self._check_open()
        ref = weakref.ref(self)
        workers = list(instance._workers)
        countdown = None
        if complete_cb is not None:
            if workers:
                countdown = _Countdown(len(workers), instance._main_dispatcher, complete_cb)
            else:
                instance._main_dispatcher.post(complete_cb)
        update_cb(instance._value(self._index))
        for dispatcher in workers:
            if not instance._post(dispatcher, _make_update(ref, instance, self._index, update_cb, countdown)):
                if countdown is not None:
                    countdown.done()  # a stopped worker counts as done

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._instance._free_slot(self._index)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"thread-local slot {self._index} is closed")


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


_UNSET = _Unset()


def _make_set(
    ref: weakref.ref, instance: InstanceImpl, index: int, init_cb: InitializeCb, dispatcher: Dispatcher
) -> Callable[[], None]:
    def run() -> None:
        if ref() is not None:  # the slot may have been closed meanwhile
            instance._store(index, init_cb(dispatcher))

    return run


def _make_update(
    ref: weakref.ref, instance: InstanceImpl, index: int, update_cb: UpdateCb, countdown: _Countdown | None
) -> Callable[[], None]:
    def run() -> None:
        try:
            if ref() is not None:
                update_cb(instance._value(index))
        finally:
            if countdown is not None:
                countdown.done()

    return run


class InstanceImpl(Instance):
    """The thread-local registry; one per server.

    The main thread is the one that calls ``register_thread(..., main=True)``;
    only it may allocate slots, set them and run on all threads.
    """

    __slots__ = ("_local", "_main_dispatcher", "_main_ident", "_workers", "_slots", "_free", "_shutdown")

    def __init__(self) -> None:
        self._local = threading.local()
        self._main_dispatcher: Dispatcher | None = None
        self._main_ident: int | None = None
        self._workers: list[Dispatcher] = []
        self._slots: list[weakref.ref | None] = []
        self._free: list[int] = []
        self._shutdown = False

    # Instance

    def allocate_slot(self) -> SlotImpl:
        self._check_main("allocate_slot")
        if self._free:
            index = min(self._free)
            self._free.remove(index)
        else:
            index = len(self._slots)
            self._slots.append(None)
        slot = SlotImpl(self, index)
        self._slots[index] = weakref.ref(slot)
        return slot

    def register_thread(self, dispatcher: Dispatcher, main: bool) -> None:
        if main:
            if self._main_dispatcher is not None:
                raise RuntimeError("a main thread is already registered")
            self._main_dispatcher = dispatcher
            self._main_ident = threading.get_ident()
            self._bind(dispatcher)
            return
        self._check_main("register_thread")
        if dispatcher in self._workers:
            raise RuntimeError(f"dispatcher {dispatcher.name!r} is already registered")
        self._workers.append(dispatcher)
        dispatcher.post(lambda: self._bind(dispatcher))

    def shutdown_global_threading(self) -> None:
        self._check_main("shutdown_global_threading")
        self._shutdown = True

    def shutdown_thread(self) -> None:
        data = self._data()
        # Reverse order: late (leaf) slots may use early, long-lived ones.
        for index in range(len(data) - 1, -1, -1):
            data[index] = _UNSET
        data.clear()

    def dispatcher(self) -> Dispatcher:
        dispatcher = getattr(self._local, "dispatcher", None)
        if dispatcher is None:
            raise LookupError("the calling thread is not registered with this thread-local instance")
        return dispatcher

    def is_shutdown(self) -> bool:
        return self._shutdown

    @property
    def workers(self) -> tuple[Dispatcher, ...]:
        """The registered worker dispatchers."""
        return tuple(self._workers)

    # internals

    def _check_main(self, what: str) -> None:
        if self._main_ident is None:
            raise RuntimeError(f"{what}: register the main thread first (register_thread(dispatcher, main=True))")
        if threading.get_ident() != self._main_ident:
            raise RuntimeError(f"{what} must be called on the main thread")

    @staticmethod
    def _post(dispatcher: Dispatcher, cb: Callable[[], None]) -> bool:
        """Post to a worker; False when the worker's dispatcher is already closed."""
        try:
            dispatcher.post(cb)
        except DispatcherClosedError:
            return False
        return True

    def _bind(self, dispatcher: Dispatcher) -> None:
        self._local.dispatcher = dispatcher
        if not hasattr(self._local, "data"):
            self._local.data = []

    def _data(self) -> list[Any]:
        try:
            return self._local.data
        except AttributeError:
            self._local.data = data = []
            return data

    def _store(self, index: int, value: Any) -> None:
        data = self._data()
        if index >= len(data):
            data.extend([_UNSET] * (index + 1 - len(data)))
        data[index] = value

    def _value(self, index: int) -> Any:
        data = self._data()
        value = data[index] if index < len(data) else _UNSET
        return None if value is _UNSET else value

    def _clear(self, index: int) -> None:
        data = self._data()
        if index < len(data):
            data[index] = _UNSET

    def _free_slot(self, index: int) -> None:
        self._slots[index] = None
        if threading.get_ident() == self._main_ident:
            self._release_index(index)
        elif self._main_dispatcher is not None and not self._shutdown:
            self._main_dispatcher.post(lambda: self._release_index(index))

    def _release_index(self, index: int) -> None:
        self._clear(index)
        if not self._shutdown:
            # Sequenced after earlier posts, so pending updates run first.
            for dispatcher in self._workers:
                self._post(dispatcher, lambda: self._clear(index))
        self._free.append(index)
