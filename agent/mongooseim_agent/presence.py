"""The running agent's presence file under state_dir: who runs, since when, what it observed.

The daemon rewrites it every few seconds (a heartbeat) and at once when it observes a new
drain state (an acknowledgement). Commands that run beside it (`check`, `drain`) read it to
tell a running agent from a stale file: the pid must exist and the heartbeat be recent.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent.drain import DrainState, age

PRESENCE_FILE = "agent.json"
# The daemon's heartbeat period; a file older than STALE_AFTER means no agent is running.
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = 6 * HEARTBEAT_SECONDS


class PresenceError(Exception):
    """The presence file exists but cannot be read or parsed; str() says why."""


@dataclass(frozen=True, slots=True)
class Presence:
    pid: int
    version: str
    started: float
    heartbeat: float
    # The drain state the daemon applies: None when it serves /node/ready from the checks.
    drain: DrainState | None = None

    def to_json(self) -> str:
        return json.dumps({
            "pid": self.pid, "version": self.version, "started": self.started,
            "heartbeat": self.heartbeat,
            "drain": self.drain.to_dict() if self.drain is not None else None,
        })

    @classmethod
    def from_json(cls, text: str) -> Presence:
        try:
            raw = json.loads(text)
            drain = raw.get("drain")
            presence = cls(
                pid=_int(raw["pid"]), version=str(raw["version"]),
                started=_time(raw["started"]), heartbeat=_time(raw["heartbeat"]),
                drain=DrainState.from_dict(drain) if drain is not None else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PresenceError(f"not a presence file: {exc}") from None
        return presence


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**22 + 1:
        raise TypeError(f"pid {value!r} out of range")
    return value


def _time(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"timestamp {value!r} is not a number")
    if not math.isfinite(value) or not 0 <= value < 2**40:
        raise ValueError(f"timestamp {value!r} out of range")
    return float(value)


def path(state_dir: Path) -> Path:
    return state_dir / PRESENCE_FILE


def write(state_dir: Path, presence: Presence) -> None:
    """Replace the presence file atomically; OSError when state_dir is not writable."""
    target = path(state_dir)
    tmp = target.with_name(f".{PRESENCE_FILE}.{os.getpid()}.tmp")
    try:
        tmp.write_text(presence.to_json() + "\n")
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read(state_dir: Path) -> Presence | None:
    """The presence file's content; None when there is none; PresenceError when unusable."""
    try:
        text = path(state_dir).read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PresenceError(f"{path(state_dir)}: cannot read: {exc}") from None
    return Presence.from_json(text)


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process (the agent runs as its own user)
    return True


def running(
    presence: Presence | None,
    now: float,
    exists: Callable[[int], bool] = pid_exists,
    stale_after: float = STALE_AFTER,
) -> bool:
    """True when the file was written by an agent that still runs and still beats."""
    if presence is None:
        return False
    return abs(now - presence.heartbeat) <= stale_after and exists(presence.pid)


def describe_absence(state_dir: Path, presence: Presence | None, now: float) -> str:
    """Why no running agent is seen, for an operator: the file, its age, its pid."""
    if presence is None:
        return f"no running agent seen using state_dir {state_dir} (no {PRESENCE_FILE} there)"
    return (
        f"no running agent seen using state_dir {state_dir} (pid {presence.pid} last "
        f"reported {age(now - presence.heartbeat)} ago)"
    )
