"""Signal events: delivery on the dispatcher's thread, handler restore on close.

Every test installs its own Python handler for the signal first and puts
back the original at the end, so a stray signal never kills the test run.
"""

import os
import signal
import threading
import time

import pytest

from pyevent_envoy.errors import DispatcherClosedError
from pyevent_envoy.event import DispatcherImpl, RunType
from pyevent_envoy.testing import Recorder, run_nonblock, run_until

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")


@pytest.fixture
def python_handler():
    """A Python-level SIGUSR1 handler recording each call; the original is restored afterwards."""
    calls = []
    original = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    yield calls
    signal.signal(signal.SIGUSR1, original)


def wait_for_python_handler(calls, count, timeout=10.0):
    # Python runs its handlers on the main thread between bytecodes.
    deadline = time.monotonic() + timeout
    while len(calls) < count and time.monotonic() < deadline:
        time.sleep(0.001)


def test_signal_listen_for_signal_delivers_and_close_restores_the_previous_handler(dispatcher, python_handler):
    rec = Recorder()
    event = dispatcher.listen_for_signal(signal.SIGUSR1, rec.callback("signal"))
    os.kill(os.getpid(), signal.SIGUSR1)
    run_until(dispatcher, lambda: len(rec) == 1, timeout=30)
    assert rec.labels == ["signal"]
    assert python_handler == []  # the dispatcher had the signal, not the previous handler
    event.close()
    os.kill(os.getpid(), signal.SIGUSR1)
    wait_for_python_handler(python_handler, 1)
    assert python_handler == [signal.SIGUSR1]
    run_nonblock(dispatcher, 2)
    assert rec.labels == ["signal"]


def test_signal_each_delivery_runs_the_callback_on_the_dispatcher_thread(dispatcher, python_handler):
    threads = []
    event = dispatcher.listen_for_signal(signal.SIGUSR1, lambda: threads.append(threading.get_ident()))
    for n in range(1, 4):
        os.kill(os.getpid(), signal.SIGUSR1)
        run_until(dispatcher, lambda n=n: len(threads) == n, timeout=30)
    assert threads == [threading.get_ident()] * 3
    event.close()


def test_signal_event_keeps_run_block_going_until_closed(dispatcher, python_handler):
    rec = Recorder()

    def on_signal():
        rec.record("signal")
        event.close()  # nothing left: BLOCK returns

    event = dispatcher.listen_for_signal(signal.SIGUSR1, on_signal)
    assert dispatcher.statistics().events_armed == 1
    sender = threading.Timer(0.05, os.kill, args=(os.getpid(), signal.SIGUSR1))
    sender.start()
    dispatcher.run(RunType.BLOCK)
    sender.join()
    assert rec.labels == ["signal"]


def test_signal_close_is_idempotent(dispatcher, python_handler):
    event = dispatcher.listen_for_signal(signal.SIGUSR1, lambda: None)
    event.close()
    event.close()
    assert dispatcher.statistics().events_live == 0


def test_signal_leftover_is_closed_with_a_warning_and_the_handler_restored(make_dispatcher, python_handler):
    dispatcher = make_dispatcher("signals")
    dispatcher.listen_for_signal(signal.SIGUSR1, lambda: None)
    with pytest.warns(ResourceWarning, match="SignalEvent"):
        dispatcher.close()
    os.kill(os.getpid(), signal.SIGUSR1)
    wait_for_python_handler(python_handler, 1)
    assert python_handler == [signal.SIGUSR1]


@pytest.mark.parametrize("signum", [0, -1, signal.NSIG])
def test_signal_invalid_signal_number_raises_value_error(dispatcher, signum):
    with pytest.raises(ValueError):
        dispatcher.listen_for_signal(signum, lambda: None)
    assert dispatcher.statistics().events_live == 0


def test_signal_listen_on_a_closed_dispatcher_raises_and_counts_nothing(dispatcher):
    dispatcher.close()
    with pytest.raises(DispatcherClosedError):
        dispatcher.listen_for_signal(signal.SIGUSR1, lambda: None)
    assert dispatcher.statistics().events_live == 0


def test_signal_raising_callback_reaches_error_handler(dispatcher, python_handler):
    errors = []
    dispatcher.set_error_handler(errors.append)
    event = dispatcher.listen_for_signal(signal.SIGUSR1, lambda: 1 / 0)
    os.kill(os.getpid(), signal.SIGUSR1)
    run_until(dispatcher, lambda: bool(errors), timeout=30)
    assert [type(e) for e in errors] == [ZeroDivisionError]
    event.close()


def test_signal_impl_delivers_to_a_dispatcher_on_another_thread(python_handler):
    # libevent only: its handler is process-wide C, so the dispatcher may run
    # on any thread; the reference relies on Python's handlers (main thread).
    dispatcher = DispatcherImpl("signals")
    seen = []
    ready = threading.Event()

    def on_signal():
        seen.append(threading.get_ident())
        dispatcher.exit()

    def worker():
        dispatcher.post(ready.set)
        dispatcher.run(RunType.RUN_UNTIL_EXIT)

    event = dispatcher.listen_for_signal(signal.SIGUSR1, on_signal)
    thread = threading.Thread(target=worker, name="signal-worker")
    thread.start()
    assert ready.wait(30)
    os.kill(os.getpid(), signal.SIGUSR1)
    thread.join(30)
    assert not thread.is_alive()
    assert seen == [thread.ident]
    event.close()
    assert dispatcher.statistics().events_live == 0
    dispatcher.close()
