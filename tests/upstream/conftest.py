"""Shared fixtures for the upstream tests: a stub resolver, a main dispatcher, real workers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# ``upstream_helpers`` is importable under ``--import-mode=importlib`` too.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from upstream_helpers import StubResolver, drain_main, on_each_worker  # noqa: E402

from pyevent_envoy.event import DispatcherImpl  # noqa: E402
from pyevent_envoy.server import WorkerImpl  # noqa: E402
from pyevent_envoy.thread_local import InstanceImpl  # noqa: E402


@pytest.fixture
def stub_resolver() -> StubResolver:
    resolver = StubResolver()
    yield resolver
    if resolver.gate is not None:
        resolver.gate.set()  # never leave a resolver thread blocked


def _passed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "report_call", None)
    return report is not None and report.passed


def _close_checked(request: pytest.FixtureRequest, main: DispatcherImpl) -> None:
    """Close ``main``; when the test passed, it must have closed every event it created."""
    if main.closed:
        return
    drain_main(main)
    live = main.statistics().events_live
    main.close()
    if _passed(request):
        assert live == 0, f"events left on the main dispatcher: {live}"


@pytest.fixture
def main_dispatcher(request: pytest.FixtureRequest) -> DispatcherImpl:
    """A main dispatcher, closed at teardown, with a leak check."""
    main = DispatcherImpl("main_thread")
    yield main
    _close_checked(request, main)


@pytest.fixture
def threading_setup(request: pytest.FixtureRequest):
    """A thread-local registry, its main dispatcher and two started workers.

    Teardown follows the server's order: global threading shut down, workers
    stopped, then the main thread's values dropped and its dispatcher closed.
    """
    tls = InstanceImpl()
    main = DispatcherImpl("main_thread")
    tls.register_thread(main, main=True)
    workers = [WorkerImpl(f"worker_{i}", tls=tls) for i in range(2)]
    for worker in workers:
        worker.start()
    yield tls, main, workers
    # Let the workers run what the test posted last (slot clears, pool drains),
    # so that stopping them drops nothing.
    on_each_worker([w for w in workers if w.thread is not None and w.thread.is_alive()], lambda: None)
    if not tls.is_shutdown():
        tls.shutdown_global_threading()
    for worker in workers:
        worker.stop()
    tls.shutdown_thread()
    _close_checked(request, main)
