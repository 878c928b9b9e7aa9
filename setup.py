"""Builds the cffi extension; all metadata lives in pyproject.toml.

libevent is looked up before anything compiles, so a machine without its
headers gets the install command instead of a compiler error.
"""

import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, setup

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

# The codec's head scanner and builder: a CPython extension, since what it
# makes is Python objects (csrc/http1_module.c says why).  Sans-I/O: no
# libevent here.
HTTP1_EXTENSION = Extension(
    "pyevent_envoy._http1",
    sources=["csrc/http1_module.c", "csrc/http1_scan.c", "csrc/http1_codec.c"],
    depends=["csrc/http1_scan.h", "csrc/http1_module.h", "csrc/slots.h"],
    include_dirs=["csrc"],
    extra_compile_args=["-O2"],
)

# The network layer's socket reads and writes: a CPython extension for the
# same reason (a read returns one bytes object, a gathered write takes the
# buffer's list as it is; csrc/sockio_module.c), and the plaintext
# connection's I/O methods around them (csrc/connection_io.c).
SOCKIO_EXTENSION = Extension(
    "pyevent_envoy._sockio",
    sources=["csrc/sockio_module.c", "csrc/connection_io.c"],
    depends=["csrc/sockio.h", "csrc/slots.h"],
    include_dirs=["csrc"],
    extra_compile_args=["-O2"],
)

# The header map's storage and hot lookups (csrc/headers_module.c): the
# base type of pyevent_envoy.http.HeaderMap.
HEADERS_EXTENSION = Extension(
    "pyevent_envoy._headers",
    sources=["csrc/headers_module.c"],
    extra_compile_args=["-O2"],
)

# The connections' read and write buffers (csrc/buffer_module.c): the base
# type of pyevent_envoy.network.buffer's OwnedBuffer and WatermarkBuffer.
BUFFER_EXTENSION = Extension(
    "pyevent_envoy._buffer",
    sources=["csrc/buffer_module.c"],
    extra_compile_args=["-O2"],
)

# A histogram's per-thread bin counts (csrc/stats_module.c): the base type
# of pyevent_envoy.stats.histogram.HistogramRecorder.
STATS_EXTENSION = Extension(
    "pyevent_envoy._stats",
    sources=["csrc/stats_module.c"],
    extra_compile_args=["-O2"],
)

# Base types whose instances start with their attributes set
# (csrc/fields_module.c, through pyevent_envoy._defaults).
FIELDS_EXTENSION = Extension(
    "pyevent_envoy._fields",
    sources=["csrc/fields_module.c"],
    extra_compile_args=["-O2"],
)

# The HTTP connection manager's per-stream bookkeeping
# (csrc/conn_manager_module.c): C methods of its classes.
CONN_MANAGER_EXTENSION = Extension(
    "pyevent_envoy._conn_manager",
    sources=["csrc/conn_manager_module.c"],
    depends=["csrc/slots.h"],
    include_dirs=["csrc"],
    extra_compile_args=["-O2"],
)

# The event layer's per-event methods (csrc/event_module.c): C methods of
# its schedulable callbacks and file events.
EVENT_EXTENSION = Extension(
    "pyevent_envoy._event",
    sources=["csrc/event_module.c"],
    depends=["csrc/slots.h"],
    include_dirs=["csrc"],
    extra_compile_args=["-O2"],
)

# The upstream connection pool's per-request methods
# (csrc/conn_pool_module.c): C methods of its pool and codec client.
CONN_POOL_EXTENSION = Extension(
    "pyevent_envoy._conn_pool",
    sources=["csrc/conn_pool_module.c"],
    depends=["csrc/slots.h"],
    include_dirs=["csrc"],
    extra_compile_args=["-O2"],
)

setup(
    cffi_modules=["csrc/ffi_build.py:build_ffi"],
    ext_modules=[HTTP1_EXTENSION, SOCKIO_EXTENSION, HEADERS_EXTENSION, BUFFER_EXTENSION, STATS_EXTENSION, FIELDS_EXTENSION, CONN_MANAGER_EXTENSION, EVENT_EXTENSION, CONN_POOL_EXTENSION],
)
