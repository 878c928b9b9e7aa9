"""Builds the cffi extension; all metadata lives in pyproject.toml.

libevent is looked up before anything compiles, so a machine without its
headers gets the install command instead of a compiler error.
"""

import importlib.util
import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent


def _check_libevent() -> None:
    spec = importlib.util.spec_from_file_location("_pe_ffi_probe", HERE / "csrc" / "ffi_build.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # LibeventNotFound, already explained on stderr
        if type(exc).__name__ == "LibeventNotFound":
            sys.exit(1)
        raise


if any(arg in sys.argv for arg in ("build", "build_ext", "bdist_wheel", "install", "develop", "editable_wheel")):
    _check_libevent()

setup(cffi_modules=["csrc/ffi_build.py:ffibuilder"])
