"""``get_local_address``: the host's own address, found as Envoy's LocalInfo finds it.

That Envoy 1.40 picks the same address is checked end to end in
``tests/proxy/test_internal_requests.py`` (``x-forwarded-for``); here, that
the answer is one of this host's addresses, found independently with the
``SIOCGIFADDR`` ioctl per interface, and loopback only when the host has
nothing else.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

import pytest

from pyevent_envoy.network.utility import get_local_address

SIOCGIFADDR = 0x8915  # Linux


def _primary_ipv4_addresses() -> set[str]:
    """Each interface's primary IPv4 address (interfaces without one are skipped)."""
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on this interface
            found.add(socket.inet_ntoa(answer[20:24]))
    return found


@pytest.mark.skipif(not hasattr(socket, "if_nameindex"), reason="needs socket.if_nameindex")
def test_get_local_address_is_an_address_of_this_host():
    others = _primary_ipv4_addresses() - {"127.0.0.1"}
    address = get_local_address()
    assert ipaddress.ip_address(address).version == 4
    if others:
        # (getifaddrs also lists secondary addresses, which SIOCGIFADDR does not.)
        assert address != "127.0.0.1"
        with socket.socket() as sock:
            sock.bind((address, 0))  # one of ours: it can be bound
    else:
        assert address == "127.0.0.1"


def test_get_local_address_ipv6_has_no_scope_id():
    address = get_local_address(socket.AF_INET6)
    assert ipaddress.ip_address(address).version == 6
    assert "%" not in address  # no scope id, as Envoy prints it


def test_get_local_address_refuses_other_families():
    with pytest.raises(ValueError, match="AF_INET or AF_INET6"):
        get_local_address(socket.AF_UNIX)
