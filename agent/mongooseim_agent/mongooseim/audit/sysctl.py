"""sysctl.d(5) files, for a host image whose /proc is not the one that will run it.

Files named alike in several directories: the earliest directory wins; the survivors apply
in file-name order, then /etc/sysctl.conf; a later assignment wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SYSCTL_DIRS: tuple[str, ...] = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"
# The kernel's own values when nothing sets them (file-max scales with RAM: not known here).
KERNEL_DEFAULTS = {"fs.nr_open": "1048576", "net.ipv4.ip_local_port_range": "32768 60999"}


@dataclass(frozen=True, slots=True)
class SysctlValue:
    key: str
    value: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def normalize_key(key: str) -> str:
    return key.strip().lstrip("-").replace("/", ".")


def parse_sysctl(text: str, path: str) -> list[SysctlValue]:
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        out.append(SysctlValue(normalize_key(key), " ".join(value.split()), path, number))
    return out


def merge(values: Iterable[SysctlValue]) -> dict[str, SysctlValue]:
    merged: dict[str, SysctlValue] = {}
    for value in values:
        merged[value.key] = value
    return merged


def parse_port_range(text: str) -> tuple[int, int]:
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected 'low high', got {text!r}")
    low, high = int(parts[0]), int(parts[1])
    if low > high:
        raise ValueError(f"low {low} above high {high}")
    return low, high
