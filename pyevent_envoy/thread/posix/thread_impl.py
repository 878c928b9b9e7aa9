"""POSIX threads (Envoy's ``source/common/common/posix/thread_impl.cc``).

A :class:`ThreadImplPosix` is a :class:`threading.Thread` (itself a pthread)
whose first act is to set its OS-visible name, so ``top -H``, ``gdb`` and
``/proc/<pid>/task/*/comm`` show ``wrk:worker_0`` as they do for Envoy.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Callable

from pyevent_envoy.event.libevent import lib
from pyevent_envoy.thread.thread import MAX_THREAD_NAME_LENGTH, Thread, ThreadFactory

__all__ = ["ThreadFactoryImplPosix", "ThreadImplPosix"]


def _os_name(name: str) -> str:
    encoded = name.encode()[:MAX_THREAD_NAME_LENGTH]
    return encoded.decode(errors="ignore")


class ThreadImplPosix(Thread):
    """A started thread.  Created by :meth:`ThreadFactoryImplPosix.create_thread` only."""

    __slots__ = ("_name", "_thread", "_routine", "_priority", "_joined", "_started", "_native_id")

    def __init__(self, routine: Callable[[], None], name: str, priority: int | None) -> None:
        self._name = _os_name(name)
        self._routine = routine
        self._priority = priority
        self._joined = False
        self._native_id = 0
        self._started = threading.Event()
        # Daemon, so that a worker someone forgot to stop does not keep the
        # interpreter from exiting; stop() and join() are the orderly way.
        self._thread = threading.Thread(target=self._run, name=name or None, daemon=True)
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        self._native_id = threading.get_native_id()
        if self._name:
            lib.pe_set_thread_name(self._name.encode())
        if self._priority is not None and sys.platform.startswith("linux"):
            os.setpriority(os.PRIO_PROCESS, self._native_id, self._priority)
        self._started.set()
        self._routine()

    @property
    def name(self) -> str:
        return self._name

    @property
    def native_id(self) -> int:
        """The OS thread id (``gettid()``)."""
        return self._native_id

    def join(self) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError(f"thread {self._name!r} cannot join itself")
        if self._joined:
            raise RuntimeError(f"thread {self._name!r} was already joined")
        self._joined = True
        self._thread.join()

    def is_alive(self) -> bool:
        return self._thread.is_alive()


class ThreadFactoryImplPosix(ThreadFactory):
    """Creates :class:`ThreadImplPosix` threads."""

    __slots__ = ()

    def create_thread(
        self, routine: Callable[[], None], *, name: str = "", priority: int | None = None
    ) -> ThreadImplPosix:
        return ThreadImplPosix(routine, name, priority)

    def current_thread_id(self) -> int:
        return threading.get_native_id()
