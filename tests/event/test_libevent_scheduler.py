"""LibeventScheduler: the event_base, the record protocol, the queues, wake-ups and close.

These are libevent-specific (the reference dispatcher has no scheduler);
each test reaches the scheduler through a DispatcherImpl.
"""

import threading

import pytest

from pyevent_envoy.errors import DispatcherClosedError
from pyevent_envoy.event import DispatcherImpl, FileReadyType, FileTriggerType, LibeventScheduler
from pyevent_envoy.event.libevent_scheduler import MAX_SAME_ITERATION_ROUNDS, RUN_BLOCK, RUN_ONCE, RUN_UNTIL_EXIT
from pyevent_envoy.testing import Recorder, run_nonblock
from pyevent_envoy.testing import reference_dispatcher


@pytest.fixture
def impl(dispatcher_leak_check):
    dispatcher = DispatcherImpl("scheduler")
    dispatcher_leak_check.append(dispatcher)
    return dispatcher


def test_libevent_scheduler_uses_a_real_backend(impl):
    scheduler = impl.scheduler
    assert isinstance(scheduler, LibeventScheduler)
    assert scheduler.method in {"epoll", "kqueue", "poll", "select", "devpoll", "evport"}
    assert not scheduler.closed


def test_libevent_scheduler_round_bound_is_the_documented_one():
    assert MAX_SAME_ITERATION_ROUNDS == 16
    assert reference_dispatcher.MAX_SAME_ITERATION_ROUNDS == MAX_SAME_ITERATION_ROUNDS


def test_libevent_scheduler_num_armed_counts_only_user_events(impl, sockpair):
    scheduler = impl.scheduler
    assert scheduler.num_armed() == 0  # the internal wake-up event is not counted
    timer = impl.create_timer(lambda: None)
    timer.enable_timer(3600)
    fe = impl.create_file_event(sockpair[0], lambda ready: None, FileTriggerType.LEVEL, FileReadyType.READ)
    assert scheduler.num_armed() == 2
    timer.disable_timer()
    assert scheduler.num_armed() == 1
    fe.set_enabled(0)
    assert scheduler.num_armed() == 0
    timer.close()
    fe.close()


def test_libevent_scheduler_has_queued_work_keeps_the_poll_from_blocking(impl):
    scheduler = impl.scheduler
    assert not scheduler.has_queued_work()
    cb = impl.create_schedulable_callback(lambda: None)
    cb.schedule_callback_next_iteration()
    assert scheduler.has_queued_work()
    run_nonblock(impl)
    assert not scheduler.has_queued_work()
    cb.close()


@pytest.mark.timeout(60)
def test_libevent_scheduler_records_more_events_than_its_initial_buffer(impl):
    # The C record buffer starts at 256 records and grows; every record must arrive.
    fired = []
    timers = [impl.create_timer(lambda i=i: fired.append(i)) for i in range(5000)]
    for timer in timers:
        timer.enable_timer(0)
    run_nonblock(impl)
    assert sorted(fired) == list(range(5000))
    for timer in timers:
        timer.close()


def test_libevent_scheduler_skips_records_of_events_rearmed_in_the_same_pass(impl):
    # Each arming gets a fresh id; a record for an older arming is stale.
    fired = []
    timers = {}

    def make(name, other):
        def cb():
            fired.append(name)
            timers[other].enable_timer(0)  # re-armed: its pending record is now stale

        return cb

    timers["a"] = impl.create_timer(make("a", "b"))
    timers["b"] = impl.create_timer(make("b", "a"))
    timers["a"].enable_timer(0)
    timers["b"].enable_timer(0)
    run_nonblock(impl)
    assert len(fired) == 1
    run_nonblock(impl)
    assert len(fired) == 2 and fired[0] != fired[1]
    for timer in timers.values():
        timer.close()


def test_libevent_scheduler_leftover_records_run_before_the_next_poll(impl, sockpair):
    a, b = sockpair
    rec = Recorder()

    def interrupt(ready):
        rec.record("interrupt")
        raise KeyboardInterrupt

    first = impl.create_file_event(a, interrupt, FileTriggerType.EDGE, FileReadyType.READ)
    timer = impl.create_timer(rec.callback("timer"))
    b.send(b"x")
    timer.enable_timer(0)
    with pytest.raises(KeyboardInterrupt):
        run_nonblock(impl)
    assert rec.labels == ["interrupt"]
    cb = impl.create_schedulable_callback(rec.callback("next"))
    cb.schedule_callback_next_iteration()
    run_nonblock(impl)
    # The kept timer record runs first, then the new pass: its next-iteration work.
    assert rec.labels == ["interrupt", "timer", "next"]
    for event in (first, timer, cb):
        event.close()


class _Owner:
    """What LibeventScheduler.run reads from its dispatcher."""

    def __init__(self):
        self._exit_requested = False
        self._posts = []
        self.approximate_now = 0.0


def test_libevent_scheduler_wake_from_another_thread_runs_on_wake_on_the_loop_thread():
    owner, woke, errors = _Owner(), [], []

    def on_wake():
        woke.append(threading.get_ident())
        owner._exit_requested = True

    scheduler = LibeventScheduler(errors.append, on_wake)
    try:
        scheduler.run(RUN_BLOCK, owner)  # nothing registered: returns at once
        waker = threading.Timer(0.05, scheduler.wake)
        waker.start()
        scheduler.run(RUN_UNTIL_EXIT, owner)  # nothing registered: only the wake-up ends it
        waker.join()
        assert woke == [threading.get_ident()] and errors == []
    finally:
        assert scheduler.close() == []


def test_libevent_scheduler_routes_callback_exceptions_to_on_error():
    owner, errors = _Owner(), []
    scheduler = LibeventScheduler(errors.append, lambda: None)
    try:
        timer = scheduler.create_timer(lambda: 1 / 0)
        timer.enable_timer(0)
        scheduler.run(RUN_ONCE, owner)
        assert [type(e) for e in errors] == [ZeroDivisionError]
        timer.close()
        assert scheduler.events_created == scheduler.events_closed == 1
    finally:
        scheduler.close()


def test_libevent_scheduler_approximate_clock_is_refreshed_each_pass(impl):
    scheduler = impl.scheduler
    scheduler.now = 0.0
    run_nonblock(impl)
    assert scheduler.now > 0.0
    assert impl.approximate_monotonic_time() == scheduler.now


def test_libevent_scheduler_close_is_idempotent_and_returns_the_leftovers(sockpair):
    dispatcher = DispatcherImpl("leftovers")
    scheduler = dispatcher.scheduler
    timer = scheduler.create_timer(lambda: None)
    timer.enable_timer(3600)
    idle = scheduler.create_timer(lambda: None)
    fe = scheduler.create_file_event(sockpair[0], lambda ready: None, FileTriggerType.LEVEL, FileReadyType.READ)
    leftovers = scheduler.close()
    assert set(map(id, leftovers)) == {id(timer), id(fe)}  # armed ones only
    assert scheduler.closed and scheduler.close() == []
    assert not timer.enabled()
    with pytest.raises(DispatcherClosedError):
        idle.enable_timer(0)
    with pytest.raises(DispatcherClosedError):
        scheduler.create_schedulable_callback(lambda: None).schedule_callback_next_iteration()
    dispatcher.close()  # its own internal callbacks; idempotent on the scheduler


def test_libevent_scheduler_cancels_queued_callbacks_on_close():
    dispatcher = DispatcherImpl("queued")
    rec = Recorder()
    cb = dispatcher.create_schedulable_callback(rec.callback("cb"))
    cb.schedule_callback_current_iteration()
    dispatcher.close()
    assert not cb.enabled()
    cb.close()
    assert rec.labels == [] and dispatcher.statistics().events_live == 0
