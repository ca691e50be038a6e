"""Follows log files through every kind of rotation and restart, counting each line once.

Each poll lists the globs, matches what it finds to the files it follows by identity
(dev, inode) and first-bytes fingerprint, and reads what was appended. How each rotation
looks from here:

- rename + create (OTP file handler, logrotate `create`): the followed inode shows up under
  a new name and keeps being read through its open fd; the new file is read from byte 0.
- delete + recreate: the open fd still reads the deleted file to its end before it is let go.
- OTP disk_log wrap (`.1`..`.N` reused in turn): the reused file shrinks or its first bytes
  change; that is a truncation, and the new content is read from byte 0.
- copytruncate: the copy carries the followed file's fingerprint, so it is not new content:
  it is kept aside, and when the original is truncated, whatever had not been read yet is
  read from the copy (or from its compressed archive) before the new content.
- symlink swaps: the glob's path resolves to another inode, which is a new file.
- files appearing late: new files, read from byte 0.
- unreadable files: counted and logged once, retried every poll.

Files present on the very first start begin at `start_at` (default the end, so history does
not page anyone). After a restart the saved positions are resumed, files found renamed,
copied or compressed in the meantime are finished from where they were left, files created
meanwhile are read from their start, and content that is gone for good goes to the loss
counters instead of being guessed at.
"""

from __future__ import annotations

import lzma
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import structlog

from mongooseim_agent.logwatch import compressed
from mongooseim_agent.logwatch.fileid import (
    FINGERPRINT_BYTES,
    MIN_MATCH_BYTES,
    FileId,
    Fingerprint,
    family,
)
from mongooseim_agent.logwatch.safeopen import open_regular
from mongooseim_agent.logwatch.scanner import LineStream, ScanPlan, Tally
from mongooseim_agent.logwatch.sources import Candidate, Listing, candidate, list_files
from mongooseim_agent.logwatch.state import FileRecord, FollowerState, RetiredRecord

StartAt = Literal["end", "beginning"]
READ_CHUNK = 1 << 20
POLL_BUDGET = 64 << 20
RETIRED_KEPT = 64
# ctime and our wall clock both have coarse ticks: a file created this close to the last
# listing before a restart is treated as created after it (read from its start).
CTIME_SLACK_NS = 2_000_000_000


# A compressed file still being written, or corrupt.
ARCHIVE_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError)
ARCHIVE_OR_FORMAT_ERRORS: tuple[type[Exception], ...] = (
    *ARCHIVE_ERRORS, compressed.UnsupportedCompression,
)


def _real(path: str) -> str:
    return os.path.realpath(path)


@dataclass(slots=True)
class Bookkeeping:
    """What the follower saw happen to the files, besides the lines themselves."""

    rotations: int = 0
    truncations: int = 0
    read_errors: int = 0
    lost_bytes: int = 0
    losses: int = 0


@dataclass(slots=True)
class _Tracked:
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
    in_view: bool = True
    superseded: bool = False
    # Set while this file is a copy of a followed one (copytruncate's copy): not read.
    shadow_of: FileId | None = None
    unreadable: bool = False
    changed_at: float = 0.0
    # False until its first bytes said whether it is a copy, resumed, or new content.
    classified: bool = True
    added_at: float = 0.0
    # Appeared next to files already followed: a rotation, once known not to be a copy.
    new_in_family: bool = False


@dataclass(frozen=True, slots=True)
class FollowerStatus:
    files: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    listing_errors: tuple[str, ...] = ()


@dataclass(slots=True)
class _Poll:
    globs: Sequence[str]
    listing: Listing
    tally: Tally
    book: Bookkeeping
    now: float
    budget: int
    claimed: set[FileId] = field(default_factory=set)
    # Files a restored record may still claim: not to be taken as another file's copy.
    reserved: set[FileId] = field(default_factory=set)


class Follower:
    """Not thread-safe: one poll at a time (the watcher holds a lock around it)."""

    def __init__(
        self,
        plan: ScanPlan,
        *,
        start_at: StartAt = "end",
        drain_grace: float = 5.0,
        idle_close: float = 30.0,
        read_chunk: int = READ_CHUNK,
        wall_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
        open_fd: Callable[[str], int] = open_regular,
        lister: Callable[[Sequence[str]], Listing] = list_files,
    ) -> None:
        self._plan = plan
        self._start_at = start_at
        self._grace = drain_grace
        self._idle_close = idle_close
        self._chunk = read_chunk
        self._wall_ns = wall_ns
        self._monotonic = monotonic
        self._open = open_fd
        self._lister = lister
        self._tracked: dict[FileId, _Tracked] = {}
        self._retired: list[RetiredRecord] = []
        self._archives_seen: set[FileId] = set()
        # Archives that failed to read, as (size, mtime) then: retried only once they change
        # (a gzip still being written grows), never decompressed again every poll.
        self._archives_failed: dict[FileId, tuple[int, int]] = {}
        self._restored: FollowerState | None = None
        self._first = True
        self._scanned_at_ns = 0
        self._listing_errors: tuple[str, ...] = ()
        self._log = structlog.get_logger("logwatch").bind(component="follower")

    # ---- persistence -------------------------------------------------------------------

    def restore(self, state: FollowerState) -> None:
        """Positions from a previous run; applied by the first poll."""
        self._restored = state
        self._retired = list(state.retired)

    def export(self) -> FollowerState:
        files = tuple(
            FileRecord(
                dev=t.fid.dev, ino=t.fid.ino, fp_len=t.fp.length, fp=t.fp.digest,
                offset=t.stream.committed, skipping=t.stream.skipping, path=t.path,
                real_path=t.real_path,
                size=max(t.size, t.stream.consumed), mtime_ns=t.mtime_ns,
                superseded=t.superseded,
            )
            for t in self._tracked.values()
            # Copies and undecided files are worked out again from their bytes after a
            # restart; saving them as ordinary files would have them read as such.
            if t.shadow_of is None and t.classified
        )
        if self._first and self._restored is not None:
            # Not polled yet: keep what was restored rather than forgetting it.
            files = self._restored.files
        return FollowerState(files=files, retired=tuple(self._retired),
                             scanned_at_ns=self._scanned_at_ns)

    def signature(self) -> tuple[object, ...]:
        """Changes whenever export() would: a cheap test for whether to save."""
        return (
            tuple((t.fid, t.stream.committed, t.stream.skipping, t.superseded, t.fp.length,
                   t.path) for t in self._tracked.values()
                  if t.shadow_of is None and t.classified),
            len(self._retired), self._retired[-1] if self._retired else None,
        )

    def status(self) -> FollowerStatus:
        return FollowerStatus(
            files=tuple(sorted(t.path for t in self._tracked.values()
                               if t.in_view and t.shadow_of is None)),
            unreadable=tuple(sorted(t.path for t in self._tracked.values() if t.unreadable)),
            listing_errors=self._listing_errors,
        )

    def close(self) -> None:
        for t in self._tracked.values():
            self._close(t)

    # ---- the poll ------------------------------------------------------------------------

    def poll(
        self, globs: Sequence[str], tally: Tally, book: Bookkeeping, budget: int = POLL_BUDGET
    ) -> bool:
        """List `globs`, reconcile and read; True when the byte budget ran out with data left."""
        if not globs:
            # Nothing to look at yet (release root not discovered): keep any restored
            # positions for when there is, rather than taking every file for vanished.
            return False
        scanned_at = self._wall_ns()
        listing = self._lister(globs)
        self._note_listing_errors(listing)
        p = _Poll(globs, listing, tally, book, self._monotonic(), budget)
        if self._first and self._restored is not None:
            mode, since = "restart", self._restored.scanned_at_ns
            self._reconcile(p, self._restored)
        else:
            mode, since = ("initial" if self._first else "running"), 0
        self._discover(p, mode, since)
        self._first = False
        self._restored = None
        self._scanned_at_ns = scanned_at
        self._update_views(p)
        more = False
        for t in sorted(self._tracked.values(), key=lambda t: (t.mtime_ns, t.fid)):
            if self._tracked.get(t.fid) is not t:
                continue
            self._advance(t, p)
            if p.budget <= 0:
                more = True
                break
        # After reading, so that each followed file's fingerprint covers what it holds now
        # and an archive of it is recognised as such.
        self._discover_archives(p, mode, since)
        self._update_superseded(listing)
        self._settle(p)
        return more

    def _note_listing_errors(self, listing: Listing) -> None:
        errors = tuple(sorted(f"{path}: {reason}" for path, reason in listing.errors.items()))
        for line in set(errors) - set(self._listing_errors):
            self._log.warning("log path cannot be examined", error=line)
        self._listing_errors = errors

    def _update_views(self, p: _Poll) -> None:
        for t in self._tracked.values():
            found = p.listing.plain.get(t.fid)
            t.in_view = found is not None
            if found is not None:
                t.path = found.path

    def _update_superseded(self, listing: Listing) -> None:
        """Which files nobody writes any more; decided after reading, used by the next poll
        (a wrap file being reused is the newest once reused, but was superseded before)."""
        newest: dict[str, int] = {}
        for t in self._tracked.values():
            found = listing.plain.get(t.fid)
            if found is not None and t.shadow_of is None:
                fam = family(found.path)
                newest[fam] = max(newest.get(fam, found.mtime_ns), found.mtime_ns)
        for t in self._tracked.values():
            found = listing.plain.get(t.fid)
            t.superseded = (found is None or t.shadow_of is not None
                            or found.mtime_ns < newest[family(found.path)])

    # ---- restart -------------------------------------------------------------------------

    def _reconcile(self, p: _Poll, state: FollowerState) -> None:
        p.reserved = {FileId(r.dev, r.ino) for r in state.files}
        for record in sorted(state.files, key=lambda r: (r.mtime_ns, r.ino)):
            fid = FileId(record.dev, record.ino)
            found = p.listing.plain.get(fid)
            for path in (record.real_path, record.path):
                if found is None and path:
                    found = self._stat_candidate(path, fid)
            if found is not None:
                outcome = self._resume(p, record, found)
                if outcome == "resumed":
                    continue
                if outcome == "replaced":
                    p.book.truncations += 1
            p.reserved.discard(fid)
            fp = Fingerprint(record.fp_len, record.fp)
            seen = max(record.size, record.offset)
            if not self._recover(p, fp, record.offset, record.skipping, exclude=fid):
                self._lost(p.book, seen - record.offset, record.superseded)
        p.reserved.clear()

    def _stat_candidate(self, path: str, fid: FileId) -> Candidate | None:
        """The file at its last known path, if it is still the same inode (out of the globs)."""
        try:
            found = candidate(path, os.stat(path))
        except OSError:
            return None
        return found if found.fid == fid else None

    def _resume(self, p: _Poll, record: FileRecord, found: Candidate) -> str:
        fid = found.fid
        fp = Fingerprint(record.fp_len, record.fp)
        stream = LineStream(self._plan, record.offset, record.skipping)
        t = _Tracked(fid, fp, found.path, stream, record.size, record.mtime_ns,
                     real_path=_real(found.path), changed_at=p.now)
        try:
            fd = self._open(found.path)
        except OSError as exc:
            # Cannot verify it; keep the position and retry like any unreadable file.
            self._mark_unreadable(t, p.book, exc)
            self._tracked[fid] = t
            p.claimed.add(fid)
            return "resumed"
        head = os.pread(fd, FINGERPRINT_BYTES, 0)
        st = os.fstat(fd)
        if FileId(st.st_dev, st.st_ino) != fid:
            os.close(fd)
            return "missing"
        if st.st_size < record.offset or not fp.matches(head):
            os.close(fd)
            return "replaced"
        t.fd = fd
        t.head = head[: fp.length]
        self._tracked[fid] = t
        p.claimed.add(fid)
        return "resumed"

    # ---- discovery -----------------------------------------------------------------------

    def _discover(self, p: _Poll, mode: str, scanned_at_ns: int) -> None:
        known_families = {family(t.path) for t in self._tracked.values()}
        new = [c for fid, c in p.listing.plain.items()
               if fid not in self._tracked and fid not in p.claimed]
        for found in sorted(new, key=lambda c: (c.mtime_ns, c.path)):
            self._add(p, found, mode, scanned_at_ns, known_families)

    def _add(
        self, p: _Poll, found: Candidate, mode: str, scanned_at_ns: int,
        known_families: set[str],
    ) -> None:
        t = _Tracked(found.fid, Fingerprint.of(b""), found.path, LineStream(self._plan),
                     found.size, found.mtime_ns, real_path=_real(found.path), changed_at=p.now,
                     added_at=p.now,
                     new_in_family=mode != "initial" and family(found.path) in known_families)
        try:
            fd = self._open(found.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._mark_unreadable(t, p.book, exc)
            if mode == "initial" and self._start_at == "end":
                t.stream = LineStream(self._plan, found.size)
            self._tracked[found.fid] = t
            return
        st = os.fstat(fd)
        if FileId(st.st_dev, st.st_ino) != found.fid:
            os.close(fd)
            return
        head = os.pread(fd, FINGERPRINT_BYTES, 0)
        t.fd = fd
        t.size, t.mtime_ns = st.st_size, st.st_mtime_ns
        offset, skipping = self._start_position(fd, found, mode, scanned_at_ns)
        t.stream = LineStream(self._plan, offset, skipping)
        t.classified = False
        self._tracked[found.fid] = t
        self._classify(t, head, p)

    def _classify(self, t: _Tracked, head: bytes, p: _Poll) -> bool:
        """Decide what a new file is: a copy of a followed file (kept aside), a file let go
        before (resumed where it was left), or new content. Until its first bytes can tell,
        it is not read: an empty file may be a copy about to be written."""
        if len(head) < MIN_MATCH_BYTES and p.now - t.added_at < self._grace:
            return False
        copied = self._copy_of(t, head, p.now)
        if copied == "defer":
            return False
        t.fp, t.head = Fingerprint.of(head), head
        if isinstance(copied, FileId):
            t.shadow_of = copied
            kind = "copy"
        elif (retired := self._retired_match(head)) is not None:
            t.stream = LineStream(self._plan, min(retired.offset, t.size))
            kind = "resumed"
        else:
            kind = "new"
            if t.new_in_family:
                p.book.rotations += 1
        t.classified = True
        self._log.debug("log file found", path=t.path, kind=kind, offset=t.stream.consumed)
        return True

    def _copy_of(self, new: _Tracked, head: bytes, now: float) -> FileId | str | None:
        """The followed file `new` is a copy of, "defer" while it may be one still being
        written (a copy in progress is a prefix of the original), or None."""
        for t in self._tracked.values():
            if t is new or t.shadow_of is not None or not t.classified:
                continue
            if t.fp.identifying and t.fp.matches(head):
                return t.fid
            if (MIN_MATCH_BYTES <= len(head) < t.fp.length and new.size < t.size
                    and t.head.startswith(head)):
                # Still a prefix after the grace: a partial copy of what was already read.
                return t.fid if now - new.added_at >= self._grace else "defer"
        return None

    def _retired_match(self, head: bytes) -> RetiredRecord | None:
        for record in reversed(self._retired):
            fp = Fingerprint(record.fp_len, record.fp)
            if fp.identifying and fp.matches(head):
                return record
        return None

    def _start_position(
        self, fd: int, found: Candidate, mode: str, scanned_at_ns: int
    ) -> tuple[int, bool]:
        if mode == "running" or self._start_at == "beginning":
            return 0, False
        if mode == "restart" and found.ctime_ns >= scanned_at_ns - CTIME_SLACK_NS:
            return 0, False
        # The end, but at a line boundary: a line being written is counted when complete.
        size = found.size
        window = min(size, self._plan.max_line + 1)
        tail = os.pread(fd, window, size - window)
        newline = tail.rfind(b"\n")
        if newline >= 0:
            return size - window + newline + 1, False
        if size <= self._plan.max_line:
            return 0, False
        return size, True

    def _discover_archives(self, p: _Poll, mode: str, scanned_at_ns: int) -> None:
        """A compressed file whose content was never seen is a file that was rotated and
        compressed between two polls (or while the agent was down): read it. History
        present at the first start, or older than the last save, is left alone."""
        self._archives_seen &= p.listing.archives.keys()
        for fid in self._archives_failed.keys() - p.listing.archives.keys():
            del self._archives_failed[fid]
        for archive in sorted(p.listing.archives.values(), key=lambda c: (c.mtime_ns, c.path)):
            if archive.fid in self._archives_seen or self._archives_failed.get(
                archive.fid) == (archive.size, archive.mtime_ns):
                continue
            if mode == "initial" or (
                mode == "restart" and archive.ctime_ns < scanned_at_ns - CTIME_SLACK_NS
            ):
                self._archives_seen.add(archive.fid)
                continue
            try:
                head = compressed.read_head(archive.path, FINGERPRINT_BYTES)
            except compressed.UnsupportedCompression:
                self._archives_seen.add(archive.fid)
                continue
            except ARCHIVE_ERRORS as exc:
                self._archive_failed(archive, exc)
                continue
            if len(head) < MIN_MATCH_BYTES or any(
                t.classified and t.fp.identifying and t.fp.matches(head)
                for t in self._tracked.values()
            ):
                # Its content is followed in a plain file (or recovered through it).
                self._archives_seen.add(archive.fid)
                continue
            retired = self._retired_match(head)
            offset = retired.offset if retired is not None else 0
            self._read_archive(p, archive, Fingerprint.of(head), offset, False)

    # ---- reading -------------------------------------------------------------------------

    def _advance(self, t: _Tracked, p: _Poll) -> None:
        if t.shadow_of is not None:
            return
        fd = self._ensure_open(t, p.book)
        if fd is None:
            return
        try:
            self._read(t, fd, p)
        except OSError as exc:
            # Every feed is whole, so what was read stays counted; the rest is retried
            # through a fresh fd on the next poll.
            self._close(t)
            self._mark_unreadable(t, p.book, exc)

    def _read(self, t: _Tracked, fd: int, p: _Poll) -> None:
        st = os.fstat(fd)
        size = st.st_size
        if not t.classified:
            t.size, t.mtime_ns = size, st.st_mtime_ns
            if not self._classify(t, os.pread(fd, FINGERPRINT_BYTES, 0), p):
                return
            if t.shadow_of is not None:
                return
        if size != t.size or st.st_mtime_ns != t.mtime_ns or size != t.stream.consumed:
            head = os.pread(fd, FINGERPRINT_BYTES, 0)
            if size < t.stream.consumed or not t.fp.matches(head):
                self._replaced(t, p, head)
            elif len(head) > t.fp.length:
                t.fp, t.head = Fingerprint.of(head), head
            if size != t.size or st.st_mtime_ns != t.mtime_ns:
                t.changed_at = p.now
            t.size, t.mtime_ns = size, st.st_mtime_ns
        stream = t.stream
        while stream.consumed < size and p.budget > 0:
            want = min(self._chunk, size - stream.consumed, p.budget)
            data = os.pread(fd, want, stream.consumed)
            if not data:
                break
            stream.feed(data, p.tally)
            p.budget -= len(data)
        if t.unreadable:
            t.unreadable = False
            self._log.info("log file readable again", path=t.path)

    def _replaced(self, t: _Tracked, p: _Poll, head: bytes) -> None:
        """The file's content was truncated or rewritten in place."""
        p.book.truncations += 1
        self._log.debug("log file truncated", path=t.path, size=len(head),
                        offset=t.stream.consumed)
        seen = max(t.size, t.stream.consumed)
        committed = t.stream.committed
        if not self._recover(p, t.fp, committed, t.stream.skipping, exclude=t.fid):
            self._lost(p.book, seen - committed, t.superseded)
            # If a copy turns up later (compression finishing after this poll), it is
            # resumed from here rather than read again from its start.
            self._remember(t.fid, t.fp, committed)
        t.stream = LineStream(self._plan)
        t.fp, t.head = Fingerprint.of(head), head

    def _recover(
        self, p: _Poll, fp: Fingerprint, offset: int, skipping: bool, exclude: FileId
    ) -> bool:
        """Finish content that left its inode from a copy: a followed copy, another plain
        file, or a compressed archive carrying the same first bytes."""
        if not fp.identifying:
            return False
        for t in list(self._tracked.values()):
            if t.shadow_of == exclude or (not t.classified and self._holds(t, fp)):
                self._log.debug("finishing from a copy", path=t.path, offset=offset)
                t.shadow_of = None
                t.classified = True
                t.stream = LineStream(self._plan, min(offset, t.size), skipping)
                p.claimed.add(t.fid)
                self._advance(t, p)
                return True
        # The listing is from the start of the poll; a copy made just before the truncation
        # seen now may be newer than it, so a second look is taken before giving up.
        for listing in (p.listing, self._lister(p.globs)):
            for found in listing.plain.values():
                if (found.fid == exclude or found.fid in self._tracked
                        or found.fid in p.claimed or found.fid in p.reserved):
                    continue
                if self._adopt(p, found, fp, offset, skipping):
                    return True
            for archive in listing.archives.values():
                if self._read_archive(p, archive, fp, offset, skipping):
                    return True
        return False

    def _holds(self, t: _Tracked, fp: Fingerprint) -> bool:
        """Whether a file not classified yet (a copy seen while still empty) now starts
        with the bytes `fp` was taken of."""
        if t.fd is None:
            return False
        try:
            head = os.pread(t.fd, FINGERPRINT_BYTES, 0)
            t.size = os.fstat(t.fd).st_size
        except OSError:
            return False
        if not fp.matches(head):
            return False
        t.fp, t.head = Fingerprint.of(head), head
        return True

    def _archive_failed(self, archive: Candidate, exc: Exception) -> None:
        # Often a gzip still being written; said once per state of the file, not per poll.
        state = (archive.size, archive.mtime_ns)
        if self._archives_failed.get(archive.fid) != state:
            self._log.info("archive not readable (yet); retried when it changes",
                           path=archive.path, error=str(exc) or type(exc).__name__)
        self._archives_failed[archive.fid] = state

    def _remember(self, fid: FileId, fp: Fingerprint, offset: int) -> None:
        if not fp.identifying:
            return
        self._retired = [r for r in self._retired if (r.fp_len, r.fp) != (fp.length, fp.digest)]
        self._retired.append(RetiredRecord(dev=fid.dev, ino=fid.ino, fp_len=fp.length,
                                           fp=fp.digest, offset=offset))
        del self._retired[:-RETIRED_KEPT]

    def _adopt(
        self, p: _Poll, found: Candidate, fp: Fingerprint, offset: int, skipping: bool
    ) -> bool:
        try:
            fd = self._open(found.path)
        except OSError:
            return False
        head = os.pread(fd, FINGERPRINT_BYTES, 0)
        st = os.fstat(fd)
        if FileId(st.st_dev, st.st_ino) != found.fid or not fp.matches(head):
            os.close(fd)
            return False
        stream = LineStream(self._plan, min(offset, st.st_size), skipping)
        t = _Tracked(found.fid, Fingerprint.of(head), found.path, stream, st.st_size,
                     st.st_mtime_ns, real_path=_real(found.path), head=head, fd=fd,
                     changed_at=p.now)
        self._tracked[found.fid] = t
        p.claimed.add(found.fid)
        self._advance(t, p)
        return True

    def _read_archive(
        self, p: _Poll, archive: Candidate, fp: Fingerprint, offset: int, skipping: bool
    ) -> bool:
        try:
            if not fp.matches(compressed.read_head(archive.path, fp.length)):
                return False
            with compressed.open_stream(archive.path) as source:
                remaining = offset
                while remaining > 0:
                    skipped = len(source.read(min(remaining, self._chunk)))
                    if not skipped:
                        break
                    remaining -= skipped
                stream = LineStream(self._plan, offset - remaining, skipping)
                scratch = self._plan.tally()
                while data := source.read(self._chunk):
                    stream.feed(data, scratch)
                stream.finish(scratch)
        except ARCHIVE_OR_FORMAT_ERRORS as exc:
            self._archive_failed(archive, exc)
            return False
        # Counted only once the whole archive was read: a corrupt or half-written one must
        # not half-count.
        p.tally.add(scratch)
        self._archives_seen.add(archive.fid)
        self._remember(archive.fid, fp, stream.consumed)
        self._log.info("read a rotated file from its archive", path=archive.path,
                       offset=offset)
        return True

    # ---- housekeeping --------------------------------------------------------------------

    def _settle(self, p: _Poll) -> None:
        for t in list(self._tracked.values()):
            idle = p.now - t.changed_at
            if t.in_view:
                if (t.shadow_of is None and t.classified and t.superseded
                        and idle >= self._grace):
                    # Nobody writes a superseded file: its unterminated last line is complete.
                    t.stream.finish(p.tally)
                if (t.fd is not None and t.superseded and idle >= self._idle_close
                        and t.stream.consumed >= t.size):
                    self._close(t)
                continue
            if t.shadow_of is not None or not t.classified:
                self._close(t)
                del self._tracked[t.fid]
                continue
            if t.fd is not None and (t.stream.consumed < t.size or idle < self._grace):
                continue
            if t.stream.consumed < t.size:
                self._lost(p.book, t.size - t.stream.committed, t.superseded)
            else:
                t.stream.finish(p.tally)
                self._retire(t)
            self._close(t)
            del self._tracked[t.fid]

    def _retire(self, t: _Tracked) -> None:
        self._log.debug("log file finished", path=t.path, offset=t.stream.consumed)
        self._remember(t.fid, t.fp, t.stream.consumed)
        for other in self._tracked.values():
            if other.shadow_of == t.fid:
                # A copy of a file read to its end holds nothing new up to that end.
                other.shadow_of = None
                other.stream = LineStream(self._plan, min(t.stream.consumed, other.size))

    def _lost(self, book: Bookkeeping, unread: int, superseded: bool) -> None:
        """Content is gone: bytes known unread are counted; a file that may still have been
        written to when it went counts as a loss even when no unread byte was seen."""
        unread = max(0, unread)
        book.lost_bytes += unread
        if unread or not superseded:
            book.losses += 1

    def _ensure_open(self, t: _Tracked, book: Bookkeeping) -> int | None:
        if t.fd is not None:
            return t.fd
        try:
            fd = self._open(t.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._mark_unreadable(t, book, exc)
            return None
        st = os.fstat(fd)
        if FileId(st.st_dev, st.st_ino) != t.fid:
            os.close(fd)
            return None
        t.fd = fd
        return fd

    def _mark_unreadable(self, t: _Tracked, book: Bookkeeping, exc: OSError) -> None:
        if not t.unreadable:
            t.unreadable = True
            book.read_errors += 1
            self._log.warning("log file unreadable; retrying every poll", path=t.path,
                              error=exc.strerror or type(exc).__name__)

    @staticmethod
    def _close(t: _Tracked) -> None:
        if t.fd is not None:
            os.close(t.fd)
            t.fd = None
