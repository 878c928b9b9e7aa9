"""Handing an immutable value to every worker through a thread-local slot."""

import threading

from pyevent_envoy.event import DispatcherImpl, RunType
from pyevent_envoy.server import WorkerImpl
from pyevent_envoy.thread_local import InstanceImpl

tls = InstanceImpl()
main = DispatcherImpl("main_thread")
tls.register_thread(main, main=True)
# Each worker registers its dispatcher with tls when it is created.
workers = [WorkerImpl(f"worker_{i}", tls=tls) for i in range(2)]
for worker in workers:
    worker.start()

config = tls.allocate_slot()
# One immutable value, shared by every thread.
config.set(lambda dispatcher: ("routes", "v1"))

seen = []
lock = threading.Lock()


def report(value) -> None:  # runs on each thread, with that thread's value
    with lock:
        seen.append((tls.dispatcher().name, value))


# Main first (inline), then each worker through a post; the completion is
# posted back to main once the last worker has run.
config.run_on_all_threads(report, complete_cb=main.exit)
main.run(RunType.RUN_UNTIL_EXIT)
for name, value in sorted(seen):
    print(name, value)

config.close()
tls.shutdown_global_threading()
for worker in workers:
    worker.stop()
tls.shutdown_thread()
main.close()
