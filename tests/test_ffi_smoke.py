"""Smoke test of the compiled binding, ``pyevent_envoy._libevent``.

Purpose: fail fast, with an obvious message, when the extension was built
against the wrong libevent, linked to a different one at run time, or its
cffi declarations disagree with the headers.  Everything else in the suite
assumes these hold.
"""

import sys

import pytest

from pyevent_envoy.event import DispatcherImpl, FileReadyType, libevent_version
from pyevent_envoy.event.libevent import ffi, lib, libevent_version_number


def test_ffi_event_get_version_number_is_at_least_2_1():
    assert lib.event_get_version_number() >= 0x02010000
    assert libevent_version_number() == lib.event_get_version_number()


def test_ffi_runtime_library_matches_the_headers_built_against():
    # Same major.minor at run time as in the headers (EV_CLOSED, EVLOOP_NO_EXIT_ON_EMPTY need 2.1).
    assert lib.event_get_version_number() >> 16 == lib.LIBEVENT_VERSION_NUMBER >> 16


def test_ffi_version_string_agrees_with_version_number():
    number = lib.event_get_version_number()
    major, minor, patch = (int(part) for part in libevent_version().split("-")[0].split(".")[:3])
    assert (major, minor, patch) == (number >> 24, (number >> 16) & 0xFF, (number >> 8) & 0xFF)


def test_ffi_libevent_constants_have_their_documented_values():
    # event2/event.h: these values are part of libevent's ABI.
    assert (lib.EV_TIMEOUT, lib.EV_READ, lib.EV_WRITE, lib.EV_SIGNAL) == (0x01, 0x02, 0x04, 0x08)
    assert (lib.EV_PERSIST, lib.EV_ET, lib.EV_CLOSED) == (0x10, 0x20, 0x80)
    assert (lib.EVLOOP_ONCE, lib.EVLOOP_NONBLOCK, lib.EVLOOP_NO_EXIT_ON_EMPTY) == (0x01, 0x02, 0x04)


def test_ffi_shim_ready_bits_match_file_ready_type():
    assert lib.PE_READY_READ == FileReadyType.READ
    assert lib.PE_READY_WRITE == FileReadyType.WRITE
    assert lib.PE_READY_CLOSED == FileReadyType.CLOSED
    assert lib.PE_READY_TIMEOUT & (lib.PE_READY_READ | lib.PE_READY_WRITE | lib.PE_READY_CLOSED) == 0
    assert lib.PE_RECORD_MASK == (1 << lib.PE_RECORD_SHIFT) - 1


def test_ffi_loop_new_run_and_free():
    loop = lib.pe_loop_new(0)
    assert loop != ffi.NULL
    try:
        # Nothing registered: one non-blocking pass reports "no events".
        assert lib.pe_loop_run(loop, lib.EVLOOP_ONCE | lib.EVLOOP_NONBLOCK) in (lib.PE_RUN_NONE, lib.PE_RUN_EMPTY)
    finally:
        lib.pe_loop_free(loop)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is the Linux backend")
def test_ffi_backend_is_epoll_on_linux():
    with DispatcherImpl("smoke") as dispatcher:
        assert dispatcher.scheduler.method == "epoll"
