"""InstanceImpl / SlotImpl: set, get, run_on_all_threads with completion, slot reuse, shutdown."""

import threading

import pytest

from pyevent_envoy.event import DispatcherImpl, RunType
from pyevent_envoy.server import WorkerImpl
from pyevent_envoy.thread_local import InstanceImpl

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def tls_setup():
    """A main dispatcher registered as main, and three started workers."""
    tls = InstanceImpl()
    main = DispatcherImpl("main_thread")
    tls.register_thread(main, main=True)
    workers = [WorkerImpl(f"worker_{i}", tls=tls) for i in range(3)]
    for worker in workers:
        worker.start()
    yield tls, main, workers
    tls.shutdown_global_threading()
    for worker in workers:
        worker.stop()
    tls.shutdown_thread()
    main.close()


def on_each_worker(workers, fn):
    """Run fn() on every worker's thread and return the results, in worker order."""
    results = [None] * len(workers)
    done = threading.Barrier(len(workers) + 1, timeout=30)

    def make(i):
        def run():
            results[i] = fn()
            done.wait()

        return run

    for i, worker in enumerate(workers):
        worker.dispatcher.post(make(i))
    done.wait()
    return results


def test_slot_set_reaches_every_thread_with_its_dispatcher(tls_setup):
    tls, main, workers = tls_setup
    slot = tls.allocate_slot()
    slot.set(lambda dispatcher: ("config-v1", dispatcher.name))
    assert slot.get() == ("config-v1", "main_thread")
    seen = on_each_worker(workers, slot.get)
    assert seen == [("config-v1", f"worker_{i}") for i in range(3)]
    # each value was built on its own thread
    assert on_each_worker(workers, lambda: tls.dispatcher().name) == [w.name for w in workers]
    slot.close()


def test_slot_shared_immutable_snapshot_is_the_same_object(tls_setup):
    tls, _main, workers = tls_setup
    snapshot = ("routes", ("a", "b"))
    slot = tls.allocate_slot()
    slot.set(lambda _dispatcher: snapshot)
    assert all(value is snapshot for value in on_each_worker(workers, slot.get))
    slot.close()


def test_run_on_all_threads_runs_main_first_then_workers_then_completion_on_main(tls_setup):
    tls, main, workers = tls_setup
    slot = tls.allocate_slot()
    slot.set(lambda _d: {"hits": 0})
    order = []
    lock = threading.Lock()
    main_ident = threading.get_ident()

    def update(value):
        value["hits"] += 1
        with lock:
            order.append(tls.dispatcher().name)

    def complete():
        assert threading.get_ident() == main_ident
        order.append("complete")
        main.exit()

    slot.run_on_all_threads(update, complete)
    assert order[0] == "main_thread"  # inline on main, before any worker and before returning
    main.run(RunType.RUN_UNTIL_EXIT)
    assert order[0] == "main_thread" and order[-1] == "complete"
    assert sorted(order[1:-1]) == ["worker_0", "worker_1", "worker_2"]
    assert [v["hits"] for v in on_each_worker(workers, slot.get)] == [1, 1, 1]
    slot.close()


def test_run_on_all_threads_passes_none_where_unset(tls_setup):
    tls, main, workers = tls_setup
    slot = tls.allocate_slot()
    seen = []
    lock = threading.Lock()

    def update(value):
        with lock:
            seen.append(value)

    slot.run_on_all_threads(update, main.exit)
    main.run(RunType.RUN_UNTIL_EXIT)
    assert seen == [None] * 4
    slot.close()


def test_get_without_value_raises_lookup_error(tls_setup):
    tls, _main, workers = tls_setup
    slot = tls.allocate_slot()
    with pytest.raises(LookupError):
        slot.get()
    assert not slot.current_thread_registered()
    assert on_each_worker(workers, slot.current_thread_registered) == [False] * 3
    slot.close()


def test_closed_slot_index_is_cleared_everywhere_and_reused(tls_setup):
    tls, _main, workers = tls_setup
    first = tls.allocate_slot()
    first.set(lambda _d: "old")
    index = first.index
    first.close()
    first.close()  # idempotent
    second = tls.allocate_slot()
    assert second.index == index
    # the clear was posted before anything the new slot posts: nothing stale is visible
    assert on_each_worker(workers, second.current_thread_registered) == [False] * 3
    second.set(lambda _d: "new")
    assert on_each_worker(workers, second.get) == ["new"] * 3
    second.close()


def test_set_posted_after_close_is_skipped(tls_setup):
    tls, _main, workers = tls_setup
    gate = threading.Event()
    for worker in workers:
        worker.dispatcher.post(lambda: gate.wait(30))  # hold the workers
    slot = tls.allocate_slot()
    calls = []
    slot.set(lambda d: calls.append(d.name) or "v")
    index = slot.index
    del slot  # the posted closures hold only a weak reference
    gate.set()
    results = on_each_worker(workers, lambda: index < len(tls._data()) and tls._data()[index] == "v")
    assert calls == ["main_thread"]
    assert results == [False] * 3


def test_slot_operations_off_main_thread_raise(tls_setup):
    tls, _main, workers = tls_setup
    slot = tls.allocate_slot()

    def try_set():
        try:
            slot.set(lambda _d: 1)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert all("main thread" in message for message in on_each_worker(workers, try_set))
    slot.close()


def test_register_before_main_raises():
    tls = InstanceImpl()
    dispatcher = DispatcherImpl("w")
    with pytest.raises(RuntimeError, match="register the main thread first"):
        tls.register_thread(dispatcher, main=False)
    with pytest.raises(RuntimeError, match="register the main thread first"):
        tls.allocate_slot()
    dispatcher.close()


def test_dispatcher_lookup_on_unregistered_thread_raises():
    tls = InstanceImpl()
    with pytest.raises(LookupError):
        tls.dispatcher()


def test_shutdown_thread_drops_values_and_completion_counts_stopped_workers(tls_setup):
    tls, main, workers = tls_setup
    slot = tls.allocate_slot()
    slot.set(lambda d: d.name)
    workers[0].stop()  # its thread dropped its values and closed its dispatcher
    done = []
    slot.run_on_all_threads(lambda _v: None, lambda: (done.append(True), main.exit()))
    main.run(RunType.RUN_UNTIL_EXIT)
    assert done == [True]
    tls.shutdown_thread()
    with pytest.raises(LookupError):
        slot.get()
    slot.close()
