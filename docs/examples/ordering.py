"""Where each kind of work runs, when a file event's callback schedules it."""

import socket

from pyevent_envoy.event import (
    DispatcherImpl,
    FileReadyType,
    FileTriggerType,
    RunType,
)

a, b = socket.socketpair()
log = []

with DispatcherImpl("main_thread") as dispatcher:
    timer = dispatcher.create_timer(lambda: log.append("timer, zero delay"))
    next_cb = dispatcher.create_schedulable_callback(
        lambda: log.append("next-iteration callback")
    )
    current_cb = dispatcher.create_schedulable_callback(
        lambda: log.append("current-iteration callback")
    )

    class Connection:
        def close(self) -> None:
            log.append("deferred delete")

    def on_readable(events: FileReadyType) -> None:
        log.append("file event")
        a.recv(1)
        timer.enable_timer(0)
        next_cb.schedule_callback_next_iteration()
        dispatcher.post(lambda: log.append("post"))
        dispatcher.deferred_delete(Connection())
        current_cb.schedule_callback_current_iteration()

    event = dispatcher.create_file_event(
        a, on_readable, FileTriggerType.LEVEL, FileReadyType.READ
    )
    b.send(b"x")
    for iteration in (1, 2):
        log.append(f"-- iteration {iteration}")
        dispatcher.run(RunType.NON_BLOCK)  # exactly one loop iteration
    event.close()

a.close()
b.close()
print("\n".join(log))
