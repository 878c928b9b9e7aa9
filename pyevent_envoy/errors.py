"""The exceptions pyevent-envoy raises.

Everything derives from :class:`PyEventEnvoyError`, with the built-in base
that fits where there is one, so ``except OSError`` still catches a libevent
failure.
"""

from __future__ import annotations

__all__ = ["PyEventEnvoyError", "LibeventError", "DispatcherClosedError"]


class PyEventEnvoyError(Exception):
    """Base class of every pyevent-envoy exception."""


class LibeventError(PyEventEnvoyError, OSError):
    """A libevent call failed.

    Attributes:
        function: the C function that returned the error.
    """

    def __init__(self, function: str, message: str = "failed") -> None:
        super().__init__(f"{function}: {message}")
        self.function = function


class DispatcherClosedError(PyEventEnvoyError, RuntimeError):
    """The dispatcher (or the event) was used after :meth:`close`."""
