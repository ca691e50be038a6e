"""Positions and counter values, persisted together so a restart neither loses nor repeats a line.

One JSON document, replaced atomically: written to a temporary file in the same directory,
fsync'ed, then renamed over the old one. A SIGKILL (or a power cut) at any moment leaves
either the previous document or the new one, and each holds positions and the counters that
were true at those positions.

Reading it (`StateStore.load`, or `load_state` for a one-off look such as `check`): counters
must be whole numbers in 0..MAX_COUNTER and timestamps finite and non-negative; a value out
of range (a hand-edited `"emfile": -50`, or 10**400) is clamped into range and said so in
a log line, so nothing negative or unrepresentable is ever exported. Positions out of range
make the file unusable (StateError).

Format (JSON, version 1):
    {"version": 1, "saved_at": <unix s>,
     "follower": {"files": [FileRecord...], "retired": [RetiredRecord...],
                  "archives": [ArchiveRecord...], "scanned_at_ns": <unix ns>},
     "counters": {"lines": n, "bytes": n, "long_lines": n, "rotations": n,
                  "truncations": n, "read_errors": n, "lost_bytes": n, "losses": n,
                  "matches": {pattern: n}, "last_match": {pattern: <unix s>}},
     "journal_cursor": "..." | null}
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

STATE_FILE_NAME = "logs-state.json"
STATE_VERSION = 1
# Exactly representable in a float64 sample, and more than any log will ever hold.
MAX_COUNTER = 2**53
# Offsets, sizes and inode numbers are off_t / ino_t: 64 bits.
MAX_OFFSET = 2**63 - 1
MAX_ID = 2**64 - 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRecord(_Record):
    """A followed file: who it is, how far it was counted, what it looked like then."""

    dev: int = Field(ge=0, le=MAX_ID)
    ino: int = Field(ge=0, le=MAX_ID)
    fp_len: int = Field(ge=0, le=4096)
    fp: str = Field(max_length=128)
    # Counted up to here: the start of a partial last line, or inside a skipped long line.
    offset: int = Field(ge=0, le=MAX_OFFSET)
    skipping: bool = False
    path: str
    # The path with symlinks resolved: where to look when `path` now leads elsewhere.
    real_path: str = ""
    size: int = Field(ge=0, le=MAX_OFFSET)
    mtime_ns: int = Field(default=0, ge=-MAX_OFFSET, le=MAX_OFFSET)
    # Known not to be written any more (a newer file of its family exists, or it was
    # rotated out of view): if it vanishes with nothing unread, nothing was lost.
    superseded: bool = False


class RetiredRecord(_Record):
    """A file read to its end and let go; a copy of it turning up is not new content."""

    dev: int = Field(ge=0, le=MAX_ID)
    ino: int = Field(ge=0, le=MAX_ID)
    fp_len: int = Field(ge=0, le=4096)
    fp: str = Field(max_length=128)
    offset: int = Field(ge=0, le=MAX_OFFSET)
    # Wall clock (ns) when it was let go; 0: unknown (older state files).
    at_ns: int = Field(default=0, ge=0, le=MAX_OFFSET)
    # Wall clock (ns) after which it is forgotten; 0: a week after at_ns.
    until_ns: int = Field(default=0, ge=0, le=MAX_OFFSET)


class ArchiveRecord(_Record):
    """A compressed file whose content is accounted for (read, or history present at the
    first start): not read again when it turns up again, even after a while away."""

    dev: int = Field(ge=0, le=MAX_ID)
    ino: int = Field(ge=0, le=MAX_ID)
    size: int = Field(ge=0, le=MAX_OFFSET)
    mtime_ns: int = Field(ge=-MAX_OFFSET, le=MAX_OFFSET)
    # Wall clock (ns) when last listed.
    seen_ns: int = Field(default=0, ge=0, le=MAX_OFFSET)


class FollowerState(_Record):
    files: tuple[FileRecord, ...] = ()
    retired: tuple[RetiredRecord, ...] = ()
    archives: tuple[ArchiveRecord, ...] = ()
    # Wall clock (ns) of the listing these positions come from: a file created after it was
    # created while the agent was down, and is read from its start.
    scanned_at_ns: int = Field(default=0, ge=0, le=MAX_OFFSET)


def _show(value: object) -> str:
    """A number as a log line can carry it (10**400 is not printed whole)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


def _note(info: ValidationInfo, key: str, value: object, used: object) -> None:
    if isinstance(info.context, dict):
        info.context.setdefault("clamped", []).append((key, _show(value), used))


def _count(value: object, info: ValidationInfo, key: str) -> object:
    if isinstance(value, int) and not isinstance(value, bool) and not (
        0 <= value <= MAX_COUNTER
    ):
        used = min(max(value, 0), MAX_COUNTER)
        _note(info, key, value, used)
        return used
    return value


def _timestamp(value: object, info: ValidationInfo, key: str) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool) and not (
        math.isfinite(value) and 0 <= value <= MAX_COUNTER
    ):
        _note(info, key, value, 0.0)
        return 0.0
    return value


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

    @field_validator("lines", "bytes", "long_lines", "rotations", "truncations",
                     "read_errors", "lost_bytes", "losses", mode="before")
    @classmethod
    def _bounded(cls, value: object, info: ValidationInfo) -> object:
        return _count(value, info, f"counters.{info.field_name}")

    @field_validator("matches", mode="before")
    @classmethod
    def _bounded_matches(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, dict):
            return value
        return {k: _count(v, info, f"counters.matches.{k}") for k, v in value.items()}

    @field_validator("last_match", mode="before")
    @classmethod
    def _finite_times(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, dict):
            return value
        return {k: _timestamp(v, info, f"counters.last_match.{k}") for k, v in value.items()}


class WatchState(_Record):
    version: int = STATE_VERSION
    saved_at: float = 0.0
    follower: FollowerState = FollowerState()
    counters: Counters = Counters()
    journal_cursor: str | None = None


class StateError(Exception):
    """The state file exists but cannot be used."""


MAX_STATE_BYTES = 256 << 20


def _read_regular(fd: int, path: Path) -> bytes:
    """The whole content of an open state file, refused unless it is a regular file of a
    sane size (a FIFO or a device put there must not block or exhaust memory)."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"{path}: not a regular file")
        if st.st_size > MAX_STATE_BYTES:
            raise StateError(f"{path}: {st.st_size} bytes, more than {MAX_STATE_BYTES}")
        chunks = []
        total = 0
        while data := os.read(fd, 1 << 20):
            chunks.append(data)
            total += len(data)
            if total > MAX_STATE_BYTES:
                raise StateError(f"{path}: more than {MAX_STATE_BYTES} bytes")
    except OSError as exc:
        raise StateError(f"{path}: cannot read: {exc.strerror}") from None
    return b"".join(chunks)


def load_state(directory: Path) -> WatchState | None:
    """The log watcher's saved state in `directory` (its state_dir), for a one-off reader
    such as `check`: None when there is none yet; StateError when it is unusable."""
    return StateStore(directory).load()


class StateStore:
    """Load and atomically replace one state file."""

    def __init__(self, directory: Path, name: str = STATE_FILE_NAME) -> None:
        self.path = directory / name
        self._log = structlog.get_logger("logwatch").bind(component="state")

    def load(self) -> WatchState | None:
        """The saved state; None when there is none yet; StateError when it is unusable.
        Counters out of range are clamped, each with a warning naming its key."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read: {exc.strerror}") from None
        try:
            raw = _read_regular(fd, self.path)
        finally:
            os.close(fd)
        context: dict[str, Any] = {}
        try:
            state = WatchState.model_validate_json(raw, context=context)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise StateError(f"{self.path}: not a valid state file: {where}: {first['msg']}"
                             ) from None
        for key, value, used in context.get("clamped", ()):
            self._log.warning("log watcher state: value out of range, clamped",
                              path=str(self.path), key=key, value=value, used=used)
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
