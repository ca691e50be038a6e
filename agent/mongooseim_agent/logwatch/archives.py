"""Compressed rotated files: never followed, read whole when their content was never seen.

An archive holds either content already counted through a plain file (the usual
rename-then-compress), or content that left its plain file before it could be read: a file
rotated and compressed between two polls, or copytruncate compressing the copy at once.
Archives that fail to read (a gzip still being written, or corrupt) are retried only once
they change, never decompressed again every poll.

Archives accounted for are remembered by identity, size and mtime for as long as they are
listed and FORGET_AFTER_NS after, saved with the positions: an archive that disappears and
comes back (its directory moved away and back) is not read again.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Callable, Iterable

import structlog

from mongooseim_agent.logwatch import compressed
from mongooseim_agent.logwatch.fileid import (
    FINGERPRINT_BYTES,
    MIN_MATCH_BYTES,
    FileId,
    Fingerprint,
)
from mongooseim_agent.logwatch.retired import FORGET_AFTER_NS, Retired
from mongooseim_agent.logwatch.scanner import LineStream, ScanPlan
from mongooseim_agent.logwatch.sources import Candidate
from mongooseim_agent.logwatch.state import ArchiveRecord
from mongooseim_agent.logwatch.tracked import Phase, Poll

# A compressed file still being written, or corrupt.
ARCHIVE_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError)
ARCHIVE_OR_FORMAT_ERRORS: tuple[type[Exception], ...] = (
    *ARCHIVE_ERRORS, compressed.UnsupportedCompression,
)
# ctime and our wall clock both have coarse ticks: a file created this close to the last
# listing before a restart is treated as created after it (read from its start).
CTIME_SLACK_NS = 2_000_000_000
ARCHIVES_KEPT = 20_000
# How stale an archive's "last listed" may get before it is refreshed (and saved).
REFRESH_SEEN_NS = 3600 * 10**9


class Archives:
    def __init__(self, plan: ScanPlan, retired: Retired, chunk: int,
                 records: Iterable[ArchiveRecord] = (),
                 forget_after_ns: int = FORGET_AFTER_NS) -> None:
        self._plan = plan
        self._retired = retired
        self._chunk = chunk
        self._seen = {FileId(r.dev, r.ino): r for r in records}
        self._forget_after = forget_after_ns
        self._changes = 0
        # Archives that failed to read, as (size, mtime) then.
        self._failed: dict[FileId, tuple[int, int]] = {}
        self._log = structlog.get_logger("logwatch").bind(component="follower")

    def records(self) -> tuple[ArchiveRecord, ...]:
        return tuple(self._seen.values())

    def signature(self) -> int:
        """Changes whenever records() does."""
        return self._changes

    def _known(self, archive: Candidate) -> ArchiveRecord | None:
        record = self._seen.get(archive.fid)
        if record is None or (record.size, record.mtime_ns) != (archive.size, archive.mtime_ns):
            return None
        return record

    def _accounted(self, archive: Candidate, now_ns: int) -> None:
        self._seen[archive.fid] = ArchiveRecord(dev=archive.fid.dev, ino=archive.fid.ino,
                                                size=archive.size, mtime_ns=archive.mtime_ns,
                                                seen_ns=now_ns)
        self._changes += 1

    def _forget(self, p: Poll, now_ns: int) -> None:
        horizon = now_ns - self._forget_after
        stale = [fid for fid, r in self._seen.items()
                 if r.seen_ns < horizon and fid not in p.listing.archives]
        excess = len(self._seen) - len(stale) - ARCHIVES_KEPT
        if excess > 0:
            by_age = sorted((r.seen_ns, fid) for fid, r in self._seen.items())
            stale += [fid for _, fid in by_age[:excess]]
        for fid in stale:
            self._seen.pop(fid, None)
        if stale:
            self._changes += 1

    def discover(self, p: Poll, followed: Callable[[bytes], bool], now_ns: int) -> None:
        """Read each archive whose content was never seen (`followed(head)`: its content is
        followed in a plain file). History present at the first start, or older than the
        last save, is left alone."""
        for fid in self._failed.keys() - p.listing.archives.keys():
            del self._failed[fid]
        for archive in sorted(p.listing.archives.values(), key=lambda c: (c.mtime_ns, c.path)):
            known = self._known(archive)
            if known is not None:
                if now_ns - known.seen_ns >= REFRESH_SEEN_NS:
                    self._accounted(archive, now_ns)
                continue
            if self._failed.get(archive.fid) == (archive.size, archive.mtime_ns):
                continue
            if p.phase is Phase.INITIAL or (
                p.phase is Phase.RESTART and archive.ctime_ns < p.since_ns - CTIME_SLACK_NS
            ):
                self._accounted(archive, now_ns)
                continue
            try:
                head = compressed.read_head(archive.path, FINGERPRINT_BYTES)
            except compressed.UnsupportedCompression:
                self._accounted(archive, now_ns)
                continue
            except ARCHIVE_ERRORS as exc:
                self._note_failure(archive, exc)
                continue
            if len(head) < MIN_MATCH_BYTES or followed(head):
                self._accounted(archive, now_ns)
                continue
            retired = self._retired.match(head)
            offset = retired.offset if retired is not None else 0
            self.read(p, archive, Fingerprint.of(head), offset, False, now_ns=now_ns)
        self._forget(p, now_ns)

    def read(
        self, p: Poll, archive: Candidate, fp: Fingerprint, offset: int, skipping: bool, *,
        now_ns: int,
    ) -> bool:
        """Count the archive from `offset` if it holds the content `fp` was taken of."""
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
            self._note_failure(archive, exc)
            return False
        # Counted only once the whole archive was read: a corrupt or half-written one must
        # not half-count.
        p.tally.add(scratch)
        self._accounted(archive, now_ns)
        self._retired.remember(archive.fid, fp, stream.consumed, now_ns)
        self._log.info("read a rotated file from its archive", path=archive.path,
                       offset=offset)
        return True

    def _note_failure(self, archive: Candidate, exc: Exception) -> None:
        # Often a gzip still being written; said once per state of the file, not per poll.
        state = (archive.size, archive.mtime_ns)
        if self._failed.get(archive.fid) != state:
            self._log.info("archive not readable (yet); retried when it changes",
                           path=archive.path, error=str(exc) or type(exc).__name__)
        self._failed[archive.fid] = state
