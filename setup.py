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
    spec = importlib.util.spec_from_file_location("_pe_ffi_build", HERE / "csrc" / "ffi_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.find_libevent()
    except module.LibeventNotFound as exc:
        sys.stderr.write(f"\nerror: {exc}\n")
        sys.exit(1)


# Every setup.py run hands the build script to cffi, which configures the
# extension right away; check first, so the failure is this one message.
_check_libevent()

setup(cffi_modules=["csrc/ffi_build.py:build_ffi", "csrc/ffi_build.py:build_http1_ffi"])
