"""Shared fixtures for the pytest-benchmark files under ``benchmarks/``.

Every benchmark runs one workload of ``event_loop_workloads.py`` on each
implementation (the ``impl`` fixture), so pytest-benchmark's table shows
pyevent-envoy, asyncio and uvloop side by side in one group per workload.
For paired ratios against targets, use ``compare_event_loops.py`` instead.
"""

from __future__ import annotations

import statistics
from typing import Callable

import pytest

from event_loop_workloads import IMPLEMENTATIONS, WORKLOADS, Result, run_workload, settle_allocator

settle_allocator()  # as compare_event_loops.py's workers do; see its docstring


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("event workloads")
    group.addoption(
        "--workload-scale",
        type=float,
        default=1.0,
        help="multiply every workload size (N) by this (default 1.0; 0.1 for a smoke run)",
    )
    group.addoption(
        "--workload-rounds",
        type=int,
        default=3,
        help="timed rounds per benchmark, after one warm-up round (default 3)",
    )


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> str:
    """``pyevent-envoy``, ``asyncio`` or ``uvloop``."""
    return request.param


@pytest.fixture
def run_event_workload(benchmark, request: pytest.FixtureRequest) -> Callable[[str, str], Result]:
    """Benchmark one workload on one implementation; return its last :class:`Result`.

    Each round builds a fresh loop.  pytest-benchmark times the whole call
    (loop set-up and teardown included); the time measured inside the loop,
    which is what ``compare_event_loops.py`` reports, is kept in
    ``extra_info`` along with N and the verified counts.
    """
    scale = request.config.getoption("--workload-scale")
    rounds = request.config.getoption("--workload-rounds")

    def run(name: str, impl: str) -> Result:
        workload = WORKLOADS[name]
        n = max(4, int(workload.n * scale))
        n -= n % 4  # a multiple of every producer count
        results: list[Result] = []

        def once() -> None:
            results.append(run_workload(name, impl, n))

        benchmark.group = workload.title
        benchmark.pedantic(once, rounds=rounds, iterations=1, warmup_rounds=1)
        timed = results[1:]  # results[0] is the warm-up
        benchmark.extra_info.update(
            workload=name,
            impl=impl,
            n=n,
            unit=workload.unit,
            inner_median_s=statistics.median(r.seconds for r in timed),
            inner_rate_per_s=n / statistics.median(r.seconds for r in timed),
            counts=timed[-1].counts,
        )
        return timed[-1]

    return run
