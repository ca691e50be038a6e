"""A followed file, the role it plays, and the table of files (and fds) the follower holds.

Every file the follower tracks has exactly one role:

    PENDING  --first bytes tell-->  COPY (of a followed file)  --original truncated-->  FOLLOWED
        \\                                                      --original finished--/
         +--------------------------------------------------------------------------> FOLLOWED

- PENDING: just found; not read until its first bytes say what it is (an empty file may be a
  copy about to be written).
- COPY: a copy of a followed file (copytruncate's copy, `cp` of the log): not read, since its
  content is counted through the original; when the original is truncated, what had not
  been read yet is read from here.
- FOLLOWED: read as it grows.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import structlog

from mongooseim_agent.logwatch.fileid import FileId, Fingerprint
from mongooseim_agent.logwatch.safeopen import NotRegularFile
from mongooseim_agent.logwatch.scanner import LineStream, Tally
from mongooseim_agent.logwatch.sources import Listing


class Role(enum.Enum):
    PENDING = "pending"
    COPY = "copy"
    FOLLOWED = "followed"


class Phase(enum.Enum):
    """Which poll this is, which decides where files found by it start."""

    # The very first poll of a first run: files present start at `start_at`.
    INITIAL = "initial"
    # The first poll after restoring saved positions: files created since the save are read
    # from their start, older ones start at `start_at`.
    RESTART = "restart"
    # Every later poll: a file found now is new content, read from its start.
    RUNNING = "running"


@dataclass(slots=True)
class Bookkeeping:
    """What the follower saw happen to the files, besides the lines themselves."""

    rotations: int = 0
    truncations: int = 0
    read_errors: int = 0
    lost_bytes: int = 0
    losses: int = 0

    def lost(self, unread: int, superseded: bool) -> None:
        """Content is gone: bytes known unread are counted; a file that may still have been
        written to when it went counts as a loss even when no unread byte was seen."""
        unread = max(0, unread)
        self.lost_bytes += unread
        if unread or not superseded:
            self.losses += 1


@dataclass(slots=True)
class Tracked:
    fid: FileId
    fp: Fingerprint
    path: str
    stream: LineStream
    size: int
    mtime_ns: int
    real_path: str = ""
    # The bytes `fp` was taken of, to recognise a copy still being written; b"" if unknown.
    head: bytes = b""
    fd: int | None = None
    role: Role = Role.FOLLOWED
    # The followed file this one is a copy of, while its role is COPY.
    copy_of: FileId | None = None
    in_view: bool = True
    superseded: bool = False
    unreadable: bool = False
    changed_at: float = 0.0
    added_at: float = 0.0
    # Appeared next to files already followed: a rotation, once known not to be a copy.
    new_in_family: bool = False

    @property
    def followed(self) -> bool:
        return self.role is Role.FOLLOWED

    def become_copy(self, original: FileId) -> None:
        self.role, self.copy_of = Role.COPY, original

    def follow(self, stream: LineStream | None = None) -> None:
        self.role, self.copy_of = Role.FOLLOWED, None
        if stream is not None:
            self.stream = stream


@dataclass(frozen=True, slots=True)
class FollowerStatus:
    files: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    listing_errors: tuple[str, ...] = ()


@dataclass(slots=True)
class Poll:
    """What one poll carries from step to step."""

    globs: Sequence[str]
    listing: Listing
    tally: Tally
    book: Bookkeeping
    now: float
    budget: int
    phase: Phase = Phase.RUNNING
    # Wall clock (ns) of the listing the restored positions come from (RESTART only).
    since_ns: int = 0
    claimed: set[FileId] = field(default_factory=set)
    # Files a restored record may still claim: not to be taken as another file's copy.
    reserved: set[FileId] = field(default_factory=set)


class FileTable:
    """The tracked files by identity, and the fds they hold (opened only as regular files)."""

    def __init__(self, open_fd: Callable[[str], int]) -> None:
        self._open = open_fd
        self._files: dict[FileId, Tracked] = {}
        self._log = structlog.get_logger("logwatch").bind(component="follower")

    def __iter__(self) -> Iterator[Tracked]:
        return iter(self._files.values())

    def __contains__(self, fid: object) -> bool:
        return fid in self._files

    def __len__(self) -> int:
        return len(self._files)

    def get(self, fid: FileId) -> Tracked | None:
        return self._files.get(fid)

    def snapshot(self) -> list[Tracked]:
        return list(self._files.values())

    def add(self, t: Tracked) -> None:
        self._files[t.fid] = t

    def drop(self, t: Tracked) -> None:
        self.close(t)
        del self._files[t.fid]

    def open(self, path: str) -> int:
        return self._open(path)

    def ensure_open(self, t: Tracked, book: Bookkeeping) -> int | None:
        """The file's fd, reopened by path when it was let go; None when the path now holds
        another file, or none (or something that is not a regular file)."""
        if t.fd is not None:
            return t.fd
        try:
            fd = self._open(t.path)
        except (FileNotFoundError, NotRegularFile):
            return None
        except OSError as exc:
            self.mark_unreadable(t, book, exc)
            return None
        st = os.fstat(fd)
        if FileId(st.st_dev, st.st_ino) != t.fid:
            os.close(fd)
            return None
        t.fd = fd
        return fd

    def mark_unreadable(self, t: Tracked, book: Bookkeeping, exc: OSError) -> None:
        if not t.unreadable:
            t.unreadable = True
            book.read_errors += 1
            self._log.warning("log file unreadable; retrying every poll", path=t.path,
                              error=exc.strerror or type(exc).__name__)

    @staticmethod
    def close(t: Tracked) -> None:
        if t.fd is not None:
            os.close(t.fd)
            t.fd = None

    def close_all(self) -> None:
        for t in self._files.values():
            self.close(t)
