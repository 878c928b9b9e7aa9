"""Socket addresses (Envoy's ``Network::Address::Instance``, IP only)."""

from __future__ import annotations

import ipaddress
import socket
from typing import NamedTuple

__all__ = ["Address", "parse_ip_address"]


class Address(NamedTuple):
    """An IP address and port; ``str()`` gives Envoy's ``ip:port`` form (``[ip]:port`` for IPv6)."""

    ip: str
    port: int

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.ip else socket.AF_INET

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


def parse_ip_address(ip: str, port: int) -> Address:
    """Validate an IP literal and a port.

    Raises:
        ValueError: not an IP literal, or the port is outside 0-65535.
    """
    parsed = ipaddress.ip_address(ip)
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port {port} is outside 0-65535")
    return Address(str(parsed), int(port))
