"""The compiled binding and the process-wide libevent set-up (Envoy's ``Libevent::Global``).

Only the ``*_impl`` modules import this.  Importing it fails with an
explanation when the extension was not built.
"""

from __future__ import annotations

try:
    from pyevent_envoy._libevent import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "pyevent_envoy._libevent is not built: install the package with "
        "'pip install .' (it needs libevent's headers: 'apt-get install libevent-dev "
        "pkg-config' on Debian/Ubuntu)"
    ) from exc

__all__ = ["ffi", "lib", "libevent_version", "libevent_version_number"]


def libevent_version() -> str:
    """The version string of the libevent loaded at run time, e.g. ``2.1.12-stable``."""
    return ffi.string(lib.event_get_version()).decode()


def libevent_version_number() -> int:
    """``event_get_version_number()``: ``0x02010c00`` for 2.1.12."""
    return int(lib.event_get_version_number())
