"""ReferenceDispatcher's own documented behaviour, SimulatedClock, and the test helpers.

The contract itself is tested in ``tests/event/`` against both dispatchers;
this module covers what is specific to the reference (its emulation and its
limits) and the helpers of :mod:`pyevent_envoy.testing`.
"""

import os
import signal
import socket
import threading
import time

import pytest

from pyevent_envoy.event import FileReadyType, FileTriggerType, RunType
from pyevent_envoy.testing import (
    RealClock,
    Recorder,
    ReferenceDispatcher,
    SimulatedClock,
    drain_socket,
    fill_socket,
    run_nonblock,
    run_until,
    socketpair_nonblocking,
)
from pyevent_envoy.testing import reference_dispatcher

READ, WRITE, CLOSED = FileReadyType.READ, FileReadyType.WRITE, FileReadyType.CLOSED
LEVEL, EDGE = FileTriggerType.LEVEL, FileTriggerType.EDGE


@pytest.fixture
def ref(dispatcher_leak_check):
    dispatcher = ReferenceDispatcher("reference")
    dispatcher_leak_check.append(dispatcher)
    return dispatcher


def cpu_seconds_while_running(dispatcher, wall):
    """CPU time this process spends while ``dispatcher`` runs RUN_UNTIL_EXIT for ``wall`` seconds."""
    stopper = threading.Timer(wall, dispatcher.exit)
    started = time.process_time()
    stopper.start()
    dispatcher.run(RunType.RUN_UNTIL_EXIT)
    stopper.join()
    return time.process_time() - started


# the reference dispatcher


def test_reference_dispatcher_defaults_to_the_real_clock(ref):
    assert isinstance(ref.clock, RealClock)
    assert abs(ref.approximate_monotonic_time() - time.monotonic()) < 5


def test_reference_dispatcher_listen_for_signal_off_the_main_thread_raises_value_error(ref):
    # signal.signal() works on the main thread only; DispatcherImpl has no such limit.
    errors = []

    def off_main():
        try:
            ref.listen_for_signal(signal.SIGUSR1, lambda: None)
        except ValueError as exc:
            errors.append(exc)

    thread = threading.Thread(target=off_main)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert ref.statistics().events_live == 0


def test_reference_dispatcher_signal_interrupts_a_blocked_poll(ref):
    original = signal.getsignal(signal.SIGUSR1)
    rec = Recorder()
    event = ref.listen_for_signal(signal.SIGUSR1, lambda: (rec.record("signal"), ref.exit()))
    sender = threading.Timer(0.05, os.kill, args=(os.getpid(), signal.SIGUSR1))
    sender.start()
    ref.run(RunType.RUN_UNTIL_EXIT)
    sender.join()
    event.close()
    assert rec.labels == ["signal"]
    assert signal.getsignal(signal.SIGUSR1) == original


def test_reference_dispatcher_edge_read_end_of_stream_is_reported_once(ref):
    a, b = socketpair_nonblocking()
    rec = Recorder()
    fe = ref.create_file_event(a, rec.callback("fe", lambda ready: drain_socket(a)), EDGE, READ)
    b.send(b"last words")
    b.shutdown(socket.SHUT_WR)
    run_nonblock(ref, 5)
    assert rec.args("fe") == [(READ,)]
    fe.close()
    a.close()
    b.close()


def test_reference_dispatcher_quiet_edge_event_with_unread_data_does_not_spin(ref):
    a, b = socketpair_nonblocking()
    rec = Recorder()
    fe = ref.create_file_event(a, rec.callback("fe"), EDGE, READ)
    b.send(b"never read")
    # Without the quiet state a level-triggered selector would report this
    # socket on every poll: a busy loop burning a whole CPU.
    cpu = cpu_seconds_while_running(ref, 0.3)
    assert len(rec) == 1
    assert cpu < 0.2, f"{cpu:.3f} s of CPU in 0.3 s of waiting"
    fe.close()
    a.close()
    b.close()


def test_reference_dispatcher_closed_only_interest_with_unread_data_does_not_spin(ref):
    a, b = socketpair_nonblocking()
    rec = Recorder()
    fe = ref.create_file_event(a, rec.callback("fe"), LEVEL, CLOSED)
    b.send(b"never read")
    cpu = cpu_seconds_while_running(ref, 0.3)
    assert rec.labels == []
    assert cpu < 0.2, f"{cpu:.3f} s of CPU in 0.3 s of waiting"
    b.shutdown(socket.SHUT_WR)
    run_until(ref, lambda: len(rec) > 0, timeout=30)
    assert rec.args("fe")[0] == (CLOSED,)
    fe.close()
    a.close()
    b.close()


def test_reference_dispatcher_quiet_edge_event_notices_new_data_while_blocked(ref):
    a, b = socketpair_nonblocking()
    rec = Recorder()

    def on_readable(ready):
        rec.record("fe", ready)
        if len(rec) == 2:
            ref.exit()

    fe = ref.create_file_event(a, on_readable, EDGE, READ)
    b.send(b"first")  # left unread
    writer = threading.Timer(0.05, b.send, args=(b"second",))
    writer.start()
    guard = threading.Timer(30, ref.exit)
    guard.start()
    ref.run(RunType.RUN_UNTIL_EXIT)
    guard.cancel()
    writer.join()
    assert rec.labels == ["fe", "fe"]
    assert drain_socket(a) == b"firstsecond"
    fe.close()
    a.close()
    b.close()


def test_reference_dispatcher_timer_heap_does_not_grow_with_rearming(ref):
    timer = ref.create_timer(lambda: None)
    for _ in range(20_000):
        timer.enable_timer(3600)
    run_nonblock(ref)
    assert len(ref._timers) <= 64  # stale entries are dropped
    timer.close()


def test_reference_dispatcher_statistics_do_not_count_internal_events(ref):
    a, b = socketpair_nonblocking()
    fe = ref.create_file_event(a, lambda ready: None, LEVEL, 0)
    fe.activate(READ)  # uses an internal callback
    stats = ref.statistics()
    assert (stats.events_created, stats.events_live, stats.events_armed) == (1, 1, 0)
    run_nonblock(ref)
    fe.close()
    assert ref.statistics().events_live == 0
    a.close()
    b.close()


def test_reference_dispatcher_repr_and_states(ref):
    assert repr(ref) == "<ReferenceDispatcher 'reference' idle>"
    seen = []
    ref.post(lambda: seen.append(repr(ref)))
    run_nonblock(ref)
    assert seen == ["<ReferenceDispatcher 'reference' running>"]


# SimulatedClock


def test_simulated_clock_advance_moves_time_only_forward():
    clock = SimulatedClock(5.0)
    assert clock.monotonic() == 5.0
    clock.advance(1.5)
    assert clock.monotonic() == 6.5
    with pytest.raises(ValueError):
        clock.advance(-0.5)
    assert clock.monotonic() == 6.5
    assert "6.5" in repr(clock)


def test_simulated_clock_wakes_attached_dispatchers_until_detached():
    clock = SimulatedClock()
    woken = []
    waker = lambda: woken.append(1)  # noqa: E731
    clock.attach(waker)
    clock.advance(1)
    clock.detach(waker)
    clock.detach(waker)  # twice is fine
    clock.advance(1)
    assert woken == [1]


def test_simulated_clock_does_not_move_for_a_nonblocking_iteration(dispatcher_leak_check):
    clock = SimulatedClock()
    dispatcher = ReferenceDispatcher("frozen", clock=clock)
    dispatcher_leak_check.append(dispatcher)
    timer = dispatcher.create_timer(lambda: None)
    timer.enable_timer(1)
    run_nonblock(dispatcher, 10)
    assert clock.monotonic() == 0.0 and timer.enabled()  # no autojump without autojump=True
    timer.close()


# helpers


def test_recorder_records_labels_and_arguments_in_order():
    rec = Recorder()
    seen = []
    a = rec.callback("a")
    b = rec.callback("b", lambda *args: seen.append(args))
    a()
    b(1, 2)
    a(3)
    assert rec.labels == ["a", "b", "a"]
    assert rec.args("a") == [(), (3,)]
    assert rec.args("b") == [(1, 2)]
    assert seen == [(1, 2)]
    assert (rec.count(), rec.count("a"), len(rec)) == (3, 2, 3)
    rec.clear()
    assert rec.labels == [] and "Recorder" in repr(rec)


def test_recorder_is_safe_from_several_threads():
    rec = Recorder()
    cb = rec.callback("x")
    threads = [threading.Thread(target=lambda: [cb() for _ in range(2000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rec.count("x") == 8000


def test_run_nonblock_runs_exactly_n_iterations(ref):
    count = []

    def tick():
        count.append(1)
        cb.schedule_callback_next_iteration()

    cb = ref.create_schedulable_callback(tick)
    cb.schedule_callback_next_iteration()
    run_nonblock(ref, 7)
    assert len(count) == 7
    cb.close()


def test_run_until_raises_timeout_error_when_the_condition_never_holds(ref):
    with pytest.raises(TimeoutError):
        run_until(ref, lambda: False, timeout=0.05)
    assert run_until(ref, lambda: True) == 0


def test_socketpair_nonblocking_fill_and_drain():
    a, b = socketpair_nonblocking()
    try:
        assert not a.getblocking() and not b.getblocking()
        written = fill_socket(a)
        assert written > 0
        with pytest.raises(BlockingIOError):
            a.send(b"x" * 65536)
        data = drain_socket(b)
        assert len(data) == written and set(data) == {ord("x")}
        assert drain_socket(b) == b""
        b.send(b"tail")
        a_data = drain_socket(a)
        assert a_data == b"tail"
    finally:
        a.close()
        b.close()


def test_drain_socket_stops_at_end_of_stream():
    a, b = socketpair_nonblocking()
    try:
        b.send(b"bye")
        b.shutdown(socket.SHUT_WR)
        assert drain_socket(a) == b"bye"
    finally:
        a.close()
        b.close()


def test_reference_module_documents_its_probe_interval():
    assert 0 < reference_dispatcher.PROBE_INTERVAL <= 0.1
    assert "PROBE_INTERVAL" in reference_dispatcher.__doc__
