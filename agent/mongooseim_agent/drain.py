"""Drain state: a marker file under state_dir (reason, since, by), so it survives restarts.

The marker is the operator's intent; the running agent follows it off the request path and
acknowledges what it applies in its presence file (presence.py), which is how `drain` can
say whether the load balancer's view really changed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pwd
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "drained"
MAX_REASON = 200
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")


class DrainError(Exception):
    """The marker cannot be written or read; str() is one line for the operator."""


@dataclass(frozen=True, slots=True)
class DrainState:
    """Why the node is out of load balancing, since when (Unix seconds), and who said so."""

    reason: str
    since: float
    by: str

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "since": self.since, "by": self.by}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DrainState:
        reason, since, by = raw["reason"], raw["since"], raw["by"]
        if not isinstance(reason, str) or not isinstance(by, str):
            raise TypeError("reason and by must be strings")
        if not isinstance(since, int | float) or isinstance(since, bool):
            raise TypeError(f"since {since!r} is not a number")
        if not math.isfinite(since) or not 0 <= since < 2**40:
            raise ValueError(f"since {since!r} out of range")
        return cls(clean(reason), float(since), clean(by))

    def condition(self) -> str:
        """What /node/ready shows for the drain: no age, so the answer is stable."""
        return (f"node drained by {self.by} since {_stamp(self.since)}: {self.reason} "
                "(mongooseim-agent undrain restores)")

    def describe(self, now: float) -> str:
        """One line: 'drained 5m ago (since 2026-11-30 11:02:06 UTC) by alice: kernel upgrade'."""
        return (f"drained {age(now - self.since)} ago (since {_stamp(self.since)}) by "
                f"{self.by}: {self.reason}")


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))


def clean(text: str) -> str:
    """One printable line of bounded length: it lands in logs, JSON, HTML and HAProxy."""
    text = _UNSAFE.sub(" ", text).strip()
    return text[:MAX_REASON]


def age(seconds: float) -> str:
    """A duration as an operator reads it at a glance: 45s, 12m, 3h, 2d."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def who(environ: Mapping[str, str] = os.environ, uid: int | None = None) -> str:
    """The person behind the command: sudo's caller first, then the login name, then the uid."""
    for key in ("SUDO_USER", "LOGNAME", "USER"):
        name = clean(environ.get(key, ""))
        if name:
            return name
    uid = os.getuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def marker(state_dir: Path) -> Path:
    return state_dir / MARKER


def read(state_dir: Path) -> DrainState | None:
    """The marker's state; None when not drained. An unparsable marker still drains."""
    path = marker(state_dir)
    try:
        raw = path.read_bytes()
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DrainError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse(raw, st.st_mtime)


def parse(raw: bytes, mtime: float) -> DrainState:
    """The marker's content; a plain-text marker (older agents, `echo > drained`) counts too."""
    text = raw[:4096].decode("utf-8", "replace")
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        loaded = json.loads(text)
        if isinstance(loaded, dict):
            return DrainState.from_dict(loaded)
    return DrainState(clean(text) or "(no reason given)", mtime, "unknown")


def drain(state_dir: Path, reason: str, by: str, now: float) -> DrainState:
    """Write the marker atomically; DrainError (one line) when state_dir is not writable."""
    state = DrainState(clean(reason) or "(no reason given)", now, clean(by) or "unknown")
    tmp = state_dir / f".{MARKER}.{os.getpid()}.tmp"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(state.to_dict()) + "\n")
        os.replace(tmp, marker(state_dir))
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DrainError(
            f"cannot write {marker(state_dir)}: {exc.strerror or exc}"
        ) from None
    return state


def undrain(state_dir: Path) -> bool:
    """Remove the marker; False when the node was not drained; DrainError when it cannot."""
    try:
        marker(state_dir).unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise DrainError(f"cannot remove {marker(state_dir)}: {exc.strerror or exc}") from None
    return True


class DrainFollower:
    """Re-reads the marker only when its (inode, size, mtime) changed: a stat per poll."""

    def __init__(self, state_dir: Path, stat: Callable[[Path], os.stat_result] = Path.stat
                 ) -> None:
        self._state_dir = state_dir
        self._stat = stat
        self._signature: tuple[int, int, int] | None = None
        self.state: DrainState | None = None
        self.error: str | None = None

    def poll(self) -> bool:
        """Refresh `state`; True when it changed. An unreadable marker keeps the last state."""
        path = marker(self._state_dir)
        try:
            st = self._stat(path)
        except FileNotFoundError:
            changed = self.state is not None
            self._signature, self.state, self.error = None, None, None
            return changed
        except OSError as exc:
            self.error = f"cannot examine {path}: {exc.strerror or exc}"
            return False
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if signature == self._signature:
            return False
        try:
            state = read(self._state_dir)
        except DrainError as exc:
            self.error = str(exc)
            return False
        self._signature, self.error = signature, None
        changed = state != self.state
        self.state = state
        return changed
