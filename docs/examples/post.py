"""Posting to a dispatcher from another thread."""

import threading

from pyevent_envoy.event import DispatcherImpl, RunType

with DispatcherImpl("main_thread") as dispatcher:
    results = []

    def record(i: int) -> None:
        results.append((i, dispatcher.is_thread_safe()))

    def producer() -> None:
        for i in range(3):
            # record(i) runs on the dispatcher's thread, in FIFO order.
            dispatcher.post(lambda i=i: record(i))
        # exit() is callable from any thread too; posting it orders it after
        # the callbacks above, so none of them is left behind.
        dispatcher.post(dispatcher.exit)

    thread = threading.Thread(target=producer)
    thread.start()
    dispatcher.run(RunType.RUN_UNTIL_EXIT)  # waits, even with nothing to do
    thread.join()
    print(results)
