"""A dispatcher and a timer: tick three times, then return."""

from pyevent_envoy.event import DispatcherImpl, RunType

with DispatcherImpl("main_thread") as dispatcher:
    ticks = []

    def on_tick() -> None:
        ticks.append(dispatcher.approximate_monotonic_time())
        print("tick", len(ticks))
        if len(ticks) < 3:
            timer.enable_timer(0.01)  # one-shot: re-arm it to repeat

    timer = dispatcher.create_timer(on_tick)
    timer.enable_timer(0.01)  # seconds (float), or a datetime.timedelta
    dispatcher.run(RunType.BLOCK)  # returns once nothing is armed or queued
    print("enabled after the last tick:", timer.enabled())
    timer.close()
