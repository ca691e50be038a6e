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

import contextlib
import enum
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import structlog

from mongooseim_agent.logwatch.fileid import FileId, Fingerprint, HeadMatcher
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
    # While many new files are taken in at once: the followed files by their first bytes.
    copies: CopyIndex | None = None


# A head at least this long is looked up by its first bytes; a shorter one (rare: a new
# file of a few bytes) is compared with every followed file.
PREFIX_KEY = 32


class CopyIndex:
    """Followed files by fingerprint and by first bytes: which of them a new file's head
    can be a copy of, without comparing it with every one (3000 new files at once)."""

    def __init__(self, files: Iterable[Tracked]) -> None:
        # fingerprint length -> digest -> files
        self._exact: dict[int, dict[str, list[Tracked]]] = {}
        self._prefix: dict[bytes, list[Tracked]] = {}
        self._all: list[Tracked] = []
        for t in files:
            self.add(t)

    def add(self, t: Tracked) -> None:
        if t.fp.identifying:
            self._exact.setdefault(t.fp.length, {}).setdefault(t.fp.digest, []).append(t)
        if len(t.head) > PREFIX_KEY:
            self._prefix.setdefault(t.head[:PREFIX_KEY], []).append(t)
        self._all.append(t)

    def candidates(self, head: bytes, matcher: HeadMatcher) -> list[Tracked]:
        """Every followed file whose fingerprint `head` matches or whose first bytes start
        with `head` (and maybe some others)."""
        if len(head) < PREFIX_KEY:
            return self._all
        found: list[Tracked] = []
        for length, by_digest in self._exact.items():
            digest = matcher.digest(length)
            if digest is not None:
                found.extend(by_digest.get(digest, ()))
        found.extend(self._prefix.get(head[:PREFIX_KEY], ()))
        return list(dict.fromkeys(found))


MAX_OPEN_FILES = 64


class FileTable:
    """The tracked files by identity, and the fds they hold: opened only as regular files,
    and never more than `max_open` at once (3000 rotated files must not take 3000 fds).

    Each open beyond the budget first lets go of the fds least worth keeping: a file read to
    its end and superseded is reopened by its path when it changes; the newest file of each
    family, and a file out of view with data still unread, are kept longest (their fd is
    what still reaches content a rotation took away).
    """

    def __init__(self, open_fd: Callable[[str], int], max_open: int = MAX_OPEN_FILES) -> None:
        if max_open < 1:
            raise ValueError("max_open must be positive")
        self._open = open_fd
        self._max_open = max_open
        self._files: dict[FileId, Tracked] = {}
        self.open_count = 0
        self._pinned: dict[FileId, int] = {}
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

    @contextlib.contextmanager
    def using(self, t: Tracked) -> Iterator[None]:
        """While `t` is being read its fd is not let go (a nested open may need room)."""
        self._pinned[t.fid] = self._pinned.get(t.fid, 0) + 1
        try:
            yield
        finally:
            self._pinned[t.fid] -= 1
            if not self._pinned[t.fid]:
                del self._pinned[t.fid]

    def open(self, path: str) -> int:
        """An fd counted against the budget: attach() it to a file or discard() it."""
        if self.open_count >= self._max_open:
            self._evict()
        fd = self._open(path)
        self.open_count += 1
        return fd

    def attach(self, t: Tracked, fd: int) -> None:
        t.fd = fd

    def discard(self, fd: int) -> None:
        os.close(fd)
        self.open_count -= 1

    def _evict(self) -> None:
        """Close the least useful fds, down to three quarters of the budget, in one pass."""
        holding = [t for t in self._files.values()
                   if t.fd is not None and t.fid not in self._pinned]
        keep = self._max_open * 3 // 4
        if len(holding) <= keep:
            return
        holding.sort(key=_worth_keeping)
        for t in holding[: len(holding) - keep]:
            self.close(t)

    def ensure_open(self, t: Tracked, book: Bookkeeping) -> int | None:
        """The file's fd, reopened by path when it was let go; None when the path now holds
        another file, or none (or something that is not a regular file)."""
        if t.fd is not None:
            return t.fd
        try:
            fd = self.open(t.path)
        except (FileNotFoundError, NotRegularFile):
            return None
        except OSError as exc:
            self.mark_unreadable(t, book, exc)
            return None
        st = os.fstat(fd)
        if FileId(st.st_dev, st.st_ino) != t.fid:
            self.discard(fd)
            return None
        t.fd = fd
        return fd

    def mark_unreadable(self, t: Tracked, book: Bookkeeping, exc: OSError) -> None:
        if not t.unreadable:
            t.unreadable = True
            book.read_errors += 1
            self._log.warning("log file unreadable; retrying every poll", path=t.path,
                              error=exc.strerror or type(exc).__name__)

    def close(self, t: Tracked) -> None:
        if t.fd is not None:
            os.close(t.fd)
            t.fd = None
            self.open_count -= 1

    def close_all(self) -> None:
        for t in self._files.values():
            self.close(t)


def _worth_keeping(t: Tracked) -> tuple[bool, bool, bool, float]:
    """Sort key, least worth keeping first."""
    unread = t.stream.consumed < t.size
    return (not t.in_view and unread, not t.superseded, unread, t.changed_at)
