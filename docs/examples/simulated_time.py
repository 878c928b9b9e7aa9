"""A timer tested on simulated time: exact deadlines, no sleeping."""

from pyevent_envoy.testing import (
    Recorder,
    ReferenceDispatcher,
    SimulatedClock,
    run_nonblock,
)

clock = SimulatedClock()
recorder = Recorder()
with ReferenceDispatcher("test", clock=clock) as dispatcher:
    timer = dispatcher.create_timer(recorder.callback("timer"))
    timer.enable_timer(5.0)

    clock.advance(4.999)
    run_nonblock(dispatcher)
    print("after 4.999 s:", recorder.labels)

    clock.advance(0.001)
    run_nonblock(dispatcher)
    print("after 5.000 s:", recorder.labels)
    timer.close()
