"""Listening TCP sockets from /proc/net/tcp and tcp6: who listens where, on all interfaces?"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass

LISTEN = "0A"


@dataclass(frozen=True, slots=True)
class Listener:
    address: str
    port: int

    @property
    def all_interfaces(self) -> bool:
        return self.address in ("0.0.0.0", "::")  # noqa: S104 - a test, not a bind

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback


def _address(hex_text: str, byteorder: str) -> str:
    raw = bytes.fromhex(hex_text)
    if byteorder == "little":
        # The kernel prints each 32-bit word of the address in host byte order.
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    address = ipaddress.IPv6Address(raw)
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else str(address)


def parse_proc_net_tcp(text: str, byteorder: str = sys.byteorder) -> list[Listener]:
    """Listening sockets; a malformed row is skipped (the file is the kernel's)."""
    listeners = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN:
            continue
        address, _, port = fields[1].partition(":")
        try:
            listeners.append(Listener(_address(address, byteorder), int(port, 16)))
        except ValueError:
            continue
    return listeners
