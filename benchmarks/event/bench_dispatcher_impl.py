"""Cross-thread posts: producer threads post N no-op callbacks to a loop in another thread.

pyevent-envoy: ``dispatcher.post`` while ``dispatcher.run(RunType.RUN_UNTIL_EXIT)``
runs in the loop thread; asyncio/uvloop: ``loop.call_soon_threadsafe``.
Timed from the first post to the run of the last callback.
"""

from __future__ import annotations


def bench_post_cross_thread_1_producer(run_event_workload, impl: str) -> None:
    result = run_event_workload("cross_thread_post", impl)
    assert result.counts["callbacks"] == result.n


def bench_post_cross_thread_4_producers(run_event_workload, impl: str) -> None:
    result = run_event_workload("cross_thread_post_4", impl)
    assert result.counts["callbacks"] == result.n
