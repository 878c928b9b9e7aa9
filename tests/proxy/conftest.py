"""Lets the proxy tests import their helpers (``harness``, ``upstream``) under importlib mode.

Also the ``upstream`` fixture most proxy test modules share: one test
upstream (``upstream.Upstream`` named "app") per module; and for the
upstream-health tests, ``upstreams`` (fresh upstreams "a" and "b" per
test) and ``setups`` (makes :class:`cluster_setup.Setup` proxies, stopped
after the test).
"""

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
def upstreams():
    a, b = Upstream("a"), Upstream("b")
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def setups():
    made: list[Setup] = []

    def make(kind: str, ports: list[int], cluster_extra: str) -> Setup:
        setup = Setup(kind, ports, cluster_extra)
        made.append(setup)
        return setup

    yield make
    for setup in made:
        setup.close()
