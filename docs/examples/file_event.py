"""File events on a socketpair: ``a`` sends back what it reads, upper-cased."""

import socket

from pyevent_envoy.event import (
    DispatcherImpl,
    FileReadyType,
    FileTriggerType,
    RunType,
)

a, b = socket.socketpair()
a.setblocking(False)
b.setblocking(False)

with DispatcherImpl("main_thread") as dispatcher:

    def on_a(events: FileReadyType) -> None:
        # EDGE: one call per change of readiness, so read until EAGAIN.
        while True:
            try:
                data = a.recv(4096)
            except BlockingIOError:
                return  # drained; the next bytes trigger a new call
            if not data:  # end of file: the peer closed
                print("a: peer closed")
                a_event.close()
                return
            print("a: got", data, repr(events))
            a.send(data.upper())

    def on_b(events: FileReadyType) -> None:
        print("b: got", b.recv(4096))
        b_event.close()  # stop watching first, then close the socket
        b.close()

    READ = FileReadyType.READ
    EDGE, LEVEL = FileTriggerType.EDGE, FileTriggerType.LEVEL
    a_event = dispatcher.create_file_event(a, on_a, EDGE, READ)
    b_event = dispatcher.create_file_event(b, on_b, LEVEL, READ)
    b.send(b"ping")
    dispatcher.run(RunType.BLOCK)  # returns when both events are closed

a.close()
