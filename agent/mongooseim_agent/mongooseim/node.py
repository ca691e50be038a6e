"""What the agent knows about the watched MongooseIM node's OS process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent.erlang.secret import Secret


@dataclass(frozen=True, slots=True)
class NodeProcess:
    """The node's beam.smp as read from /proc and its vm.args. Never printed with its cookie."""

    pid: int
    # Full node name as peers use it: "mongooseim@localhost" ("-sname mongooseim" gets
    # "@<short hostname>" appended, as the VM does).
    name: str
    longnames: bool
    uid: int
    # /proc/PID/stat field 22, clock ticks since boot: tells a reused PID from the same process.
    start_ticks: int
    release_root: Path | None = None
    # The OTP release the node runs ("25.2.3"), from <root>/releases/*/OTP_VERSION of its
    # Erlang installation; None when that file is not found (e.g. a release without it).
    otp_release: str | None = None
    cookie: Secret | None = None
    # Port table size as configured: +Q wins over ERL_MAX_PORTS; None when neither is set.
    max_ports: int | None = None
    max_ports_source: str | None = None
    # +P, None when unset.
    max_processes: int | None = None
    # -kernel inet_dist_listen_min/max, None when unset.
    dist_port_range: tuple[int, int] | None = None
