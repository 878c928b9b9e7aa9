"""Callback chains: a callback that re-schedules itself N times.

pyevent-envoy: ``SchedulableCallbackImpl``; asyncio/uvloop: ``loop.call_soon``.
"""

from __future__ import annotations


def bench_callback_chain_current_iteration(run_event_workload, impl: str) -> None:
    """``schedule_callback_current_iteration``: Envoy runs same-iteration work
    without polling in between, here up to 16 rounds per poll; asyncio and
    uvloop poll once per ``call_soon`` generation, so this row is not
    like-for-like."""
    result = run_event_workload("chain_current", impl)
    assert result.counts["callbacks"] == result.n


def bench_callback_chain_next_iteration(run_event_workload, impl: str) -> None:
    """``schedule_callback_next_iteration``: one poll per step, like ``call_soon``."""
    result = run_event_workload("chain_next", impl)
    assert result.counts["callbacks"] == result.n
