"""The dispatcher contract: iteration order, posts, deferred deletes, run modes, errors, lifetimes.

Every test taking ``dispatcher`` runs on DispatcherImpl and on ReferenceDispatcher;
tests named ``test_dispatcher_impl_*`` are about the libevent implementation alone.
"""

import gc
import os
import subprocess
import sys
import threading
import time
import weakref

import pytest

from pyevent_envoy.errors import DispatcherClosedError
from pyevent_envoy.event import DispatcherImpl, FileReadyType, FileTriggerType, RunType
from pyevent_envoy.event.libevent_scheduler import MAX_SAME_ITERATION_ROUNDS
from pyevent_envoy.testing import ReferenceDispatcher, Recorder, drain_socket, run_nonblock, socketpair_nonblocking

READ = FileReadyType.READ
LEVEL = FileTriggerType.LEVEL
EDGE = FileTriggerType.EDGE


class Deletable:
    """Records its deferred-delete hooks into a shared log."""

    def __init__(self, name, log, on_close=None):
        self.name = name
        self.log = log
        self.on_close = on_close

    def delete_is_pending(self):
        self.log.append(("pending", self.name))

    def close(self):
        self.log.append(("closed", self.name))
        if self.on_close is not None:
            self.on_close()


class ExitLater:
    """Calls ``dispatcher.exit()`` from a timer thread after ``delay`` seconds, unless the block ends first.

    Used both to stop a loop on purpose and as a guard against a hang
    (then ``fired`` must stay unset).
    """

    def __init__(self, dispatcher, delay):
        self.fired = threading.Event()
        self._dispatcher = dispatcher
        self._timer = threading.Timer(delay, self._fire)

    def _fire(self):
        self.fired.set()
        self._dispatcher.exit()

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc_info):
        self._timer.cancel()
        self._timer.join()


# ordering within an iteration


def test_dispatcher_posts_queued_before_run_run_before_any_other_event(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    b.send(b"x")
    fe = dispatcher.create_file_event(a, rec.callback("fd"), LEVEL, READ)
    timer = dispatcher.create_timer(rec.callback("timer"))
    timer.enable_timer(0)
    nxt = dispatcher.create_schedulable_callback(rec.callback("next"))
    nxt.schedule_callback_next_iteration()
    cur = dispatcher.create_schedulable_callback(rec.callback("current"))
    cur.schedule_callback_current_iteration()
    dispatcher.post(rec.callback("post"))

    run_nonblock(dispatcher)

    # posts, then one iteration: fd events, expired timers, next-iteration work, same-iteration work
    assert rec.labels == ["post", "fd", "timer", "next", "current"]
    for event in (fe, timer, nxt, cur):
        event.close()


def test_dispatcher_iteration_order_current_vs_next_vs_zero_delay_timer(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fd", lambda ready: drain_socket(a)), LEVEL, READ)
    injected = dispatcher.create_file_event(a, rec.callback("activated"), LEVEL, 0)
    timer = dispatcher.create_timer(rec.callback("timer"))
    nxt = dispatcher.create_schedulable_callback(rec.callback("next"))
    cur = dispatcher.create_schedulable_callback(rec.callback("current"))

    def schedule_everything():  # a timer callback: in the middle of an iteration
        rec.record("start")
        timer.enable_timer(0)
        nxt.schedule_callback_next_iteration()
        injected.activate(READ)
        cur.schedule_callback_current_iteration()
        b.send(b"x")  # readable only at the next poll

    starter = dispatcher.create_timer(schedule_everything)
    starter.enable_timer(0)
    run_nonblock(dispatcher)
    # Only current-iteration work runs in the iteration that scheduled it.
    assert rec.labels == ["start", "current"]
    rec.clear()

    run_nonblock(dispatcher)
    # The next iteration: its poll's fd events, then the zero-delay timer, then
    # next-iteration work (no order promised among those).
    assert rec.labels[:2] == ["fd", "timer"]
    assert sorted(rec.labels[2:]) == ["activated", "next"]
    assert rec.args("activated") == [(READ,)]
    rec.clear()
    run_nonblock(dispatcher, 2)
    assert rec.labels == []
    for event in (fe, injected, timer, nxt, cur, starter):
        event.close()


def test_dispatcher_zero_delay_timer_fires_after_the_next_poll_not_in_the_current_iteration(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fd", lambda ready: drain_socket(a)), LEVEL, READ)
    zero = dispatcher.create_timer(rec.callback("zero"))

    def first():
        rec.record("first")
        zero.enable_timer(0)
        b.send(b"x")

    starter = dispatcher.create_timer(first)
    starter.enable_timer(0)
    run_nonblock(dispatcher)
    assert rec.labels == ["first"]
    run_nonblock(dispatcher)
    assert rec.labels == ["first", "fd", "zero"]
    for event in (fe, zero, starter):
        event.close()


def test_dispatcher_same_iteration_phase_redrains_a_bounded_number_of_rounds(dispatcher):
    runs = []

    def again():
        runs.append(1)
        cb.schedule_callback_current_iteration()

    cb = dispatcher.create_schedulable_callback(again)
    cb.schedule_callback_current_iteration()
    run_nonblock(dispatcher)
    assert len(runs) == MAX_SAME_ITERATION_ROUNDS
    run_nonblock(dispatcher)
    assert len(runs) == 2 * MAX_SAME_ITERATION_ROUNDS
    cb.close()


@pytest.mark.timeout(60)
def test_dispatcher_callbacks_rescheduling_themselves_forever_still_let_a_socket_be_served(dispatcher, sockpair):
    a, b = sockpair
    counts = {"current": 0, "post": 0, "timer": 0, "next": 0}
    served = []

    def current_forever():
        counts["current"] += 1
        current.schedule_callback_current_iteration()

    def next_forever():
        counts["next"] += 1
        nxt.schedule_callback_next_iteration()

    def post_forever():
        counts["post"] += 1
        dispatcher.post(post_forever)

    def timer_forever():
        counts["timer"] += 1
        timer.enable_timer(0)

    def on_readable(ready):
        served.append(drain_socket(a))
        dispatcher.exit()

    current = dispatcher.create_schedulable_callback(current_forever)
    nxt = dispatcher.create_schedulable_callback(next_forever)
    timer = dispatcher.create_timer(timer_forever)
    fe = dispatcher.create_file_event(a, on_readable, LEVEL, READ)
    current.schedule_callback_current_iteration()
    nxt.schedule_callback_next_iteration()
    timer.enable_timer(0)
    dispatcher.post(post_forever)

    def wait_then_write():
        while counts["current"] < 1000:  # the busy callbacks are spinning
            time.sleep(0.001)
        b.send(b"hello")

    writer = threading.Thread(target=wait_then_write)
    writer.start()
    with ExitLater(dispatcher, 30) as guard:  # fires only if the socket is starved
        dispatcher.run(RunType.RUN_UNTIL_EXIT)
    writer.join()
    assert served == [b"hello"] and not guard.fired.is_set()
    assert all(count > 0 for count in counts.values()), counts
    for event in (current, nxt, timer, fe):
        event.close()
    with pytest.warns(ResourceWarning, match="posted callback"):  # the forever-post still queued
        dispatcher.close()


# posts


def test_dispatcher_post_runs_fifo_on_the_dispatcher_thread(dispatcher):
    seen = []
    for i in range(100):
        dispatcher.post(lambda i=i: seen.append((i, threading.get_ident())))
    assert dispatcher.statistics().posts_pending == 100
    run_nonblock(dispatcher)
    assert [i for i, _tid in seen] == list(range(100))
    assert {tid for _i, tid in seen} == {threading.get_ident()}
    assert dispatcher.statistics().posts_pending == 0


def test_dispatcher_post_from_a_callback_runs_in_the_same_iteration(dispatcher):
    rec = Recorder()
    timer = dispatcher.create_timer(lambda: (rec.record("timer"), dispatcher.post(rec.callback("post"))))
    timer.enable_timer(0)
    run_nonblock(dispatcher)
    assert rec.labels == ["timer", "post"]
    timer.close()


def test_dispatcher_posts_purge_deferred_deletes_first(dispatcher):
    log = []

    def in_callback():
        dispatcher.post(lambda: log.append("post"))
        dispatcher.deferred_delete(Deletable("obj", log))

    timer = dispatcher.create_timer(in_callback)
    timer.enable_timer(0)
    run_nonblock(dispatcher)
    # The post group was scheduled first, but a post drain releases deferred objects before running posts.
    assert log == [("pending", "obj"), ("closed", "obj"), "post"]
    timer.close()


@pytest.mark.timeout(180)
def test_dispatcher_post_from_8_threads_none_lost_fifo_per_thread(dispatcher):
    threads_n, per_thread = 8, 50_000
    total = threads_n * per_thread
    results = [[] for _ in range(threads_n)]
    done = [0]
    start = threading.Barrier(threads_n + 1)

    def make_cb(seen, i):
        def cb():
            seen.append(i)
            done[0] += 1
            if done[0] == total:
                dispatcher.exit()

        return cb

    def producer(index):
        seen = results[index]
        post = dispatcher.post
        start.wait()
        for i in range(per_thread):
            post(make_cb(seen, i))

    producers = [threading.Thread(target=producer, args=(k,), name=f"producer-{k}") for k in range(threads_n)]
    for thread in producers:
        thread.start()
    with ExitLater(dispatcher, 150) as guard:  # fires only if posts were lost
        start.wait()
        dispatcher.run(RunType.RUN_UNTIL_EXIT)
    for thread in producers:
        thread.join()
    assert not guard.fired.is_set(), f"only {done[0]} of {total} posts ran"
    assert done[0] == total
    for seen in results:
        assert seen == list(range(per_thread))
    assert dispatcher.statistics().posts_pending == 0


@pytest.mark.timeout(120)
def test_dispatcher_post_never_loses_a_wake_when_posts_meet_a_drain(dispatcher):
    """One post at a time, each waited for: a post that lands while a drain is
    clearing the wake flag must still wake the loop (a lost wake hangs here)."""
    rounds = 5000
    ran = threading.Semaphore(0)
    lost = []

    def producer():
        for _ in range(rounds):
            dispatcher.post(ran.release)
            if not ran.acquire(timeout=10):
                lost.append(True)
                break
        dispatcher.post(dispatcher.exit)

    thread = threading.Thread(target=producer)
    thread.start()
    with ExitLater(dispatcher, 100) as guard:
        dispatcher.run(RunType.RUN_UNTIL_EXIT)
    thread.join()
    assert not lost and not guard.fired.is_set()
    assert dispatcher.statistics().posts_pending == 0


def test_dispatcher_post_wakes_a_blocked_loop_from_another_thread(dispatcher):
    ran_on = []

    def post_later():
        time.sleep(0.05)
        dispatcher.post(lambda: (ran_on.append(threading.get_ident()), dispatcher.exit()))

    thread = threading.Thread(target=post_later)
    thread.start()
    dispatcher.run(RunType.RUN_UNTIL_EXIT)
    thread.join()
    assert ran_on == [threading.get_ident()]


def test_dispatcher_post_after_close_raises_dispatcher_closed_error(dispatcher):
    dispatcher.close()
    with pytest.raises(DispatcherClosedError):
        dispatcher.post(lambda: None)


def test_dispatcher_raising_post_reaches_error_handler_and_later_posts_run(dispatcher):
    errors, seen = [], []
    dispatcher.set_error_handler(errors.append)
    dispatcher.post(lambda: seen.append(1))
    dispatcher.post(lambda: 1 / 0)
    dispatcher.post(lambda: seen.append(3))
    run_nonblock(dispatcher)
    assert seen == [1, 3]
    assert [type(e) for e in errors] == [ZeroDivisionError]


# deferred deletion (Envoy's DeferredDeleteTest)


def test_dispatcher_deferred_delete_calls_delete_is_pending_now_and_close_later_fifo(dispatcher):
    log = []
    for name in ("a", "b", "c"):
        dispatcher.deferred_delete(Deletable(name, log))
    assert log == [("pending", "a"), ("pending", "b"), ("pending", "c")]
    assert dispatcher.statistics().deferred_deletes_pending == 3
    dispatcher.clear_deferred_delete_list()
    assert log[3:] == [("closed", "a"), ("closed", "b"), ("closed", "c")]
    assert dispatcher.statistics().deferred_deletes_pending == 0


def test_dispatcher_deferred_delete_nested_during_a_purge_needs_a_second_clear(dispatcher):
    log = []
    nested = Deletable("nested", log)
    dispatcher.deferred_delete(Deletable("a", log, on_close=lambda: dispatcher.deferred_delete(nested)))
    dispatcher.deferred_delete(Deletable("b", log))
    dispatcher.clear_deferred_delete_list()
    assert [entry for entry in log if entry[0] == "closed"] == [("closed", "a"), ("closed", "b")]
    assert ("pending", "nested") in log  # called at once, even during a purge
    assert dispatcher.statistics().deferred_deletes_pending == 1
    dispatcher.clear_deferred_delete_list()
    assert log[-1] == ("closed", "nested")


def test_dispatcher_clear_deferred_delete_list_is_a_no_op_when_reentered(dispatcher):
    log = []
    dispatcher.deferred_delete(Deletable("a", log, on_close=dispatcher.clear_deferred_delete_list))
    dispatcher.deferred_delete(Deletable("b", log))
    dispatcher.clear_deferred_delete_list()
    assert [entry for entry in log if entry[0] == "closed"] == [("closed", "a"), ("closed", "b")]


def test_dispatcher_deferred_delete_from_a_callback_releases_after_it_returns_in_the_same_iteration(dispatcher):
    log = []
    nested = Deletable("nested", log)

    def callback():
        dispatcher.deferred_delete(Deletable("a", log, on_close=lambda: dispatcher.deferred_delete(nested)))
        dispatcher.deferred_delete(Deletable("b", log))
        log.append("callback returns")

    timer = dispatcher.create_timer(callback)
    timer.enable_timer(0)
    run_nonblock(dispatcher)
    assert log == [
        ("pending", "a"),
        ("pending", "b"),
        "callback returns",
        ("closed", "a"),
        ("pending", "nested"),
        ("closed", "b"),
        ("closed", "nested"),  # its own purge, still in the same iteration
    ]
    timer.close()


def test_dispatcher_deferred_delete_accepts_objects_without_hooks(dispatcher):
    dispatcher.deferred_delete(object())
    assert dispatcher.statistics().deferred_deletes_pending == 1
    run_nonblock(dispatcher)
    assert dispatcher.statistics().deferred_deletes_pending == 0


def test_dispatcher_deferred_close_raising_reaches_error_handler_and_the_rest_are_released(dispatcher):
    errors, log = [], []
    dispatcher.set_error_handler(errors.append)

    class Broken:
        def close(self):
            raise RuntimeError("close failed")

    dispatcher.deferred_delete(Broken())
    dispatcher.deferred_delete(Deletable("after", log))
    run_nonblock(dispatcher)
    assert [str(e) for e in errors] == ["close failed"]
    assert ("closed", "after") in log


def test_dispatcher_close_releases_pending_deferred_deletes(dispatcher):
    log = []
    dispatcher.deferred_delete(Deletable("a", log))
    dispatcher.close()
    assert log == [("pending", "a"), ("closed", "a")]


# run modes and exit


def test_dispatcher_run_block_returns_at_once_with_nothing_registered(dispatcher):
    started = time.monotonic()
    dispatcher.run(RunType.BLOCK)
    assert time.monotonic() - started < 5  # generous: "at once"


def test_dispatcher_run_block_returns_when_nothing_is_left(dispatcher):
    rec = Recorder()
    timer = dispatcher.create_timer(rec.callback("timer"))
    timer.enable_timer(0.01)
    dispatcher.run(RunType.BLOCK)
    assert rec.labels == ["timer"]
    timer.close()


def test_dispatcher_run_block_waits_for_an_enabled_file_event(dispatcher, sockpair):
    a, b = sockpair
    got = []

    def on_readable(ready):
        got.append(drain_socket(a))
        fe.close()  # nothing left: BLOCK returns

    fe = dispatcher.create_file_event(a, on_readable, LEVEL, READ)
    writer = threading.Timer(0.05, lambda: b.send(b"ping"))
    writer.start()
    dispatcher.run(RunType.BLOCK)
    writer.join()
    assert got == [b"ping"]


def test_dispatcher_run_until_exit_with_nothing_registered_waits_for_exit(dispatcher):
    with ExitLater(dispatcher, 0.1) as exiter:
        dispatcher.run(RunType.RUN_UNTIL_EXIT)
        assert exiter.fired.is_set()  # did not return before exit()


def test_dispatcher_exit_from_another_thread_while_blocked_on_a_timer(dispatcher):
    rec = Recorder()
    timer = dispatcher.create_timer(rec.callback("timer"))
    timer.enable_timer(3600)
    with ExitLater(dispatcher, 0.05) as exiter:
        dispatcher.run(RunType.BLOCK)
        assert exiter.fired.is_set()
    assert rec.labels == [] and timer.enabled()
    timer.close()


def test_dispatcher_exit_before_run_returns_after_one_iteration(dispatcher):
    rec = Recorder()
    later = dispatcher.create_schedulable_callback(rec.callback("later"))

    def first():
        rec.record("first")
        later.schedule_callback_next_iteration()

    nxt = dispatcher.create_schedulable_callback(first)
    nxt.schedule_callback_next_iteration()
    dispatcher.exit()
    dispatcher.run(RunType.RUN_UNTIL_EXIT)  # nothing registered: would wait forever without the exit
    assert rec.labels == ["first"]
    # The request was consumed: the next run is a normal one.
    run_nonblock(dispatcher)
    assert rec.labels == ["first", "later"]
    nxt.close()
    later.close()


def test_dispatcher_exit_inside_a_callback_finishes_the_current_iteration(dispatcher):
    rec = Recorder()
    current = dispatcher.create_schedulable_callback(rec.callback("current"))
    nxt = dispatcher.create_schedulable_callback(rec.callback("next"))

    def stop():
        rec.record("timer")
        dispatcher.exit()
        current.schedule_callback_current_iteration()
        nxt.schedule_callback_next_iteration()

    timer = dispatcher.create_timer(stop)
    timer.enable_timer(0)
    dispatcher.run(RunType.RUN_UNTIL_EXIT)
    assert rec.labels == ["timer", "current"]
    run_nonblock(dispatcher)
    assert rec.labels == ["timer", "current", "next"]
    for event in (current, nxt, timer):
        event.close()


def test_dispatcher_run_while_running_raises_runtime_error(dispatcher):
    errors = []
    dispatcher.set_error_handler(errors.append)
    dispatcher.post(lambda: dispatcher.run(RunType.NON_BLOCK))
    run_nonblock(dispatcher)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)


def test_dispatcher_run_rejects_a_run_type_that_is_not_a_run_type(dispatcher):
    with pytest.raises(TypeError):
        dispatcher.run("block")
    with pytest.raises(TypeError):
        dispatcher.run(0)


def test_dispatcher_run_nonblock_does_not_wait_for_a_pending_timer(dispatcher):
    rec = Recorder()
    timer = dispatcher.create_timer(rec.callback("timer"))
    timer.enable_timer(3600)
    started = time.monotonic()
    run_nonblock(dispatcher, 3)
    assert time.monotonic() - started < 10
    assert rec.labels == [] and timer.enabled()
    timer.close()


# threads and time


def test_dispatcher_is_thread_safe_on_any_thread_before_the_first_run(dispatcher):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(dispatcher.is_thread_safe()))
    thread.start()
    thread.join()
    assert seen == [True] and dispatcher.is_thread_safe()


def test_dispatcher_is_thread_safe_false_on_another_thread_while_running(dispatcher):
    seen = {}

    def check():
        seen["loop"] = dispatcher.is_thread_safe()
        other = threading.Thread(target=lambda: seen.__setitem__("other", dispatcher.is_thread_safe()))
        other.start()
        other.join()

    dispatcher.post(check)
    run_nonblock(dispatcher)
    assert seen == {"loop": True, "other": False}


def test_dispatcher_approximate_monotonic_time_advances_with_iterations(dispatcher):
    dispatcher.update_approximate_monotonic_time()
    before = dispatcher.approximate_monotonic_time()
    assert abs(before - time.monotonic()) < 5
    timer = dispatcher.create_timer(lambda: None)
    timer.enable_timer(0.05)
    dispatcher.run(RunType.BLOCK)
    after = dispatcher.approximate_monotonic_time()
    # The coarse clock libevent uses may fire a timer up to a few ms early.
    assert after - before >= 0.03
    assert after <= time.monotonic()
    timer.close()


def test_dispatcher_approximate_monotonic_time_is_frozen_within_an_iteration(dispatcher):
    seen = []

    def callback():
        seen.append(dispatcher.approximate_monotonic_time())
        time.sleep(0.02)
        seen.append(dispatcher.approximate_monotonic_time())
        dispatcher.update_approximate_monotonic_time()
        seen.append(dispatcher.approximate_monotonic_time())

    dispatcher.post(callback)
    run_nonblock(dispatcher)
    assert seen[0] == seen[1]
    assert seen[2] - seen[1] >= 0.015


def test_dispatcher_approximate_now_is_the_same_clock_as_an_attribute(dispatcher):
    pairs = []

    def note():
        pairs.append((dispatcher.approximate_now, dispatcher.approximate_monotonic_time()))

    note()  # before any iteration
    dispatcher.post(note)
    run_nonblock(dispatcher)
    timer = dispatcher.create_timer(note)
    timer.enable_timer(0.02)
    dispatcher.run(RunType.BLOCK)
    dispatcher.update_approximate_monotonic_time()
    note()
    timer.close()
    assert len(pairs) == 4
    assert all(attribute == method for attribute, method in pairs)
    assert pairs[2][0] - pairs[1][0] >= 0.01  # refreshed by the poll that ran the timer


# errors


def test_dispatcher_raising_callback_reaches_error_handler_and_the_loop_continues(dispatcher):
    errors, rec = [], Recorder()
    dispatcher.set_error_handler(errors.append)
    boom = ValueError("boom")

    def raising():
        rec.record("raising")
        raise boom

    timers = [dispatcher.create_timer(f) for f in (rec.callback("t1"), raising, rec.callback("t3"))]
    for timer in timers:
        timer.enable_timer(0)
    current = dispatcher.create_schedulable_callback(rec.callback("current"))
    current.schedule_callback_current_iteration()
    run_nonblock(dispatcher)
    assert errors == [boom]
    assert sorted(rec.labels) == ["current", "raising", "t1", "t3"]
    for event in (*timers, current):
        event.close()


def test_dispatcher_default_error_handler_logs_with_traceback_and_keeps_running(dispatcher, caplog):
    rec = Recorder()
    dispatcher.post(lambda: 1 / 0)
    dispatcher.post(rec.callback("after"))
    with caplog.at_level("ERROR", logger="pyevent_envoy.event"):
        run_nonblock(dispatcher)
    assert rec.labels == ["after"]
    records = [r for r in caplog.records if r.name == "pyevent_envoy.event"]
    assert len(records) == 1
    assert records[0].levelname == "ERROR"
    assert records[0].exc_info[0] is ZeroDivisionError
    assert "test" in records[0].getMessage()  # names the dispatcher


def test_dispatcher_error_handler_reraising_stops_run_and_keeps_ready_work(dispatcher):
    rec = Recorder()

    def handler(exc):
        raise exc

    dispatcher.set_error_handler(handler)
    nxt = dispatcher.create_schedulable_callback(rec.callback("next"))
    nxt.schedule_callback_next_iteration()  # queued before the pass that raises
    timer = dispatcher.create_timer(lambda: 1 / 0)
    timer.enable_timer(0)
    with pytest.raises(ZeroDivisionError):
        run_nonblock(dispatcher)
    assert rec.labels == []
    run_nonblock(dispatcher)
    assert rec.labels == ["next"]
    nxt.close()
    timer.close()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_dispatcher_base_exception_propagates_and_other_ready_timers_run_next_time(dispatcher, exc_type):
    fired = []

    def make(i):
        def cb():
            fired.append(i)
            if len(fired) == 1:
                raise exc_type()

        return cb

    timers = [dispatcher.create_timer(make(i)) for i in range(5)]
    for timer in timers:
        timer.enable_timer(0)
    with pytest.raises(exc_type):
        run_nonblock(dispatcher)
    assert len(fired) == 1
    run_nonblock(dispatcher)
    assert sorted(fired) == [0, 1, 2, 3, 4]  # each exactly once
    run_nonblock(dispatcher)
    assert len(fired) == 5
    for timer in timers:
        timer.close()


def test_dispatcher_keyboard_interrupt_keeps_other_ready_edge_file_events(dispatcher):
    pairs = [socketpair_nonblocking() for _ in range(3)]
    fired = []

    def make(i):
        def cb(ready):
            fired.append(i)
            if len(fired) == 1:
                raise KeyboardInterrupt

        return cb

    events = [dispatcher.create_file_event(a, make(i), EDGE, READ) for i, (a, _b) in enumerate(pairs)]
    for _a, b in pairs:
        b.send(b"x")
    with pytest.raises(KeyboardInterrupt):
        run_nonblock(dispatcher)
    assert len(fired) == 1
    # Edge-triggered: the kernel will not report these again; the dispatcher kept them.
    run_nonblock(dispatcher)
    assert sorted(fired) == [0, 1, 2]
    for event in events:
        event.close()
    for a, b in pairs:
        a.close()
        b.close()


def test_dispatcher_keyboard_interrupt_in_the_last_ready_event_keeps_next_iteration_work(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    nxt = dispatcher.create_schedulable_callback(rec.callback("next"))
    nxt.schedule_callback_next_iteration()  # queued before the pass that raises
    fe = dispatcher.create_file_event(a, lambda ready: rec.record("fd"), EDGE, READ)

    def last():  # fd events run before timers: this is the pass's last record
        rec.record("timer")
        raise KeyboardInterrupt

    timer = dispatcher.create_timer(last)
    b.send(b"x")
    timer.enable_timer(0)
    with pytest.raises(KeyboardInterrupt):
        run_nonblock(dispatcher)
    assert rec.labels == ["fd", "timer"]
    run_nonblock(dispatcher)
    assert rec.labels == ["fd", "timer", "next"]
    assert not nxt.enabled()
    run_nonblock(dispatcher)
    assert rec.labels == ["fd", "timer", "next"]  # and only once
    for event in (nxt, timer, fe):
        event.close()


def test_dispatcher_keyboard_interrupt_keeps_queued_callbacks_and_posts(dispatcher):
    rec = Recorder()

    def first_one_raises(label):
        def cb():
            rec.record(label)
            if len(rec) == 1:
                raise KeyboardInterrupt

        return cb

    nexts = [dispatcher.create_schedulable_callback(first_one_raises(f"n{i}")) for i in range(3)]
    for cb in nexts:
        cb.schedule_callback_next_iteration()
    with pytest.raises(KeyboardInterrupt):
        run_nonblock(dispatcher)
    assert len(rec) == 1
    run_nonblock(dispatcher)
    assert sorted(rec.labels) == ["n0", "n1", "n2"]

    rec.clear()
    currents = [dispatcher.create_schedulable_callback(first_one_raises(f"c{i}")) for i in range(3)]
    for cb in currents:
        cb.schedule_callback_current_iteration()
    with pytest.raises(KeyboardInterrupt):
        run_nonblock(dispatcher)
    assert rec.labels == ["c0"]
    run_nonblock(dispatcher)
    assert rec.labels == ["c0", "c1", "c2"]  # current-iteration work keeps its FIFO order

    rec.clear()
    for i in range(3):
        dispatcher.post(first_one_raises(f"p{i}"))
    with pytest.raises(KeyboardInterrupt):
        run_nonblock(dispatcher)
    assert rec.labels == ["p0"]
    run_nonblock(dispatcher)
    assert rec.labels == ["p0", "p1", "p2"]
    for cb in currents + nexts:
        cb.close()


# lifetime


def test_dispatcher_close_closes_leftovers_with_resource_warnings(dispatcher, sockpair):
    a, _b = sockpair
    timer = dispatcher.create_timer(lambda: None)
    timer.enable_timer(3600)
    fe = dispatcher.create_file_event(a, lambda ready: None, LEVEL, READ)
    with pytest.warns(ResourceWarning) as warned:
        dispatcher.close()
    messages = " ".join(str(w.message) for w in warned)
    assert "Timer" in messages and "FileEvent" in messages
    assert not timer.enabled()
    assert dispatcher.statistics().events_live == 0
    with pytest.raises(DispatcherClosedError):
        timer.enable_timer(1)
    with pytest.raises(DispatcherClosedError):
        fe.set_enabled(READ)
    timer.close()
    fe.close()


def test_dispatcher_close_warns_about_posts_it_drops(dispatcher):
    dispatcher.post(lambda: pytest.fail("ran after close"))
    with pytest.warns(ResourceWarning, match="1 posted callback"):
        dispatcher.close()


def test_dispatcher_close_is_idempotent_and_a_context_manager(make_dispatcher):
    with make_dispatcher() as dispatcher:
        assert not dispatcher.closed
    assert dispatcher.closed
    dispatcher.close()
    assert dispatcher.closed


def test_dispatcher_use_after_close_raises_dispatcher_closed_error(dispatcher, sockpair):
    a, _b = sockpair
    timer = dispatcher.create_timer(lambda: None)
    cb = dispatcher.create_schedulable_callback(lambda: None)
    dispatcher.close()
    with pytest.raises(DispatcherClosedError):
        dispatcher.run(RunType.NON_BLOCK)
    with pytest.raises(DispatcherClosedError):
        timer.enable_timer(0)
    with pytest.raises(DispatcherClosedError):
        cb.schedule_callback_current_iteration()
    with pytest.raises(DispatcherClosedError):
        cb.schedule_callback_next_iteration()
    with pytest.raises(DispatcherClosedError):
        dispatcher.create_file_event(a, lambda ready: None, LEVEL, READ)
    dispatcher.exit()  # harmless
    timer.close()
    cb.close()


def test_dispatcher_close_inside_a_callback_raises_runtime_error(dispatcher):
    errors = []
    dispatcher.set_error_handler(errors.append)
    dispatcher.post(dispatcher.close)
    run_nonblock(dispatcher)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert not dispatcher.closed


@pytest.mark.parametrize("kind", ["timer", "file_event", "schedulable_callback"])
def test_dispatcher_enabled_event_keeps_its_owner_alive(dispatcher, sockpair, kind):
    a, _b = sockpair

    class Owner:
        def __init__(self):
            if kind == "timer":
                self.event = dispatcher.create_timer(self.on_event)
                self.event.enable_timer(3600)
            elif kind == "file_event":
                self.event = dispatcher.create_file_event(a, self.on_event, LEVEL, FileReadyType.WRITE)
            else:
                self.event = dispatcher.create_schedulable_callback(self.on_event)
                self.event.schedule_callback_next_iteration()

        def on_event(self, *args):
            pass

    ref = weakref.ref(Owner())
    gc.collect()
    owner = ref()
    assert owner is not None, "an enabled event must keep its callback's owner alive"
    owner.event.close()
    del owner
    if kind == "schedulable_callback":
        run_nonblock(dispatcher)  # its cancelled queue entry is dropped when the queue runs
    gc.collect()
    assert ref() is None, "a closed event must not keep its owner alive"


def test_dispatcher_disabled_event_does_not_keep_its_owner_alive_but_still_counts_as_live(dispatcher_kind):
    # Not the leak-checked fixture: this test leaks an event on purpose.
    dispatcher = DispatcherImpl("owner") if dispatcher_kind == "libevent" else ReferenceDispatcher("owner")

    class Owner:
        def __init__(self):
            self.timer = dispatcher.create_timer(self.on_timer)
            self.timer.enable_timer(3600)
            self.timer.disable_timer()

        def on_timer(self):
            pass

    ref = weakref.ref(Owner())
    gc.collect()
    assert ref() is None, "a disabled event must not be kept alive by the dispatcher"
    # Garbage-collected but never closed: the leak check sees it.
    assert dispatcher.statistics().events_live == 1
    dispatcher.close()


def test_dispatcher_statistics_count_events_posts_and_deferred_deletes(dispatcher, sockpair):
    a, _b = sockpair
    base = dispatcher.statistics()
    assert (base.events_created, base.events_closed, base.events_live, base.events_armed) == (0, 0, 0, 0)
    timer = dispatcher.create_timer(lambda: None)
    cb = dispatcher.create_schedulable_callback(lambda: None)
    fe = dispatcher.create_file_event(a, lambda ready: None, LEVEL, READ)
    timer.enable_timer(3600)
    dispatcher.post(lambda: None)
    dispatcher.deferred_delete(object())
    stats = dispatcher.statistics()
    assert (stats.events_created, stats.events_closed, stats.events_live) == (3, 0, 3)
    assert stats.events_armed == 2  # the timer and the file event
    assert (stats.posts_pending, stats.deferred_deletes_pending) == (1, 1)
    timer.close()
    timer.close()
    run_nonblock(dispatcher)
    stats = dispatcher.statistics()
    assert (stats.events_closed, stats.events_live, stats.events_armed) == (1, 2, 1)
    assert (stats.posts_pending, stats.deferred_deletes_pending) == (0, 0)
    cb.close()
    fe.close()
    assert dispatcher.statistics().events_live == 0


def test_dispatcher_statistics_count_no_internal_events_after_blocking_runs(dispatcher):
    dispatcher.run(RunType.BLOCK)
    dispatcher.exit()
    dispatcher.run(RunType.RUN_UNTIL_EXIT)
    run_nonblock(dispatcher)
    stats = dispatcher.statistics()
    assert (stats.events_created, stats.events_closed, stats.events_live, stats.events_armed) == (0, 0, 0, 0)


def test_dispatcher_name_and_repr(make_dispatcher):
    dispatcher = make_dispatcher("worker_0")
    assert dispatcher.name == "worker_0"
    assert "worker_0" in repr(dispatcher) and "idle" in repr(dispatcher)
    dispatcher.close()
    assert "closed" in repr(dispatcher)


# the libevent implementation


def _rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from Linux's /proc/self/statm")
@pytest.mark.timeout(300)
def test_dispatcher_impl_creating_and_closing_500k_timers_and_file_events_does_not_leak(sockpair):
    a, _b = sockpair
    dispatcher = DispatcherImpl("leak")
    noop = lambda *args: None  # noqa: E731

    def churn(n):
        create_timer, create_file_event = dispatcher.create_timer, dispatcher.create_file_event
        for i in range(n):
            timer = create_timer(noop)
            timer.enable_timer(3600)
            timer.close()
            fe = create_file_event(a, noop, EDGE if i & 1 else LEVEL, READ)
            if i % 16 == 0:
                fe.activate(READ)  # the injected-activation callback too
            fe.close()
        run_nonblock(dispatcher)

    try:
        churn(50_000)  # warm-up: allocator pools, freelists
        gc.collect()
        before = _rss_bytes()
        for _ in range(10):
            churn(50_000)
        gc.collect()
        grown = _rss_bytes() - before
        # 500,000 of each; a leak of even 16 bytes per object would be 16 MB.
        assert grown < 8 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB"
        stats = dispatcher.statistics()
        assert stats.events_live == 0 and stats.events_armed == 0
        assert stats.events_created >= 1_000_000
    finally:
        dispatcher.close()


def test_dispatcher_impl_unclosed_at_exit_writes_nothing_to_stderr():
    program = (
        "import socket\n"
        "from pyevent_envoy.event import DispatcherImpl, FileTriggerType, FileReadyType\n"
        "d = DispatcherImpl('leaky')\n"
        "t = d.create_timer(lambda: None); t.enable_timer(3600)\n"
        "a, b = socket.socketpair()\n"
        "fe = d.create_file_event(a, lambda r: None, FileTriggerType.LEVEL, FileReadyType.READ)\n"
        "d.post(lambda: None)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_dispatcher_impl_scheduler_is_exposed_and_closed_with_the_dispatcher():
    dispatcher = DispatcherImpl("sched")
    scheduler = dispatcher.scheduler
    assert not scheduler.closed
    dispatcher.close()
    assert scheduler.closed
