"""Socketpair ping-pong: N round trips of one byte, both ends on one loop.

pyevent-envoy: ``FileEventImpl`` (EDGE, READ) on each end, ``os.read`` and
``os.write`` in the Python callback.
"""

from __future__ import annotations


def bench_ping_pong_vs_protocols(run_event_workload, impl: str) -> None:
    """asyncio/uvloop with their idiomatic transports and protocols (uvloop reads in C)."""
    result = run_event_workload("ping_pong", impl)
    assert result.counts["round_trips"] == result.n


def bench_ping_pong_vs_add_reader(run_event_workload, impl: str) -> None:
    """Like-for-like: asyncio/uvloop with ``add_reader`` and ``os.read``/``os.write``."""
    result = run_event_workload("ping_pong_fd", impl)
    assert result.counts["round_trips"] == result.n
