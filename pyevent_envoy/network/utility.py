"""Network helpers that ask the operating system (Envoy's ``Network::Utility``)."""

from __future__ import annotations

import os
import socket

from pyevent_envoy.event.libevent import ffi, lib

__all__ = ["get_local_address"]

_LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


def get_local_address(family: int = socket.AF_INET) -> str:
    """The host's own IP address, as Envoy 1.40 picks it at start-up for its ``LocalInfo``.

    The first address of ``family`` that ``getifaddrs()`` lists and that is
    not the loopback address itself (``127.0.0.1``, ``::1``); the loopback
    address when there is none, as on a host whose only interface is ``lo``.
    The connection manager appends it to ``x-forwarded-for`` for a loopback
    client (``use_remote_address``).

    It asks the kernel (one netlink exchange), so call it once at start-up and
    keep the answer, as Envoy does; never on a worker per request.

    The C helper calls ``getifaddrs()`` because that is what Envoy calls, so
    both walk the same list in the same order and pick the same address.
    The standard library has no ``getifaddrs``, and the ``SIOCGIFCONF`` ioctl
    (reachable through ``fcntl``) lists IPv4 addresses only, in an order of
    its own.

    Raises:
        ValueError: ``family`` is neither ``AF_INET`` nor ``AF_INET6``.
        OSError: ``getifaddrs()`` failed.
    """
    if family not in _LOOPBACK:
        raise ValueError(f"family must be AF_INET or AF_INET6, got {family!r}")
    text = ffi.new("char[]", 64)  # INET6_ADDRSTRLEN is 46
    found = lib.pe_local_address(family, text, 64)
    if found < 0:
        errno = ffi.errno
        raise OSError(errno, f"getifaddrs: {os.strerror(errno)}")
    return ffi.string(text).decode() if found else _LOOPBACK[family]

