"""100,000 one-shot timers with random 0-100 ms delays (the same seed everywhere).

pyevent-envoy: ``dispatcher.create_timer(cb).enable_timer(delay)``;
asyncio/uvloop: ``loop.call_later(delay, cb)``.  Timed from the first create
to the last fire.
"""

from __future__ import annotations


def bench_timers_random_delays(run_event_workload, impl: str) -> None:
    result = run_event_workload("timers", impl)
    assert result.counts["timers_fired"] == result.n
