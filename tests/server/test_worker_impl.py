"""WorkerImpl: thread naming, start/stop, on_started ordering, posts from many threads."""

import threading

import pytest

from pyevent_envoy.server import WorkerImpl
from pyevent_envoy.thread import current_thread_name

pytestmark = pytest.mark.timeout(60)


def run_on(worker, fn):
    result = []
    done = threading.Event()

    def call():
        result.append(fn())
        done.set()

    worker.dispatcher.post(call)
    assert done.wait(30)
    return result[0]


def test_worker_runs_on_thread_named_like_envoy():
    worker = WorkerImpl("worker_0")
    worker.start()
    try:
        assert run_on(worker, current_thread_name) == "wrk:worker_0"
        assert run_on(worker, worker.dispatcher.is_thread_safe) is True
        assert worker.dispatcher.name == "worker_0"
        assert worker.thread.name == "wrk:worker_0"
    finally:
        worker.stop()


def test_worker_on_started_runs_before_other_posts_on_the_worker_thread():
    worker = WorkerImpl("worker_0")
    order = []
    worker.dispatcher.post(lambda: order.append("queued-before-start"))
    worker.start(lambda: order.append(("started", current_thread_name())))
    run_on(worker, lambda: order.append("after"))
    worker.stop()
    # Posts queued before start run first, in FIFO order, then on_started.
    assert order == ["queued-before-start", ("started", "wrk:worker_0"), "after"]


def test_worker_stop_is_idempotent_and_joins():
    worker = WorkerImpl("worker_0")
    worker.start()
    thread = worker.thread
    worker.stop()
    assert not thread.is_alive()
    worker.stop()
    assert worker.dispatcher.closed


def test_worker_stop_before_start_releases_the_dispatcher():
    worker = WorkerImpl("worker_0")
    worker.stop()
    worker.stop()
    assert worker.dispatcher.closed
    with pytest.raises(RuntimeError, match="start\\(\\) runs once"):
        worker.start()


def test_worker_start_twice_raises():
    worker = WorkerImpl("worker_0")
    worker.start()
    try:
        with pytest.raises(RuntimeError):
            worker.start()
    finally:
        worker.stop()


def test_worker_idle_loop_waits_without_events_until_stopped():
    worker = WorkerImpl("worker_0")
    worker.start()
    # RUN_UNTIL_EXIT: nothing registered, yet the loop keeps serving posts
    assert run_on(worker, lambda: 41 + 1) == 42
    assert run_on(worker, lambda: worker.dispatcher.statistics().events_armed) == 0
    worker.stop()


def test_worker_posts_from_many_threads_all_run():
    worker = WorkerImpl("worker_0")
    worker.start()
    counts = [0] * 4
    per_thread = 5000

    def producer(i):
        for _ in range(per_thread):
            worker.dispatcher.post(lambda i=i: counts.__setitem__(i, counts[i] + 1))

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run_on(worker, lambda: None)  # FIFO: everything posted before has run
    worker.stop()
    assert counts == [per_thread] * 4


def test_worker_closes_leftover_events_with_resource_warning_on_stop():
    worker = WorkerImpl("worker_0")
    worker.start()
    timers = []
    run_on(worker, lambda: timers.append(worker.dispatcher.create_timer(lambda: None)) or timers[0].enable_timer(3600))
    with pytest.warns(ResourceWarning, match="TimerImpl still enabled"):
        worker.stop()
    assert not timers[0].enabled()


def test_worker_context_manager_stops():
    with WorkerImpl("worker_ctx") as worker:
        worker.start()
        assert run_on(worker, current_thread_name) == "wrk:worker_ctx"
    assert worker.dispatcher.closed
