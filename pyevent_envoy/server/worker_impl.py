"""``WorkerImpl`` (Envoy's ``source/server/worker_impl.cc``).

Ownership, as in Envoy: the worker owns its dispatcher and its thread; the
thread's routine runs the dispatcher until :meth:`WorkerImpl.stop` calls
``exit``, then, still on the worker's thread, drops its thread-local values
and closes the dispatcher (closing whatever events are left, with a
``ResourceWarning`` for each).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from pyevent_envoy.event.dispatcher import RunType
from pyevent_envoy.event.dispatcher_impl import DispatcherImpl
from pyevent_envoy.server.worker import Worker
from pyevent_envoy.thread.posix.thread_impl import ThreadFactoryImplPosix, ThreadImplPosix
from pyevent_envoy.thread.thread import ThreadFactory
from pyevent_envoy.thread_local.thread_local import Instance

__all__ = ["WorkerImpl"]

_log = logging.getLogger("pyevent_envoy.server")


class WorkerImpl(Worker):
    """A :class:`DispatcherImpl` on a :class:`ThreadImplPosix` named ``wrk:<name>``.

    Args:
        name: the dispatcher's name, e.g. ``worker_0``; the thread is
            ``wrk:worker_0``.
        tls: a thread-local instance to register the worker's dispatcher with
            (call from the main thread, before :meth:`start`).
        thread_factory: where the thread comes from (default POSIX).
    """

    __slots__ = ("_name", "_dispatcher", "_tls", "_thread_factory", "_thread", "_state", "_lock")

    def __init__(
        self,
        name: str,
        *,
        tls: Instance | None = None,
        thread_factory: ThreadFactory | None = None,
    ) -> None:
        self._name = name
        self._dispatcher = DispatcherImpl(name)
        self._tls = tls
        self._thread_factory = thread_factory or ThreadFactoryImplPosix()
        self._thread: ThreadImplPosix | None = None
        self._state = "new"  # -> "started" -> "stopped"
        self._lock = threading.Lock()
        if tls is not None:
            tls.register_thread(self._dispatcher, main=False)

    def __repr__(self) -> str:
        return f"<WorkerImpl {self._name!r} {self._state}>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def dispatcher(self) -> DispatcherImpl:
        return self._dispatcher

    @property
    def thread(self) -> ThreadImplPosix | None:
        """The worker's thread once started."""
        return self._thread

    def start(self, on_started: Callable[[], None] | None = None) -> None:
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"worker {self._name!r} is {self._state}; start() runs once")
            self._state = "started"
        if on_started is not None:
            # Queued before the loop runs, so it runs before any other event.
            self._dispatcher.post(on_started)
        self._thread = self._thread_factory.create_thread(self._thread_routine, name=f"wrk:{self._name}")

    def _thread_routine(self) -> None:
        try:
            self._dispatcher.run(RunType.RUN_UNTIL_EXIT)
        finally:
            if self._tls is not None:
                self._tls.shutdown_thread()
            self._dispatcher.close()

    def stop(self) -> None:
        with self._lock:
            previous, self._state = self._state, "stopped"
        if previous == "started":
            self._dispatcher.exit()
            assert self._thread is not None
            self._thread.join()
        elif previous == "new":
            self._dispatcher.close()

    def __enter__(self) -> "WorkerImpl":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
