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

One poll, in order (the modules it is split into):
1. list the globs (sources);
2. on the first poll after a restart, match the saved positions to files (reconcile);
3. take in files not tracked yet: each starts PENDING and is classified as a copy, a file
   let go before (retired) or new content (tracked, for the roles);
4. read each FOLLOWED file, oldest first, within the poll's byte budget; a file truncated or
   rewritten in place has its unread rest finished from a copy first;
5. read archives whose content was never seen (archives);
6. settle: finish superseded files, close idle ones, let go of files gone from view.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Sequence
from typing import Literal

import structlog

from mongooseim_agent.logwatch.archives import CTIME_SLACK_NS, Archives
from mongooseim_agent.logwatch.fileid import (
    FINGERPRINT_BYTES,
    MIN_MATCH_BYTES,
    FileId,
    Fingerprint,
    HeadMatcher,
    family,
)
from mongooseim_agent.logwatch.reconcile import Reconciler, real_path
from mongooseim_agent.logwatch.retired import OVERWRITTEN_KEPT_NS, RETIRED_KEPT, Retired
from mongooseim_agent.logwatch.safeopen import open_regular
from mongooseim_agent.logwatch.scanner import LineStream, ScanPlan, Tally
from mongooseim_agent.logwatch.sources import Candidate, Listing, list_files
from mongooseim_agent.logwatch.state import FileRecord, FollowerState
from mongooseim_agent.logwatch.tracked import (
    MAX_OPEN_FILES,
    Bookkeeping,
    CopyIndex,
    FileTable,
    FollowerStatus,
    Phase,
    Poll,
    Role,
    Tracked,
)

__all__ = ["POLL_BUDGET", "READ_CHUNK", "RETIRED_KEPT", "Bookkeeping", "Follower",
           "FollowerStatus", "StartAt"]

StartAt = Literal["end", "beginning"]
READ_CHUNK = 1 << 20
POLL_BUDGET = 64 << 20


class Undecided(enum.Enum):
    """A new file that may be a copy still being written: asked again on the next poll."""

    UNDECIDED = "undecided"


UNDECIDED = Undecided.UNDECIDED


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
        max_open: int = MAX_OPEN_FILES,
    ) -> None:
        self._plan = plan
        self._start_at = start_at
        self._grace = drain_grace
        self._idle_close = idle_close
        self._chunk = read_chunk
        self._wall_ns = wall_ns
        self._monotonic = monotonic
        self._lister = lister
        self._files = FileTable(open_fd, max_open)
        self._retired = Retired()
        self._archives = Archives(plan, self._retired, read_chunk)
        self._reconciler = Reconciler(plan, self._files, self._recover)
        self._restored: FollowerState | None = None
        self._phase = Phase.INITIAL
        self._scanned_at_ns = 0
        self._listing_errors: tuple[str, ...] = ()
        self._log = structlog.get_logger("logwatch").bind(component="follower")

    # ---- persistence -------------------------------------------------------------------

    def restore(self, state: FollowerState) -> None:
        """Positions from a previous run; applied by the first poll."""
        self._restored = state
        self._phase = Phase.RESTART
        self._retired = Retired(state.retired)
        self._archives = Archives(self._plan, self._retired, self._chunk, state.archives)

    def export(self) -> FollowerState:
        if self._restored is not None:
            # Not polled yet: keep what was restored rather than forgetting it.
            files = self._restored.files
        else:
            files = tuple(
                FileRecord(
                    dev=t.fid.dev, ino=t.fid.ino, fp_len=t.fp.length, fp=t.fp.digest,
                    offset=t.stream.committed, skipping=t.stream.skipping, path=t.path,
                    real_path=t.real_path,
                    size=max(t.size, t.stream.consumed), mtime_ns=t.mtime_ns,
                    superseded=t.superseded,
                )
                # Copies and pending files are worked out again from their bytes after a
                # restart; saving them as followed files would have them read as such.
                for t in self._files if t.followed
            )
        return FollowerState(files=files, retired=self._retired.records(),
                             archives=self._archives.records(),
                             scanned_at_ns=self._scanned_at_ns)

    def signature(self) -> tuple[object, ...]:
        """Changes whenever export() would: a cheap test for whether to save."""
        return (
            tuple((t.fid, t.stream.committed, t.stream.skipping, t.superseded, t.fp.length,
                   t.path) for t in self._files if t.followed),
            self._retired.signature(), self._archives.signature(),
        )

    def status(self) -> FollowerStatus:
        return FollowerStatus(
            files=tuple(sorted(t.path for t in self._files
                               if t.in_view and t.role is not Role.COPY)),
            unreadable=tuple(sorted(t.path for t in self._files if t.unreadable)),
            listing_errors=self._listing_errors,
        )

    def close(self) -> None:
        self._files.close_all()

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
        p = Poll(globs, listing, tally, book, self._monotonic(), budget, phase=self._phase)
        if self._restored is not None:
            p.since_ns = self._restored.scanned_at_ns
            self._reconciler.reconcile(p, self._restored)
        self._discover(p)
        self._phase = Phase.RUNNING
        self._restored = None
        self._scanned_at_ns = scanned_at
        self._update_views(p)
        more = False
        for t in sorted(self._files, key=lambda t: (t.mtime_ns, t.fid)):
            if self._files.get(t.fid) is not t:
                continue
            self._advance(t, p)
            if p.budget <= 0:
                more = True
                break
        # After reading, so that each followed file's fingerprint covers what it holds now
        # and an archive of it is recognised as such.
        self._archives.discover(p, self._followed_elsewhere, scanned_at)
        self._update_superseded(listing)
        self._settle(p)
        return more

    def _note_listing_errors(self, listing: Listing) -> None:
        errors = tuple(sorted(f"{path}: {reason}" for path, reason in listing.errors.items()))
        for line in set(errors) - set(self._listing_errors):
            self._log.warning("log path cannot be examined", error=line)
        self._listing_errors = errors

    def _followed_elsewhere(self, head: bytes) -> bool:
        """Whether content starting with `head` is followed (or recovered) in a plain file."""
        matcher = HeadMatcher(head)
        return any(t.role is not Role.PENDING and t.fp.identifying and matcher.matches(t.fp)
                   for t in self._files)

    def _update_views(self, p: Poll) -> None:
        for t in self._files:
            found = p.listing.plain.get(t.fid)
            if found is not None:
                t.in_view, t.path = True, found.path
            elif not p.listing.unsure(t.path):
                # Only a listing that could look is believed: a directory that could not be
                # read (EMFILE, or gone for a moment) does not make its files gone.
                t.in_view = False

    def _update_superseded(self, listing: Listing) -> None:
        """Which files nobody writes any more; decided after reading, used by the next poll
        (a wrap file being reused is the newest once reused, but was superseded before).
        The newest file of a family is the one modified last; on a tie within one clock
        tick (`cp log log.1 && : > log`; disk_log filling .2 and starting .3) the one named
        like the family itself, then the one whose current content was seen to begin last."""
        newest: dict[str, tuple[int, bool, float]] = {}
        for t in self._files:
            found = listing.plain.get(t.fid)
            if found is not None and t.role is not Role.COPY:
                fam = family(found.path)
                key = (found.mtime_ns, found.path == fam, t.added_at)
                newest[fam] = max(newest.get(fam, key), key)
        for t in self._files:
            found = listing.plain.get(t.fid)
            if found is None and listing.unsure(t.path):
                continue
            if found is None or t.role is Role.COPY:
                t.superseded = True
                continue
            fam = family(found.path)
            t.superseded = (found.mtime_ns, found.path == fam, t.added_at) < newest[fam]

    # ---- new files -----------------------------------------------------------------------

    def _discover(self, p: Poll) -> None:
        known_families = {family(t.path) for t in self._files}
        new = [c for fid, c in p.listing.plain.items()
               if fid not in self._files and fid not in p.claimed]
        if len(new) > 1:
            # Nothing is read while new files are taken in, so the followed files' first
            # bytes stay as indexed (plus what _classify adds).
            p.copies = CopyIndex(t for t in self._files if t.followed)
        try:
            for found in sorted(new, key=lambda c: (c.mtime_ns, c.path)):
                self._add(p, found, known_families)
        finally:
            p.copies = None

    def _add(self, p: Poll, found: Candidate, known_families: set[str]) -> None:
        t = Tracked(found.fid, Fingerprint.of(b""), found.path, LineStream(self._plan),
                    found.size, found.mtime_ns, real_path=real_path(found.path),
                    changed_at=p.now, added_at=p.now,
                    new_in_family=(p.phase is not Phase.INITIAL
                                   and family(found.path) in known_families))
        try:
            fd = self._files.open(found.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._files.mark_unreadable(t, p.book, exc)
            if p.phase is Phase.INITIAL and self._start_at == "end":
                t.stream = LineStream(self._plan, found.size)
            self._files.add(t)
            return
        st = os.fstat(fd)
        if FileId(st.st_dev, st.st_ino) != found.fid:
            self._files.discard(fd)
            return
        head = os.pread(fd, FINGERPRINT_BYTES, 0)
        self._files.attach(t, fd)
        t.size, t.mtime_ns = st.st_size, st.st_mtime_ns
        offset, skipping = self._start_position(fd, found, p)
        t.stream = LineStream(self._plan, offset, skipping)
        t.role = Role.PENDING
        self._files.add(t)
        self._classify(t, head, p)

    def _classify(self, t: Tracked, head: bytes, p: Poll) -> bool:
        """Decide what a PENDING file is: a copy of a followed file (COPY), a file let go
        before (FOLLOWED from where it was left), or new content (FOLLOWED). Until its first
        bytes can tell, it stays PENDING: an empty file may be a copy about to be written."""
        if len(head) < MIN_MATCH_BYTES and p.now - t.added_at < self._grace:
            return False
        copied = self._copy_of(t, head, p)
        if copied is UNDECIDED:
            return False
        t.fp, t.head = Fingerprint.of(head), head
        if isinstance(copied, FileId):
            t.become_copy(copied)
            kind = "copy"
        elif (retired := self._retired.match(head)) is not None:
            t.follow(LineStream(self._plan, min(retired.offset, t.size)))
            kind = "resumed"
        else:
            t.follow()
            kind = "new"
            if t.new_in_family:
                p.book.rotations += 1
        if t.followed and p.copies is not None:
            p.copies.add(t)
        self._log.debug("log file found", path=t.path, kind=kind, offset=t.stream.consumed)
        return True

    def _copy_of(self, new: Tracked, head: bytes, p: Poll) -> FileId | Undecided | None:
        """The followed file `new` is a copy of, UNDECIDED while it may be one still being
        written (a copy in progress is a prefix of the original), or None."""
        now = p.now
        matcher = HeadMatcher(head)
        candidates = self._files if p.copies is None else p.copies.candidates(head, matcher)
        for t in candidates:
            if t is new or not t.followed:
                continue
            if t.fp.identifying and matcher.matches(t.fp):
                return t.fid
            if (MIN_MATCH_BYTES <= len(head) < t.fp.length and new.size < t.size
                    and t.head.startswith(head)):
                # Still a prefix after the grace: a partial copy of what was already read.
                return t.fid if now - new.added_at >= self._grace else UNDECIDED
        return None

    def _start_position(self, fd: int, found: Candidate, p: Poll) -> tuple[int, bool]:
        if p.phase is Phase.RUNNING or self._start_at == "beginning":
            return 0, False
        if p.phase is Phase.RESTART and found.ctime_ns >= p.since_ns - CTIME_SLACK_NS:
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

    # ---- following -----------------------------------------------------------------------

    def _advance(self, t: Tracked, p: Poll) -> None:
        if t.role is Role.COPY or self._unchanged(t, p):
            return
        fd = self._files.ensure_open(t, p.book)
        if fd is None:
            return
        try:
            with self._files.using(t):
                self._read(t, fd, p)
        except OSError as exc:
            # Every feed is whole, so what was read stays counted; the rest is retried
            # through a fresh fd on the next poll.
            self._files.close(t)
            self._files.mark_unreadable(t, p.book, exc)

    @staticmethod
    def _unchanged(t: Tracked, p: Poll) -> bool:
        """A file let go of (no fd) that the listing shows as it was, read to its end: it is
        not reopened just to find nothing (3000 rotated files cost 3000 stats, not opens)."""
        if t.fd is not None or not t.followed or t.unreadable:
            return False
        found = p.listing.plain.get(t.fid)
        return (found is not None and found.size == t.size == t.stream.consumed
                and found.mtime_ns == t.mtime_ns)

    def _read(self, t: Tracked, fd: int, p: Poll) -> None:
        st = os.fstat(fd)
        size = st.st_size
        if t.role is Role.PENDING:
            t.size, t.mtime_ns = size, st.st_mtime_ns
            if not self._classify(t, os.pread(fd, FINGERPRINT_BYTES, 0), p) or not t.followed:
                return
        if size != t.size or st.st_mtime_ns != t.mtime_ns or size != t.stream.consumed:
            head = os.pread(fd, FINGERPRINT_BYTES, 0)
            replaced = size < t.stream.consumed or not t.fp.matches(head)
            if replaced:
                self._replaced(t, p, head)
            elif len(head) > t.fp.length:
                t.fp, t.head = Fingerprint.of(head), head
            if size != t.size or st.st_mtime_ns != t.mtime_ns:
                t.changed_at = p.now
            t.size, t.mtime_ns = size, st.st_mtime_ns
            if replaced and (not self._classify(t, head, p) or not t.followed):
                return
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

    def _replaced(self, t: Tracked, p: Poll, head: bytes) -> None:
        """The file's content was truncated or rewritten in place."""
        p.book.truncations += 1
        self._log.debug("log file truncated", path=t.path, size=len(head),
                        offset=t.stream.consumed)
        seen = max(t.size, t.stream.consumed)
        committed = t.stream.committed
        if not self._recover(p, t.fp, committed, t.stream.skipping, t.fid):
            p.book.lost(seen - committed, t.superseded)
            # If a copy turns up later (compression finishing after this poll), it is
            # resumed from here rather than read again from its start.
            self._retired.remember(t.fid, t.fp, committed, self._wall_ns(),
                                   keep_ns=OVERWRITTEN_KEPT_NS)
        t.stream = LineStream(self._plan)
        t.fp, t.head = Fingerprint.of(head), head
        # New content, or a copy of a followed file written over this one (`cp log log.1`
        # rewrites .1 in place): decided from its first bytes, as for a file just found.
        t.role, t.added_at, t.new_in_family = Role.PENDING, p.now, False

    def _recover(
        self, p: Poll, fp: Fingerprint, offset: int, skipping: bool, exclude: FileId
    ) -> bool:
        """Finish content that left its inode from a copy: a followed copy, another plain
        file, or a compressed archive carrying the same first bytes."""
        if not fp.identifying:
            return False
        for t in self._files.snapshot():
            if (t.copy_of == exclude or (t.role is Role.PENDING and self._holds(t, fp, p))
                    or self._rewritten_as_copy(t, fp, exclude, p)):
                self._log.debug("finishing from a copy", path=t.path, offset=offset)
                t.follow(LineStream(self._plan, min(offset, _size_now(t)), skipping))
                p.claimed.add(t.fid)
                self._advance(t, p)
                return True
        # The listing is from the start of the poll; a copy made just before the truncation
        # seen now may be newer than it, so a second look is taken before giving up.
        for listing in (p.listing, self._lister(p.globs)):
            for found in listing.plain.values():
                if (found.fid == exclude or found.fid in self._files
                        or found.fid in p.claimed or found.fid in p.reserved):
                    continue
                if self._adopt(p, found, fp, offset, skipping):
                    return True
            for archive in listing.archives.values():
                if self._archives.read(p, archive, fp, offset, skipping,
                                       now_ns=self._wall_ns()):
                    return True
        return False

    def _rewritten_as_copy(
        self, t: Tracked, fp: Fingerprint, original: FileId, p: Poll
    ) -> bool:
        """Whether a followed file of the same family as `original` was rewritten in place
        with a copy of it since it was last read (`cp log log.1` over an older .1, seen
        before the poll got to .1). Reading it now finishes its own old content and makes
        it the copy."""
        origin = self._files.get(original)
        if (not t.followed or t.fid == original or origin is None
                or family(t.path) != family(origin.path) or not self._holds(t, fp, p)):
            return False
        self._advance(t, p)
        return t.copy_of == original

    def _holds(self, t: Tracked, fp: Fingerprint, p: Poll) -> bool:
        """Whether a file now starts with the bytes `fp` was taken of (a PENDING one: a copy
        seen while still empty; a followed one: rewritten with a copy)."""
        fd = self._files.ensure_open(t, p.book)
        if fd is None:
            return False
        try:
            head = os.pread(fd, FINGERPRINT_BYTES, 0)
            size = os.fstat(fd).st_size
        except OSError:
            return False
        if t.followed:
            return fp.matches(head) and not t.fp.matches(head)
        t.size = size
        if not fp.matches(head):
            return False
        t.fp, t.head = Fingerprint.of(head), head
        return True

    def _adopt(
        self, p: Poll, found: Candidate, fp: Fingerprint, offset: int, skipping: bool
    ) -> bool:
        """Follow an untracked file holding the content `fp` was taken of, from `offset`."""
        try:
            fd = self._files.open(found.path)
        except OSError:
            return False
        head = os.pread(fd, FINGERPRINT_BYTES, 0)
        st = os.fstat(fd)
        if FileId(st.st_dev, st.st_ino) != found.fid or not fp.matches(head):
            self._files.discard(fd)
            return False
        stream = LineStream(self._plan, min(offset, st.st_size), skipping)
        t = Tracked(found.fid, Fingerprint.of(head), found.path, stream, st.st_size,
                    st.st_mtime_ns, real_path=real_path(found.path), head=head,
                    changed_at=p.now)
        self._files.attach(t, fd)
        self._files.add(t)
        p.claimed.add(found.fid)
        self._advance(t, p)
        return True

    # ---- housekeeping --------------------------------------------------------------------

    def _settle(self, p: Poll) -> None:
        for t in self._files.snapshot():
            idle = p.now - t.changed_at
            if t.in_view:
                if t.followed and t.superseded and idle >= self._grace:
                    # Nobody writes a superseded file: its unterminated last line is complete.
                    t.stream.finish(p.tally)
                if (t.fd is not None and t.superseded and idle >= self._idle_close
                        and t.stream.consumed >= t.size):
                    self._files.close(t)
                continue
            if not t.followed:
                self._files.drop(t)
                continue
            if t.fd is not None and (t.stream.consumed < t.size or idle < self._grace):
                continue
            if t.stream.consumed < t.size:
                p.book.lost(t.size - t.stream.committed, t.superseded)
            else:
                t.stream.finish(p.tally)
                self._retire(t)
            self._files.drop(t)

    def _retire(self, t: Tracked) -> None:
        self._log.debug("log file finished", path=t.path, offset=t.stream.consumed)
        self._retired.remember(t.fid, t.fp, t.stream.consumed, self._wall_ns())
        for other in self._files:
            if other.copy_of == t.fid:
                # A copy of a file read to its end holds nothing new up to that end.
                other.follow(LineStream(self._plan, min(t.stream.consumed,
                                                        _size_now(other))))


def _size_now(t: Tracked) -> int:
    """A copy's size now: one still being written when last looked at (a slow copytruncate
    of a big file) has grown since, and resuming it at that stale size would read again
    what was already counted from the original."""
    if t.fd is not None:
        try:
            return max(t.size, os.fstat(t.fd).st_size)
        except OSError:
            pass
    return t.size
