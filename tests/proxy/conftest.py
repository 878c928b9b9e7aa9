"""Lets the proxy tests import their helpers (``harness``, ``upstream``) under importlib mode."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
