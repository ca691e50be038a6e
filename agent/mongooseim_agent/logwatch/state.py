"""Positions and counter values, persisted together so a restart neither loses nor repeats a line.

One JSON document, replaced atomically: written to a temporary file in the same directory,
fsync'ed, then renamed over the old one. A SIGKILL (or a power cut) at any moment leaves
either the previous document or the new one, and each holds positions and the counters that
were true at those positions.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

STATE_FILE_NAME = "logs-state.json"
STATE_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRecord(_Record):
    """A followed file: who it is, how far it was counted, what it looked like then."""

    dev: int
    ino: int
    fp_len: int = Field(ge=0)
    fp: str
    # Counted up to here: the start of a partial last line, or inside a skipped long line.
    offset: int = Field(ge=0)
    skipping: bool = False
    path: str
    # The path with symlinks resolved: where to look when `path` now leads elsewhere.
    real_path: str = ""
    size: int = Field(ge=0)
    mtime_ns: int = 0
    # Known not to be written any more (a newer file of its family exists, or it was
    # rotated out of view): if it vanishes with nothing unread, nothing was lost.
    superseded: bool = False


class RetiredRecord(_Record):
    """A file read to its end and let go; a copy of it turning up is not new content."""

    dev: int
    ino: int
    fp_len: int = Field(ge=0)
    fp: str
    offset: int = Field(ge=0)


class FollowerState(_Record):
    files: tuple[FileRecord, ...] = ()
    retired: tuple[RetiredRecord, ...] = ()
    # Wall clock (ns) of the listing these positions come from: a file created after it was
    # created while the agent was down, and is read from its start.
    scanned_at_ns: int = 0


class Counters(_Record):
    lines: int = 0
    bytes: int = 0
    long_lines: int = 0
    rotations: int = 0
    truncations: int = 0
    read_errors: int = 0
    lost_bytes: int = 0
    losses: int = 0
    matches: dict[str, int] = Field(default_factory=dict)
    last_match: dict[str, float] = Field(default_factory=dict)


class WatchState(_Record):
    version: int = STATE_VERSION
    saved_at: float = 0.0
    follower: FollowerState = FollowerState()
    counters: Counters = Counters()
    journal_cursor: str | None = None


class StateError(Exception):
    """The state file exists but cannot be used."""


class StateStore:
    """Load and atomically replace one state file."""

    def __init__(self, directory: Path, name: str = STATE_FILE_NAME) -> None:
        self.path = directory / name

    def load(self) -> WatchState | None:
        """The saved state; None when there is none yet; StateError when it is unusable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read: {exc.strerror}") from None
        try:
            state = WatchState.model_validate_json(raw)
        except ValidationError as exc:
            raise StateError(f"{self.path}: not a valid state file: {exc.errors()[0]['msg']}"
                             ) from None
        if state.version != STATE_VERSION:
            raise StateError(f"{self.path}: state version {state.version} is not "
                             f"{STATE_VERSION}")
        return state

    def set_aside(self) -> Path | None:
        """Move an unusable state file out of the way, keeping it for a post-mortem."""
        target = self.path.with_name(self.path.name + ".corrupt")
        try:
            os.replace(self.path, target)
        except OSError:
            return None
        return target

    def save(self, state: WatchState) -> None:
        """Replace the state file with `state`; OSError when the directory is not writable."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        data = state.model_dump_json().encode()
        tmp = directory / f".{self.path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        # No fsync of the directory: if a power cut loses the rename, the previous file is
        # still a consistent pair of positions and counts, so lines are recounted from older
        # positions onto older counters, never twice. Saving runs several times a second.
        os.replace(tmp, self.path)
