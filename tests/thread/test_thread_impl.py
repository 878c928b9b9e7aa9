"""ThreadImplPosix / ThreadFactoryImplPosix: names, ids, join rules, priority."""

import os
import sys
import threading

import pytest

from pyevent_envoy.thread import ThreadFactoryImplPosix, current_thread_name
from pyevent_envoy.thread.thread import MAX_THREAD_NAME_LENGTH


def test_thread_impl_sets_os_thread_name():
    seen = []
    thread = ThreadFactoryImplPosix().create_thread(lambda: seen.append(current_thread_name()), name="wrk:worker_0")
    thread.join()
    assert seen == ["wrk:worker_0"]
    assert thread.name == "wrk:worker_0"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/<pid>/task is Linux-only")
def test_thread_impl_name_visible_in_proc():
    ready = threading.Event()
    release = threading.Event()
    ids = []

    def routine():
        ids.append(threading.get_native_id())
        ready.set()
        release.wait(30)

    thread = ThreadFactoryImplPosix().create_thread(routine, name="wrk:proc_check")
    try:
        assert ready.wait(30)
        with open(f"/proc/{os.getpid()}/task/{ids[0]}/comm") as comm:
            assert comm.read().strip() == "wrk:proc_check"
        assert thread.native_id == ids[0]
    finally:
        release.set()
        thread.join()


def test_thread_impl_truncates_long_names_to_kernel_limit():
    seen = []
    name = "wrk:a_very_long_worker_name"
    thread = ThreadFactoryImplPosix().create_thread(lambda: seen.append(current_thread_name()), name=name)
    thread.join()
    assert seen == [name[:MAX_THREAD_NAME_LENGTH]]
    assert thread.name == name[:MAX_THREAD_NAME_LENGTH]


def test_thread_impl_starts_immediately_and_join_waits():
    started = threading.Event()
    finished = []
    release = threading.Event()

    def routine():
        started.set()
        release.wait(30)
        finished.append(True)

    thread = ThreadFactoryImplPosix().create_thread(routine, name="t")
    assert started.wait(30)  # running before create_thread's caller does anything else
    assert thread.is_alive()
    release.set()
    thread.join()
    assert finished == [True]
    assert not thread.is_alive()


def test_thread_impl_join_twice_raises():
    thread = ThreadFactoryImplPosix().create_thread(lambda: None, name="t")
    thread.join()
    with pytest.raises(RuntimeError, match="already joined"):
        thread.join()


def test_thread_impl_join_from_itself_raises():
    errors = []
    holder = []
    go = threading.Event()

    def routine():
        go.wait(30)
        try:
            holder[0].join()
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = ThreadFactoryImplPosix().create_thread(routine, name="self_join")
    holder.append(thread)
    go.set()
    thread.join()
    assert errors and "cannot join itself" in errors[0]


def test_thread_factory_current_thread_id_is_native_id():
    factory = ThreadFactoryImplPosix()
    assert factory.current_thread_id() == threading.get_native_id()
    ids = []
    thread = factory.create_thread(lambda: ids.append(factory.current_thread_id()), name="t")
    thread.join()
    assert ids == [thread.native_id]
    assert ids[0] != threading.get_native_id()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux-only")
def test_thread_impl_applies_priority():
    seen = []
    thread = ThreadFactoryImplPosix().create_thread(
        lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())), name="nice", priority=5
    )
    thread.join()
    assert seen == [5]
