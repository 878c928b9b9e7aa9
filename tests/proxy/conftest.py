"""Lets the proxy tests import their helpers (``harness``, ``upstream``) under importlib mode.

Also the ``upstream`` fixture most proxy test modules share: one test
upstream (``upstream.Upstream`` named "app") per module.
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
