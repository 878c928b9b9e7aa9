"""File events on socketpairs: level vs edge, CLOSED, activate(), set_enabled(), close().

``sockpair`` is a non-blocking ``socketpair``; ``fd_of`` passes either the
socket object or its raw descriptor number, both of which the factory accepts.
"""

import os
import socket

import pytest

from pyevent_envoy.errors import DispatcherClosedError
from pyevent_envoy.event import DispatcherImpl, FileReadyType, FileTriggerType, RunType
from pyevent_envoy.testing import Recorder, drain_socket, fill_socket, run_nonblock, socketpair_nonblocking

READ, WRITE, CLOSED = FileReadyType.READ, FileReadyType.WRITE, FileReadyType.CLOSED
LEVEL, EDGE = FileTriggerType.LEVEL, FileTriggerType.EDGE


@pytest.fixture(params=["socket", "fileno"])
def fd_of(request):
    return (lambda sock: sock) if request.param == "socket" else (lambda sock: sock.fileno())


def ready_calls(rec, label="fe"):
    return [args[0] for args in rec.args(label)]


# level and edge


def test_file_event_level_read_refires_every_iteration_while_data_is_unread(dispatcher, sockpair, fd_of):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(fd_of(a), rec.callback("fe"), LEVEL, READ)
    run_nonblock(dispatcher, 2)
    assert rec.labels == []
    b.send(b"data")
    run_nonblock(dispatcher, 3)
    assert ready_calls(rec) == [READ, READ, READ]
    assert all(type(ready) is FileReadyType for ready in ready_calls(rec))
    drain_socket(a)
    run_nonblock(dispatcher, 2)
    assert len(rec) == 3
    fe.close()


def test_file_event_edge_read_fires_once_until_new_data(dispatcher, sockpair, fd_of):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(fd_of(a), rec.callback("fe"), EDGE, READ)
    b.send(b"one")
    run_nonblock(dispatcher, 3)
    assert ready_calls(rec) == [READ]  # data left unread: still only once
    b.send(b"two")
    run_nonblock(dispatcher, 3)
    assert ready_calls(rec) == [READ, READ]
    assert drain_socket(a) == b"onetwo"
    run_nonblock(dispatcher, 2)
    assert len(rec) == 2
    b.send(b"three")
    run_nonblock(dispatcher, 2)
    assert len(rec) == 3
    fe.close()


def test_file_event_edge_set_enabled_reports_the_current_readiness_again(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), EDGE, READ)
    b.send(b"x")
    run_nonblock(dispatcher, 2)
    assert len(rec) == 1
    fe.set_enabled(READ)  # same mask: with EDGE it still re-registers
    run_nonblock(dispatcher, 2)
    assert ready_calls(rec) == [READ, READ]
    fe.close()


def test_file_event_level_set_enabled_with_the_same_mask_changes_nothing(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), LEVEL, READ)
    b.send(b"x")
    fe.set_enabled(READ)
    run_nonblock(dispatcher)
    assert ready_calls(rec) == [READ]
    fe.close()


def test_file_event_edge_write_fires_once_then_again_after_the_socket_was_full(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), EDGE, WRITE)
    run_nonblock(dispatcher, 3)
    assert ready_calls(rec) == [WRITE]
    assert fill_socket(a) > 0
    run_nonblock(dispatcher, 2)
    assert len(rec) == 1
    drain_socket(b)
    run_nonblock(dispatcher, 2)
    assert ready_calls(rec) == [WRITE, WRITE]
    fe.close()


def test_file_event_edge_reports_every_ready_direction_on_an_edge(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), EDGE, READ | WRITE)
    run_nonblock(dispatcher, 2)
    assert ready_calls(rec) == [WRITE]
    b.send(b"x")  # an edge on the descriptor: still writable, now readable too
    run_nonblock(dispatcher, 2)
    assert ready_calls(rec) == [WRITE, READ | WRITE]
    fe.close()


def test_file_event_level_write_refires_while_writable(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), LEVEL, WRITE)
    run_nonblock(dispatcher, 3)
    assert ready_calls(rec) == [WRITE] * 3
    fill_socket(a)
    rec.clear()
    run_nonblock(dispatcher, 2)
    assert rec.labels == []
    drain_socket(b)
    run_nonblock(dispatcher)
    assert ready_calls(rec) == [WRITE]
    fe.close()


def test_file_event_edge_consumer_reading_until_eagain_gets_each_message(dispatcher, sockpair):
    a, b = sockpair
    received = []

    def on_readable(ready):
        received.append(drain_socket(a))

    fe = dispatcher.create_file_event(a, on_readable, EDGE, READ)
    for message in (b"alpha", b"beta", b"gamma"):
        b.send(message)
        run_nonblock(dispatcher, 2)
    assert received == [b"alpha", b"beta", b"gamma"]
    fe.close()


# CLOSED


@pytest.mark.parametrize("trigger", [LEVEL, EDGE], ids=["level", "edge"])
@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_file_event_closed_reported_on_peer_shutdown(dispatcher, sockpair, trigger, how):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), trigger, READ | CLOSED)
    run_nonblock(dispatcher)
    assert rec.labels == []
    if how == "shutdown":
        b.shutdown(socket.SHUT_WR)
    else:
        b.close()
    run_nonblock(dispatcher, 2)
    calls = ready_calls(rec)
    assert calls[0] == READ | CLOSED
    assert len(calls) == (2 if trigger is LEVEL else 1)
    assert a.recv(10) == b""
    fe.close()


def test_file_event_closed_only_reports_the_fin_behind_unread_data(dispatcher, sockpair):
    # Envoy's read-disabled connection: Write|Closed registered, data not read.
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), LEVEL, CLOSED)
    b.send(b"unread data")
    run_nonblock(dispatcher, 3)
    assert rec.labels == []
    b.shutdown(socket.SHUT_WR)
    run_nonblock(dispatcher, 2)
    assert ready_calls(rec)[0] == CLOSED
    assert set(ready_calls(rec)) == {CLOSED}
    fe.close()


def test_file_event_edge_write_closed_notices_the_fin_while_read_is_disabled(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), EDGE, WRITE | CLOSED)
    run_nonblock(dispatcher, 2)
    assert ready_calls(rec) == [WRITE]
    b.send(b"not read")
    run_nonblock(dispatcher, 2)
    b.shutdown(socket.SHUT_WR)
    run_nonblock(dispatcher, 2)
    assert ready_calls(rec)[-1] & CLOSED
    assert sum(1 for ready in ready_calls(rec) if ready & CLOSED) == 1
    fe.close()


def test_file_event_closed_not_reported_unless_asked_for(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), LEVEL, READ)
    b.shutdown(socket.SHUT_WR)
    run_nonblock(dispatcher)
    assert ready_calls(rec) == [READ]
    fe.close()


# activate() and set_enabled()


def test_file_event_activate_delivers_in_the_next_iteration(dispatcher, sockpair):
    a, _b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), LEVEL, READ)
    timer = dispatcher.create_timer(lambda: fe.activate(WRITE | CLOSED))
    timer.enable_timer(0)
    run_nonblock(dispatcher)
    assert rec.labels == []  # not in the iteration that called activate()
    run_nonblock(dispatcher)
    assert ready_calls(rec) == [WRITE | CLOSED]  # whatever the descriptor's state
    run_nonblock(dispatcher, 2)
    assert len(rec) == 1
    fe.close()
    timer.close()


def test_file_event_activate_merges_with_real_readiness_into_one_call(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe", lambda ready: drain_socket(a)), LEVEL, READ)

    def inject_and_write():
        fe.activate(WRITE)
        b.send(b"x")

    timer = dispatcher.create_timer(inject_and_write)
    timer.enable_timer(0)
    run_nonblock(dispatcher, 4)
    assert ready_calls(rec) == [READ | WRITE]
    fe.close()
    timer.close()


def test_file_event_activate_calls_coalesce(dispatcher, sockpair):
    a, _b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), LEVEL, 0)
    fe.activate(READ)
    fe.activate(WRITE)
    fe.activate(READ)
    run_nonblock(dispatcher, 3)
    assert ready_calls(rec) == [READ | WRITE]
    fe.close()


def test_file_event_set_enabled_discards_injected_events(dispatcher, sockpair):
    a, _b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), LEVEL, READ)
    fe.activate(WRITE)
    fe.set_enabled(READ)
    run_nonblock(dispatcher, 3)
    assert rec.labels == []
    fe.close()


def test_file_event_set_enabled_replaces_the_interest_mask(dispatcher, sockpair, fd_of):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(fd_of(a), rec.callback("fe"), LEVEL, READ)
    run_nonblock(dispatcher)
    assert rec.labels == []
    fe.set_enabled(WRITE)
    run_nonblock(dispatcher)
    assert ready_calls(rec) == [WRITE]
    fe.set_enabled(0)
    b.send(b"x")
    run_nonblock(dispatcher, 2)
    assert len(rec) == 1
    assert dispatcher.statistics().events_armed == 0
    dispatcher.run(RunType.BLOCK)  # a disabled event does not keep BLOCK running
    fe.set_enabled(READ | WRITE)
    run_nonblock(dispatcher)
    assert ready_calls(rec)[-1] == READ | WRITE
    fe.close()


def test_file_event_created_with_no_events_is_disabled(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), EDGE, 0)
    b.send(b"x")
    run_nonblock(dispatcher, 2)
    assert rec.labels == [] and dispatcher.statistics().events_armed == 0
    fe.close()


# several events, and callbacks changing events


def test_file_event_disabled_by_another_callback_of_the_same_iteration_does_not_fire(dispatcher):
    pairs = [socketpair_nonblocking() for _ in range(2)]
    fired = []
    events = []

    def make(i):
        def cb(ready):
            fired.append(i)
            events[1 - i].set_enabled(0)

        return cb

    events.extend(dispatcher.create_file_event(a, make(i), LEVEL, READ) for i, (a, _b) in enumerate(pairs))
    for _a, b in pairs:
        b.send(b"x")
    run_nonblock(dispatcher, 3)
    assert len(fired) == 3 and len(set(fired)) == 1  # the survivor is level-triggered
    for event in events:
        event.close()
    for a, b in pairs:
        a.close()
        b.close()


def test_file_event_closing_itself_in_its_callback_stops_it(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe", lambda ready: fe.close()), LEVEL, READ)
    b.send(b"x")
    run_nonblock(dispatcher, 3)
    assert len(rec) == 1


def test_file_event_two_events_on_one_descriptor(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    reader = dispatcher.create_file_event(a, rec.callback("reader"), LEVEL, READ)
    writer = dispatcher.create_file_event(a, rec.callback("writer"), LEVEL, WRITE)
    b.send(b"x")
    run_nonblock(dispatcher)
    assert sorted(rec.labels) == ["reader", "writer"]
    assert rec.args("reader") == [(READ,)] and rec.args("writer") == [(WRITE,)]
    writer.close()
    rec.clear()
    run_nonblock(dispatcher)
    assert rec.labels == ["reader"]
    reader.close()


def test_file_event_raising_callback_reaches_error_handler(dispatcher, sockpair):
    a, b = sockpair
    errors = []
    dispatcher.set_error_handler(errors.append)
    fe = dispatcher.create_file_event(a, lambda ready: [][1], LEVEL, READ)
    b.send(b"x")
    run_nonblock(dispatcher, 2)
    assert [type(e) for e in errors] == [IndexError, IndexError]
    fe.close()


# errors and close()


def test_file_event_close_is_idempotent_and_methods_after_close_raise(dispatcher, sockpair):
    a, b = sockpair
    rec = Recorder()
    fe = dispatcher.create_file_event(a, rec.callback("fe"), LEVEL, READ)
    fe.activate(READ)
    fe.close()
    fe.close()
    b.send(b"x")
    run_nonblock(dispatcher, 2)
    assert rec.labels == []  # neither the injected nor the real readiness
    with pytest.raises(DispatcherClosedError):
        fe.activate(READ)
    with pytest.raises(DispatcherClosedError):
        fe.set_enabled(READ)


def test_file_event_negative_fd_raises_value_error(dispatcher):
    with pytest.raises(ValueError):
        dispatcher.create_file_event(-1, lambda ready: None, LEVEL, READ)
    assert dispatcher.statistics().events_created == 0


def test_file_event_bad_descriptor_raises_oserror_and_counts_stay_balanced(dispatcher):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError):
        dispatcher.create_file_event(r, lambda ready: None, LEVEL, READ)
    assert dispatcher.statistics().events_live == 0


def test_file_event_trigger_must_be_a_file_trigger_type(dispatcher, sockpair):
    a, _b = sockpair
    with pytest.raises(TypeError):
        dispatcher.create_file_event(a, lambda ready: None, "level", READ)
    assert dispatcher.statistics().events_live == 0


def test_file_event_on_a_pipe(dispatcher):
    r, w = os.pipe()
    os.set_blocking(r, False)
    rec = Recorder()
    fe = dispatcher.create_file_event(r, rec.callback("fe", lambda ready: os.read(r, 100)), LEVEL, READ)
    os.write(w, b"x")
    run_nonblock(dispatcher, 2)
    assert ready_calls(rec) == [READ]
    fe.close()
    os.close(r)
    os.close(w)


# the libevent implementation


def test_file_event_impl_edge_write_refires_when_filled_and_drained_within_one_iteration(sockpair):
    # libevent only: the reference emulates EDGE by looking at the socket
    # between callbacks, and a fill followed by a drain in one iteration
    # leaves nothing to see (module docstring of reference_dispatcher).
    a, b = sockpair
    rec = Recorder()
    with DispatcherImpl("edge") as dispatcher:
        fe = dispatcher.create_file_event(a, rec.callback("fe"), EDGE, WRITE)
        run_nonblock(dispatcher)
        assert ready_calls(rec) == [WRITE]
        timer = dispatcher.create_timer(lambda: (fill_socket(a), drain_socket(b)))
        timer.enable_timer(0)
        run_nonblock(dispatcher, 3)
        assert ready_calls(rec) == [WRITE, WRITE]
        fe.close()
        timer.close()
        assert dispatcher.statistics().events_live == 0
