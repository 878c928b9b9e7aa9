"""Schedulable callbacks: current vs next iteration, cancel, enabled(), and the bound on re-draining."""

import pytest

from pyevent_envoy.errors import DispatcherClosedError
from pyevent_envoy.event import FileReadyType, FileTriggerType
from pyevent_envoy.event.libevent_scheduler import MAX_SAME_ITERATION_ROUNDS
from pyevent_envoy.testing import Recorder, run_nonblock


def in_iteration(dispatcher, fn):
    """Run ``fn`` from a timer callback, i.e. in the middle of one iteration; returns the timer."""
    timer = dispatcher.create_timer(fn)
    timer.enable_timer(0)
    return timer


def test_schedulable_cb_current_iteration_runs_in_the_iteration_that_scheduled_it(dispatcher):
    rec = Recorder()
    cb = dispatcher.create_schedulable_callback(rec.callback("cb"))
    starter = in_iteration(dispatcher, lambda: (rec.record("timer"), cb.schedule_callback_current_iteration()))
    run_nonblock(dispatcher)
    assert rec.labels == ["timer", "cb"]
    cb.close()
    starter.close()


def test_schedulable_cb_current_iteration_runs_after_what_is_already_queued(dispatcher):
    rec = Recorder()
    callbacks = {name: dispatcher.create_schedulable_callback(rec.callback(name)) for name in "abc"}

    def schedule():
        for name in "abc":
            callbacks[name].schedule_callback_current_iteration()

    starter = in_iteration(dispatcher, schedule)
    run_nonblock(dispatcher)
    assert rec.labels == ["a", "b", "c"]
    for cb in (*callbacks.values(), starter):
        cb.close()


def test_schedulable_cb_next_iteration_runs_after_the_next_poll(dispatcher):
    rec = Recorder()
    cb = dispatcher.create_schedulable_callback(rec.callback("cb"))
    starter = in_iteration(dispatcher, cb.schedule_callback_next_iteration)
    run_nonblock(dispatcher)
    assert rec.labels == [] and cb.enabled()
    run_nonblock(dispatcher)
    assert rec.labels == ["cb"] and not cb.enabled()
    run_nonblock(dispatcher, 2)
    assert rec.labels == ["cb"]  # exactly once
    cb.close()
    starter.close()


@pytest.mark.parametrize("scheduled_from", ["timer", "file_event", "next_iteration", "current_iteration", "post"])
def test_schedulable_cb_next_iteration_runs_exactly_once_in_the_following_iteration(
    dispatcher, sockpair, scheduled_from
):
    a, _b = sockpair
    rec = Recorder()
    target = dispatcher.create_schedulable_callback(rec.callback("target"))

    def schedule(*_ready):
        rec.record("scheduled")
        target.schedule_callback_next_iteration()

    events = [target]
    if scheduled_from == "timer":
        events.append(in_iteration(dispatcher, schedule))
    elif scheduled_from == "file_event":
        def once(ready):
            schedule()
            fe.set_enabled(0)

        fe = dispatcher.create_file_event(a, once, FileTriggerType.LEVEL, FileReadyType.WRITE)
        events.append(fe)
    elif scheduled_from in ("next_iteration", "current_iteration"):
        starter = dispatcher.create_schedulable_callback(schedule)
        getattr(starter, f"schedule_callback_{scheduled_from}")()
        events.append(starter)
    else:
        dispatcher.post(lambda: dispatcher.post(schedule))  # a post while the loop runs
    for _ in range(4):
        if "scheduled" in rec.labels:
            break
        run_nonblock(dispatcher)
    assert rec.labels == ["scheduled"]
    run_nonblock(dispatcher)
    assert rec.labels == ["scheduled", "target"]
    run_nonblock(dispatcher, 3)
    assert rec.labels == ["scheduled", "target"]
    for event in events:
        event.close()


def test_schedulable_cb_rescheduling_itself_next_iteration_runs_once_per_iteration(dispatcher):
    runs = []

    def again():
        runs.append(1)
        if len(runs) < 1000:  # a bound, in case one iteration runs it repeatedly
            cb.schedule_callback_next_iteration()

    cb = dispatcher.create_schedulable_callback(again)
    starter = in_iteration(dispatcher, cb.schedule_callback_next_iteration)  # from the record phase
    run_nonblock(dispatcher, 6)
    assert len(runs) == 5
    cb.close()
    starter.close()


def test_schedulable_cb_rescheduling_itself_current_iteration_is_bounded_per_iteration(dispatcher):
    runs = []

    def again():
        runs.append(1)
        cb.schedule_callback_current_iteration()

    cb = dispatcher.create_schedulable_callback(again)
    starter = in_iteration(dispatcher, cb.schedule_callback_current_iteration)
    run_nonblock(dispatcher)
    assert len(runs) == MAX_SAME_ITERATION_ROUNDS
    cb.close()
    starter.close()


def test_schedulable_cb_scheduling_twice_runs_once(dispatcher):
    rec = Recorder()
    cb = dispatcher.create_schedulable_callback(rec.callback("cb"))
    cb.schedule_callback_current_iteration()
    cb.schedule_callback_current_iteration()
    cb.schedule_callback_next_iteration()
    cb.schedule_callback_next_iteration()
    run_nonblock(dispatcher, 3)
    assert rec.labels == ["cb"]
    cb.close()


@pytest.mark.parametrize("first, last, runs_in_pass", [("current", "next", 2), ("next", "current", 1)])
def test_schedulable_cb_last_schedule_call_wins_between_the_queues(dispatcher, first, last, runs_in_pass):
    rec = Recorder()
    cb = dispatcher.create_schedulable_callback(rec.callback("cb"))

    def schedule():
        getattr(cb, f"schedule_callback_{first}_iteration")()
        getattr(cb, f"schedule_callback_{last}_iteration")()

    starter = in_iteration(dispatcher, schedule)
    run_nonblock(dispatcher)
    assert len(rec) == (1 if runs_in_pass == 1 else 0)
    run_nonblock(dispatcher, 3)
    assert rec.labels == ["cb"]
    cb.close()
    starter.close()


def test_schedulable_cb_cancel_prevents_the_run(dispatcher):
    rec = Recorder()
    current = dispatcher.create_schedulable_callback(rec.callback("current"))
    nxt = dispatcher.create_schedulable_callback(rec.callback("next"))
    current.schedule_callback_current_iteration()
    nxt.schedule_callback_next_iteration()
    current.cancel()
    nxt.cancel()
    current.cancel()  # twice is fine
    assert not current.enabled() and not nxt.enabled()
    run_nonblock(dispatcher, 3)
    assert rec.labels == []
    current.schedule_callback_current_iteration()  # usable again
    run_nonblock(dispatcher)
    assert rec.labels == ["current"]
    current.close()
    nxt.close()


def test_schedulable_cb_cancelled_by_an_earlier_callback_of_the_same_iteration_does_not_run(dispatcher):
    rec = Recorder()
    victim = dispatcher.create_schedulable_callback(rec.callback("victim"))
    killer = dispatcher.create_schedulable_callback(lambda: (rec.record("killer"), victim.cancel()))
    killer.schedule_callback_current_iteration()
    victim.schedule_callback_current_iteration()
    run_nonblock(dispatcher, 2)
    assert rec.labels == ["killer"]
    killer.close()
    victim.close()


def test_schedulable_cb_enabled_semantics(dispatcher):
    seen = []

    def callback():
        seen.append(cb.enabled())  # False inside its own run...
        if len(seen) == 1:
            cb.schedule_callback_next_iteration()
            seen.append(cb.enabled())  # ...until scheduled again

    cb = dispatcher.create_schedulable_callback(callback)
    assert not cb.enabled()
    cb.schedule_callback_current_iteration()
    assert cb.enabled()
    run_nonblock(dispatcher)
    assert seen == [False, True]
    run_nonblock(dispatcher)
    assert seen == [False, True, False] and not cb.enabled()
    cb.close()


def test_schedulable_cb_close_is_idempotent_and_scheduling_after_close_raises(dispatcher):
    rec = Recorder()
    cb = dispatcher.create_schedulable_callback(rec.callback("cb"))
    cb.schedule_callback_current_iteration()
    cb.close()
    cb.close()
    assert not cb.enabled()
    run_nonblock(dispatcher)
    assert rec.labels == []
    with pytest.raises(DispatcherClosedError):
        cb.schedule_callback_current_iteration()
    with pytest.raises(DispatcherClosedError):
        cb.schedule_callback_next_iteration()
    cb.cancel()  # harmless


def test_schedulable_cb_scheduling_on_a_closed_dispatcher_raises(dispatcher):
    cb = dispatcher.create_schedulable_callback(lambda: None)
    dispatcher.close()
    with pytest.raises(DispatcherClosedError):
        cb.schedule_callback_current_iteration()
    with pytest.raises(DispatcherClosedError):
        cb.schedule_callback_next_iteration()
    cb.close()


def test_schedulable_cb_raising_callback_reaches_error_handler(dispatcher):
    errors, rec = [], Recorder()
    dispatcher.set_error_handler(errors.append)
    bad = dispatcher.create_schedulable_callback(lambda: {}["missing"])
    good = dispatcher.create_schedulable_callback(rec.callback("good"))
    bad.schedule_callback_current_iteration()
    good.schedule_callback_current_iteration()
    run_nonblock(dispatcher)
    assert [type(e) for e in errors] == [KeyError] and rec.labels == ["good"]
    bad.close()
    good.close()
