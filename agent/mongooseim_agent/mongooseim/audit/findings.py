"""What an audit check reports, and the guide's recommendations it measures against."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

CHECK_NAMES: tuple[str, ...] = (
    "nofile",
    "nofile_source",
    "erl_max_ports",
    "node_name",
    "dist_port_range",
    "epmd",
    "cookie",
    "kernel_limits",
    "cluster",
)

# The operations guide: nofile 1,000,000 for the service user; ERL_MAX_PORTS 350000 with
# TLS, 250000 without, for 100k users.
GUIDE_NOFILE = 1_000_000
GUIDE_USERS = 100_000
GUIDE_PORTS_TLS = 350_000
GUIDE_PORTS_PLAIN = 250_000
# Beyond one fd per connection: s2s, database pools, mnesia and log files, distribution, and
# the reconnect storm after a restart.
NOFILE_HEADROOM_RATIO = 0.25
NOFILE_HEADROOM_FIXED = 10_000
# Port table size ERTS uses when neither ERL_MAX_PORTS nor +Q is set (measured on OTP 25).
VM_DEFAULT_PORTS = 65536
# Outgoing connections (s2s, databases) draw local ports from ip_local_port_range.
MIN_EPHEMERAL_PORTS = 16384
RELEASE_DEFAULT_COOKIE = "mongooseim"


class Verdict(enum.Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


_SEVERITY = {Verdict.SKIP: -1, Verdict.PASS: 0, Verdict.WARN: 1, Verdict.FAIL: 2}


def worst(*verdicts: Verdict) -> Verdict:
    return max(verdicts, key=_SEVERITY.__getitem__, default=Verdict.PASS)


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's result: what was seen, what the guide wants, why it matters, the fix.

    `observed_value`/`recommended_value` are the numbers behind the texts where there are
    numbers; they become mongooseim_config_check_observed/_recommended.
    """

    name: str
    status: Verdict
    observed: str
    recommended: str
    why: str
    fix: str = ""
    observed_value: float | None = None
    recommended_value: float | None = None

    def as_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": self.status.value,
            "observed": self.observed,
            "recommended": self.recommended,
            "why": self.why,
            "fix": self.fix,
        }


def skipped(name: str, reason: str, why: str) -> Finding:
    return Finding(name, Verdict.SKIP, f"skipped: {reason}", "", why)


@dataclass(frozen=True, slots=True)
class Targets:
    """The sizes the host is audited against: the guide's, or scaled to the expected load."""

    expected_connections: int | None = None
    tls: bool | None = None

    @property
    def load(self) -> str:
        if self.expected_connections is None:
            return "the guide's sizing"
        return f"{self.expected_connections} expected connections"

    @property
    def nofile_recommended(self) -> int:
        if self.expected_connections is None:
            return GUIDE_NOFILE
        raw = self.expected_connections * (1 + NOFILE_HEADROOM_RATIO) + NOFILE_HEADROOM_FIXED
        return math.ceil(raw / 1000) * 1000

    @property
    def connections_needed(self) -> int:
        """Below this a limit cannot hold the load at all: a failure, not a warning."""
        if self.expected_connections is None:
            return GUIDE_USERS
        return self.expected_connections

    @property
    def ports_base(self) -> int:
        return GUIDE_PORTS_TLS if self.tls else GUIDE_PORTS_PLAIN

    @property
    def ports_recommended(self) -> int:
        scale = max(1.0, (self.expected_connections or GUIDE_USERS) / GUIDE_USERS)
        return math.ceil(self.ports_base * scale / 1000) * 1000


def by_size(value: int | None, recommended: int, needed: int) -> Verdict:
    """None is unlimited."""
    if value is None or value >= recommended:
        return Verdict.PASS
    return Verdict.FAIL if value < needed else Verdict.WARN


def show_limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)
