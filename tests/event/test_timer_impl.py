"""Timers: one-shot, re-arming, enabled(), delays, and their place in an iteration.

Tests taking ``timed`` run three ways: DispatcherImpl and ReferenceDispatcher
on real time, and ReferenceDispatcher on a SimulatedClock.  Real-time checks
use only generous bounds (a test must not fail on a slow machine); exact
deadlines are checked on simulated time.
"""

import datetime
import math
import threading
import time

import pytest

from pyevent_envoy.errors import DispatcherClosedError
from pyevent_envoy.event import DispatcherImpl, RunType
from pyevent_envoy.testing import Recorder, ReferenceDispatcher, SimulatedClock, run_nonblock, run_until

# libevent reads CLOCK_MONOTONIC_COARSE, which lags time.monotonic() by up to
# a scheduler tick: a timer may fire that much early by time.monotonic().
COARSE_CLOCK_SLACK = 0.01


class Timed:
    """A dispatcher plus how time passes for it."""

    def __init__(self, kind, dispatcher):
        self.kind = kind
        self.dispatcher = dispatcher
        self.simulated = kind == "reference-simulated"

    def now(self):
        return self.dispatcher.clock.monotonic() if self.simulated else time.monotonic()

    def elapse_and_run_until(self, seconds, predicate):
        """Let ``seconds`` pass (simulated: advance; real: wait), running the loop until ``predicate()``."""
        if self.simulated:
            self.dispatcher.clock.advance(seconds)
            for _ in range(5):
                run_nonblock(self.dispatcher)
                if predicate():
                    return
            raise AssertionError("not reached after advancing the simulated clock")
        run_until(self.dispatcher, predicate, timeout=30 + seconds)


@pytest.fixture(params=["libevent", "reference", "reference-simulated"])
def timed(request, dispatcher_leak_check):
    if request.param == "libevent":
        dispatcher = DispatcherImpl("timers")
    elif request.param == "reference":
        dispatcher = ReferenceDispatcher("timers")
    else:
        dispatcher = ReferenceDispatcher("timers", clock=SimulatedClock(1000.0))
    dispatcher_leak_check.append(dispatcher)
    return Timed(request.param, dispatcher)


@pytest.fixture
def sim(dispatcher_leak_check):
    """A reference dispatcher on simulated time (closed and leak-checked like the others)."""
    dispatcher = ReferenceDispatcher("simulated", clock=SimulatedClock())
    dispatcher_leak_check.append(dispatcher)
    return dispatcher


# firing


def test_timer_fires_once_after_its_delay(timed):
    d, rec = timed.dispatcher, Recorder()
    timer = d.create_timer(rec.callback("timer"))
    started = timed.now()
    timer.enable_timer(0.05)
    assert timer.enabled()
    timed.elapse_and_run_until(0.05, lambda: len(rec) == 1)
    assert timed.now() - started >= 0.05 - COARSE_CLOCK_SLACK
    assert not timer.enabled()
    run_nonblock(d, 3)
    assert len(rec) == 1  # one-shot
    timer.close()


def test_timer_enable_accepts_a_timedelta(timed):
    d, rec = timed.dispatcher, Recorder()
    short = d.create_timer(rec.callback("short"))
    long = d.create_timer(rec.callback("long"))
    short.enable_timer(datetime.timedelta(milliseconds=20))
    long.enable_hr_timer(datetime.timedelta(hours=1))
    timed.elapse_and_run_until(0.02, lambda: len(rec) == 1)
    run_nonblock(d, 2)
    assert rec.labels == ["short"] and long.enabled()
    short.close()
    long.close()


@pytest.mark.parametrize("delay", [-1, -0.001, datetime.timedelta(seconds=-1), float("nan"), float("-inf")])
def test_timer_negative_delay_raises_value_error_and_leaves_the_timer_disabled(timed, delay):
    timer = timed.dispatcher.create_timer(lambda: None)
    with pytest.raises(ValueError):
        timer.enable_timer(delay)
    with pytest.raises(ValueError):
        timer.enable_hr_timer(delay)
    assert not timer.enabled()
    timer.close()


@pytest.mark.parametrize("delay", [float("inf"), 1e300, 2.0**40, datetime.timedelta.max])
def test_timer_huge_delay_is_clipped_and_does_not_fire(timed, delay):
    rec = Recorder()
    timer = timed.dispatcher.create_timer(rec.callback("timer"))
    timer.enable_timer(delay)
    assert timer.enabled()
    run_nonblock(timed.dispatcher, 3)
    assert rec.labels == [] and timer.enabled()
    timer.close()


def test_timer_zero_delay_fires_in_the_next_iteration_not_the_current_one(timed):
    d, rec = timed.dispatcher, Recorder()
    zero = d.create_timer(rec.callback("zero"))

    def arm():
        rec.record("arm")
        zero.enable_timer(0)

    cb = d.create_schedulable_callback(arm)
    cb.schedule_callback_current_iteration()
    run_nonblock(d)
    assert rec.labels == ["arm"] and zero.enabled()
    run_nonblock(d)
    assert rec.labels == ["arm", "zero"]
    zero.close()
    cb.close()


def test_timer_many_zero_delay_timers_fire_together_in_one_iteration(timed):
    d = timed.dispatcher
    fired = []
    timers = [d.create_timer(lambda i=i: fired.append(i)) for i in range(2000)]
    for timer in timers:
        timer.enable_timer(0)
    run_nonblock(d)
    assert sorted(fired) == list(range(2000))
    for timer in timers:
        timer.close()


def test_timer_rearming_in_its_callback_fires_once_per_iteration(timed):
    d = timed.dispatcher
    count = []

    def tick():
        count.append(1)
        timer.enable_timer(0)

    timer = d.create_timer(tick)
    timer.enable_timer(0)
    run_nonblock(d, 5)
    assert len(count) == 5
    timer.close()


# re-arming and enabled()


def test_timer_rearm_replaces_the_deadline(timed):
    d, rec = timed.dispatcher, Recorder()
    timer = d.create_timer(rec.callback("timer"))
    timer.enable_timer(0)
    timer.enable_timer(3600)  # replaces the zero deadline
    run_nonblock(d, 3)
    assert rec.labels == [] and timer.enabled()
    timer.enable_timer(0)  # and back
    run_nonblock(d)
    assert rec.labels == ["timer"]
    timer.close()


def test_timer_enabled_semantics(timed):
    d = timed.dispatcher
    seen = []

    def callback():
        seen.append(timer.enabled())  # False inside its own callback...
        if len(seen) == 1:
            timer.enable_timer(0)
            seen.append(timer.enabled())  # ...unless re-armed there

    timer = d.create_timer(callback)
    assert not timer.enabled()
    timer.enable_timer(3600)
    assert timer.enabled()
    timer.disable_timer()
    assert not timer.enabled()
    timer.disable_timer()  # twice is fine
    timer.enable_timer(0)
    run_nonblock(d)
    assert seen == [False, True]
    run_nonblock(d)
    assert seen == [False, True, False] and not timer.enabled()
    timer.close()


def test_timer_enabled_while_expired_but_not_yet_run(timed):
    d = timed.dispatcher
    seen = {}
    timers = {}

    def make(name, other):
        def cb():
            if not seen:  # the first of the two to run looks at the other
                seen[name] = timers[other].enabled()

        return cb

    timers["a"] = d.create_timer(make("a", "b"))
    timers["b"] = d.create_timer(make("b", "a"))
    timers["a"].enable_timer(0)
    timers["b"].enable_timer(0)
    run_nonblock(d)
    assert list(seen.values()) == [True]
    for timer in timers.values():
        timer.close()


@pytest.mark.parametrize("how", ["disable", "close", "rearm"])
def test_timer_disabled_by_another_callback_of_the_same_iteration_does_not_fire(timed, how):
    d = timed.dispatcher
    fired = []
    timers = {}

    def make(name, other):
        def cb():
            fired.append(name)
            victim = timers[other]
            if how == "disable":
                victim.disable_timer()
            elif how == "close":
                victim.close()
            else:
                victim.enable_timer(3600)

        return cb

    timers["a"] = d.create_timer(make("a", "b"))
    timers["b"] = d.create_timer(make("b", "a"))
    timers["a"].enable_timer(0)
    timers["b"].enable_timer(0)  # both expire in the same iteration
    run_nonblock(d, 3)
    assert len(fired) == 1
    for timer in timers.values():
        timer.close()


def test_timer_disable_then_enable_reuses_the_timer(timed):
    d, rec = timed.dispatcher, Recorder()
    timer = d.create_timer(rec.callback("timer"))
    timer.enable_timer(0)
    timer.disable_timer()
    run_nonblock(d, 2)
    assert rec.labels == []
    timer.enable_timer(0)
    run_nonblock(d)
    assert rec.labels == ["timer"]
    timer.close()


def test_timer_close_is_idempotent_and_enable_after_close_raises(timed):
    timer = timed.dispatcher.create_timer(lambda: None)
    timer.enable_timer(3600)
    timer.close()
    timer.close()
    assert not timer.enabled()
    timer.disable_timer()  # harmless on a closed timer
    with pytest.raises(DispatcherClosedError):
        timer.enable_timer(0)
    with pytest.raises(DispatcherClosedError):
        timer.enable_hr_timer(0)


def test_timer_raising_callback_reaches_error_handler_and_the_timer_stays_usable(timed):
    d = timed.dispatcher
    errors, fired = [], []
    d.set_error_handler(errors.append)

    def callback():
        fired.append(1)
        if len(fired) == 1:
            raise ValueError("first")

    timer = d.create_timer(callback)
    timer.enable_timer(0)
    run_nonblock(d)
    timer.enable_timer(0)
    run_nonblock(d)
    assert len(fired) == 2 and [str(e) for e in errors] == ["first"]
    timer.close()


def test_timer_callback_runs_with_the_approximate_time_of_its_iteration(timed):
    d = timed.dispatcher
    seen = []
    timer = d.create_timer(lambda: seen.append(d.approximate_monotonic_time()))
    timer.enable_timer(0.02)
    before = timed.now()
    timed.elapse_and_run_until(0.02, lambda: bool(seen))
    assert seen[0] >= before + 0.02 - COARSE_CLOCK_SLACK
    timer.close()


# simulated time: exact deadlines


def test_timer_simulated_fires_exactly_at_its_deadline(sim):
    rec = Recorder()
    timer = sim.create_timer(rec.callback("timer"))
    timer.enable_timer(5.0)
    sim.clock.advance(4.999)
    run_nonblock(sim, 3)
    assert rec.labels == []
    sim.clock.advance(0.001)
    run_nonblock(sim)
    assert rec.labels == ["timer"]
    timer.close()


def test_timer_simulated_rearm_replaces_the_deadline(sim):
    rec = Recorder()
    timer = sim.create_timer(rec.callback("timer"))
    timer.enable_timer(1.0)
    sim.clock.advance(0.5)
    timer.enable_timer(1.0)  # now due at 1.5, not 1.0
    sim.clock.advance(0.6)
    run_nonblock(sim)
    assert rec.labels == []
    sim.clock.advance(0.4)
    run_nonblock(sim)
    assert rec.labels == ["timer"]
    timer.close()


def test_timer_simulated_expired_timers_run_earliest_deadline_first(sim):
    rec = Recorder()
    timers = []
    for delay in (3, 1, 2, 0.5):
        timer = sim.create_timer(rec.callback(f"t{delay}"))
        timer.enable_timer(delay)
        timers.append(timer)
    sim.clock.advance(datetime.timedelta(seconds=10))
    run_nonblock(sim)
    assert rec.labels == ["t0.5", "t1", "t2", "t3"]
    for timer in timers:
        timer.close()


def test_timer_simulated_approximate_time_follows_the_clock(sim):
    start = sim.clock.monotonic()
    sim.clock.advance(7.5)
    assert sim.approximate_monotonic_time() == start  # refreshed once per iteration
    run_nonblock(sim)
    assert sim.approximate_monotonic_time() == start + 7.5


def test_timer_simulated_advance_from_another_thread_wakes_a_blocked_loop(sim):
    rec = Recorder()
    timer = sim.create_timer(lambda: (rec.record("timer"), sim.exit()))
    timer.enable_timer(60)
    mover = threading.Timer(0.05, sim.clock.advance, args=(60,))
    mover.start()
    sim.run(RunType.RUN_UNTIL_EXIT)
    mover.join()
    assert rec.labels == ["timer"]
    timer.close()


def test_timer_simulated_autojump_runs_hours_of_timers_at_once():
    clock = SimulatedClock(autojump=True)
    dispatcher = ReferenceDispatcher("autojump", clock=clock)
    seen = []
    count = [0]

    def hourly():
        count[0] += 1
        seen.append(clock.monotonic())
        if count[0] < 24:
            timer.enable_timer(datetime.timedelta(hours=1))

    timer = dispatcher.create_timer(hourly)
    timer.enable_timer(datetime.timedelta(hours=1))
    started = time.monotonic()
    dispatcher.run(RunType.BLOCK)
    assert seen == [3600.0 * (i + 1) for i in range(24)]
    assert time.monotonic() - started < 30
    timer.close()
    assert dispatcher.statistics().events_live == 0
    dispatcher.close()


def test_timer_simulated_clock_never_goes_back():
    clock = SimulatedClock(10.0)
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.jump_to(5.0)
    assert clock.monotonic() == 10.0
    clock.jump_to(12.0)
    assert math.isclose(clock.monotonic(), 12.0)
