"""Build script for ``pyevent_envoy._libevent`` (cffi API mode, out of line).

Finding libevent (>= 2.1, with ``libevent_core`` and ``libevent_pthreads``):

1. ``PYEVENT_ENVOY_LIBEVENT_PREFIX``: a prefix holding ``include/event2/`` and
   ``lib/libevent_core.*``; the built module gets an rpath to it.
2. ``pkg-config libevent_core libevent_pthreads`` (honours ``PKG_CONFIG_PATH``).
3. The usual system prefixes (``/usr``, ``/usr/local``, ``/opt/homebrew``,
   ``/opt/local``).

When none works, :func:`find_libevent` raises :class:`LibeventNotFound` whose
message names the install command for each platform; ``setup.py`` calls it
before anything compiles.  All discovery lives in this file.

Importing this file has no side effects: ``setup.py`` hands
:func:`build_ffi` to cffi (``cffi_modules=["csrc/ffi_build.py:build_ffi"]``),
and ``python csrc/ffi_build.py`` compiles the module in place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
MODULE_NAME = "pyevent_envoy._libevent"
PREFIX_VAR = "PYEVENT_ENVOY_LIBEVENT_PREFIX"
MIN_VERSION = "2.1"
PKG_MODULES = ("libevent_core", "libevent_pthreads")
LIBRARIES = ["event_core", "event_pthreads"]
DEFAULT_PREFIXES = ("/usr", "/usr/local", "/opt/homebrew", "/opt/local")

INSTALL_HELP = f"""\
pyevent-envoy needs the libevent >= {MIN_VERSION} development files (headers and
libevent_core + libevent_pthreads), and they were not found.

Install them, then build again:
  Debian / Ubuntu:  sudo apt-get install -y libevent-dev pkg-config
  Fedora / RHEL:    sudo dnf install -y libevent-devel pkgconf-pkg-config
  Alpine:           sudo apk add libevent-dev pkgconf
  macOS (Homebrew): brew install libevent pkg-config

Or point {PREFIX_VAR} at a prefix that holds include/event2/event.h and
lib/libevent_core.* (for example a libevent built with ./configure --prefix).
"""


class LibeventNotFound(RuntimeError):
    """libevent's headers or libraries are missing; the message says how to fix it."""


def _from_prefix(prefix: Path) -> dict | None:
    header = prefix / "include" / "event2" / "event.h"
    if not header.is_file():
        return None
    libdirs = [d for d in (prefix / "lib", prefix / "lib64") if d.is_dir()]
    libdirs += sorted(p for p in (prefix / "lib").glob("*-linux-gnu") if p.is_dir())
    for libdir in libdirs:
        if any(libdir.glob("libevent_core.*")) and any(libdir.glob("libevent_pthreads.*")):
            return {
                "include_dirs": [str(prefix / "include")],
                "library_dirs": [str(libdir)],
                "libraries": list(LIBRARIES),
                "extra_link_args": [f"-Wl,-rpath,{libdir}"],
                "how": f"prefix {prefix}",
            }
    return None


def _pkg_config(*args: str) -> str | None:
    exe = os.environ.get("PKG_CONFIG") or shutil.which("pkg-config") or shutil.which("pkgconf")
    if exe is None:
        return None
    proc = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _from_pkg_config() -> dict | None:
    if _pkg_config(f"--atleast-version={MIN_VERSION}", *PKG_MODULES) is None:
        return None
    cflags = (_pkg_config("--cflags-only-I", *PKG_MODULES) or "").split()
    libs = (_pkg_config("--libs", *PKG_MODULES) or "").split()
    version = _pkg_config("--modversion", PKG_MODULES[0]) or "?"
    libdirs = [flag[2:] for flag in libs if flag.startswith("-L")]
    return {
        "include_dirs": [flag[2:] for flag in cflags if flag.startswith("-I")],
        "library_dirs": libdirs,
        "libraries": [flag[2:] for flag in libs if flag.startswith("-l")] or list(LIBRARIES),
        "extra_link_args": [f"-Wl,-rpath,{d}" for d in libdirs if not d.startswith("/usr/lib")],
        "how": f"pkg-config (libevent {version})",
    }


def find_libevent() -> dict:
    """Return compiler and linker settings for libevent, or raise LibeventNotFound."""
    prefix = os.environ.get(PREFIX_VAR)
    if prefix:
        found = _from_prefix(Path(prefix))
        if found is None:
            raise LibeventNotFound(
                f"{PREFIX_VAR}={prefix} holds no include/event2/event.h with "
                f"lib/libevent_core.* and lib/libevent_pthreads.*.\n\n{INSTALL_HELP}"
            )
        return found
    found = _from_pkg_config()
    if found is not None:
        return found
    for candidate in DEFAULT_PREFIXES:
        found = _from_prefix(Path(candidate))
        if found is not None:
            return found
    raise LibeventNotFound(INSTALL_HELP)


def _relative(path: Path) -> str:
    # setuptools wants relative paths for dependencies (it runs in the project root).
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def build_ffi() -> FFI:
    """Return the configured FFI builder; raises LibeventNotFound before anything compiles."""
    settings = find_libevent()
    settings.pop("how")
    ffi = FFI()
    ffi.cdef((HERE / "libevent_cdef.h").read_text())
    ffi.set_source(
        MODULE_NAME,
        '#include "shim.h"\n' + (HERE / "shim.c").read_text(),
        include_dirs=[str(HERE), *settings.pop("include_dirs")],
        depends=[_relative(HERE / "shim.h"), _relative(HERE / "shim.c")],
        extra_compile_args=["-O2"],
        **settings,
    )
    return ffi


if __name__ == "__main__":
    build_ffi().compile(verbose=True)
