"""A worker: a dispatcher on a thread of its own, named ``wrk:<name>``."""

import threading

from pyevent_envoy.server import WorkerImpl
from pyevent_envoy.thread import current_thread_name

fired = threading.Event()

# Leaving the block calls stop(): the loop exits and the thread is joined.
with WorkerImpl("worker_0") as worker:
    worker.start(lambda: print("started on", current_thread_name()))

    def arm_timer() -> None:
        # Runs on the worker's thread, the one that owns its dispatcher.
        def on_timer() -> None:
            print("timer fired on", current_thread_name())
            timer.close()
            fired.set()

        timer = worker.dispatcher.create_timer(on_timer)
        timer.enable_timer(0.01)

    worker.dispatcher.post(arm_timer)
    assert fired.wait(5)

print("worker thread alive after stop():", worker.thread.is_alive())
