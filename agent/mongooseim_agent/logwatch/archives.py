"""Compressed rotated files: never followed, read whole when their content was never seen.

An archive holds either content already counted through a plain file (the usual
rename-then-compress), or content that left its plain file before it could be read: a file
rotated and compressed between two polls, or copytruncate compressing the copy at once.
Archives that fail to read (a gzip still being written, or corrupt) are retried only once
they change, never decompressed again every poll.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Callable

import structlog

from mongooseim_agent.logwatch import compressed
from mongooseim_agent.logwatch.fileid import (
    FINGERPRINT_BYTES,
    MIN_MATCH_BYTES,
    FileId,
    Fingerprint,
)
from mongooseim_agent.logwatch.retired import Retired
from mongooseim_agent.logwatch.scanner import LineStream, ScanPlan
from mongooseim_agent.logwatch.sources import Candidate
from mongooseim_agent.logwatch.tracked import Phase, Poll

# A compressed file still being written, or corrupt.
ARCHIVE_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError)
ARCHIVE_OR_FORMAT_ERRORS: tuple[type[Exception], ...] = (
    *ARCHIVE_ERRORS, compressed.UnsupportedCompression,
)
# ctime and our wall clock both have coarse ticks: a file created this close to the last
# listing before a restart is treated as created after it (read from its start).
CTIME_SLACK_NS = 2_000_000_000


class Archives:
    def __init__(self, plan: ScanPlan, retired: Retired, chunk: int) -> None:
        self._plan = plan
        self._retired = retired
        self._chunk = chunk
        self._seen: set[FileId] = set()
        # Archives that failed to read, as (size, mtime) then.
        self._failed: dict[FileId, tuple[int, int]] = {}
        self._log = structlog.get_logger("logwatch").bind(component="follower")

    def discover(self, p: Poll, followed: Callable[[bytes], bool]) -> None:
        """Read each archive whose content was never seen (`followed(head)`: its content is
        followed in a plain file). History present at the first start, or older than the
        last save, is left alone."""
        self._seen &= p.listing.archives.keys()
        for fid in self._failed.keys() - p.listing.archives.keys():
            del self._failed[fid]
        for archive in sorted(p.listing.archives.values(), key=lambda c: (c.mtime_ns, c.path)):
            if archive.fid in self._seen or self._failed.get(
                archive.fid) == (archive.size, archive.mtime_ns):
                continue
            if p.phase is Phase.INITIAL or (
                p.phase is Phase.RESTART and archive.ctime_ns < p.since_ns - CTIME_SLACK_NS
            ):
                self._seen.add(archive.fid)
                continue
            try:
                head = compressed.read_head(archive.path, FINGERPRINT_BYTES)
            except compressed.UnsupportedCompression:
                self._seen.add(archive.fid)
                continue
            except ARCHIVE_ERRORS as exc:
                self._note_failure(archive, exc)
                continue
            if len(head) < MIN_MATCH_BYTES or followed(head):
                self._seen.add(archive.fid)
                continue
            retired = self._retired.match(head)
            offset = retired.offset if retired is not None else 0
            self.read(p, archive, Fingerprint.of(head), offset, False)

    def read(
        self, p: Poll, archive: Candidate, fp: Fingerprint, offset: int, skipping: bool
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
        self._seen.add(archive.fid)
        self._retired.remember(archive.fid, fp, stream.consumed)
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
