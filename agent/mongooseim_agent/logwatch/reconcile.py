"""The first poll after a restart: each saved position is matched to the file it was taken in.

A saved file is RESUMED when its inode is still there (under its path, where its symlink led,
or anywhere the globs reach) with the same first bytes and at least the saved size;
REPLACED when the inode is there with other content (truncated or rewritten meanwhile), and
MISSING when it is gone. A replaced or missing file's unread rest is looked for in a copy
or an archive carrying its first bytes; what cannot be found is counted as lost.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable

from mongooseim_agent.logwatch.fileid import FINGERPRINT_BYTES, FileId, Fingerprint
from mongooseim_agent.logwatch.scanner import LineStream, ScanPlan
from mongooseim_agent.logwatch.sources import Candidate, candidate
from mongooseim_agent.logwatch.state import FileRecord, FollowerState
from mongooseim_agent.logwatch.tracked import FileTable, Poll, Tracked

# recover(poll, fingerprint, offset, skipping, exclude) -> whether a copy was found and read
Recover = Callable[[Poll, Fingerprint, int, bool, FileId], bool]


class Outcome(enum.Enum):
    RESUMED = "resumed"
    REPLACED = "replaced"
    MISSING = "missing"


def real_path(path: str) -> str:
    return os.path.realpath(path)


class Reconciler:
    def __init__(self, plan: ScanPlan, table: FileTable, recover: Recover) -> None:
        self._plan = plan
        self._table = table
        self._recover = recover

    def reconcile(self, p: Poll, state: FollowerState) -> None:
        p.reserved = {FileId(r.dev, r.ino) for r in state.files}
        for record in sorted(state.files, key=lambda r: (r.mtime_ns, r.ino)):
            fid = FileId(record.dev, record.ino)
            found = p.listing.plain.get(fid)
            for path in (record.real_path, record.path):
                if found is None and path:
                    found = _stat_candidate(path, fid)
            if found is None and p.listing.unsure(record.path):
                # Its directory cannot be listed right now: not gone, just unseen.
                self._keep_unseen(p, record)
                continue
            if found is not None:
                outcome = self._resume(p, record, found)
                if outcome is Outcome.RESUMED:
                    continue
                if outcome is Outcome.REPLACED:
                    p.book.truncations += 1
            p.reserved.discard(fid)
            fp = Fingerprint(record.fp_len, record.fp)
            seen = max(record.size, record.offset)
            if not self._recover(p, fp, record.offset, record.skipping, fid):
                p.book.lost(seen - record.offset, record.superseded)
        p.reserved.clear()

    def _keep_unseen(self, p: Poll, record: FileRecord) -> None:
        """Track a saved file as it was; it is verified (first bytes, size) when seen again."""
        fid = FileId(record.dev, record.ino)
        t = Tracked(fid, Fingerprint(record.fp_len, record.fp), record.path,
                    LineStream(self._plan, record.offset, record.skipping), record.size,
                    record.mtime_ns, real_path=record.real_path, changed_at=p.now,
                    superseded=record.superseded)
        self._table.add(t)
        p.claimed.add(fid)

    def _resume(self, p: Poll, record: FileRecord, found: Candidate) -> Outcome:
        fid = found.fid
        fp = Fingerprint(record.fp_len, record.fp)
        stream = LineStream(self._plan, record.offset, record.skipping)
        t = Tracked(fid, fp, found.path, stream, record.size, record.mtime_ns,
                    real_path=real_path(found.path), changed_at=p.now)
        try:
            fd = self._table.open(found.path)
        except OSError as exc:
            # Cannot verify it; keep the position and retry like any unreadable file.
            self._table.mark_unreadable(t, p.book, exc)
            self._table.add(t)
            p.claimed.add(fid)
            return Outcome.RESUMED
        head = os.pread(fd, FINGERPRINT_BYTES, 0)
        st = os.fstat(fd)
        if FileId(st.st_dev, st.st_ino) != fid:
            self._table.discard(fd)
            return Outcome.MISSING
        if st.st_size < record.offset or not fp.matches(head):
            self._table.discard(fd)
            return Outcome.REPLACED
        self._table.attach(t, fd)
        t.head = head[: fp.length]
        self._table.add(t)
        p.claimed.add(fid)
        return Outcome.RESUMED


def _stat_candidate(path: str, fid: FileId) -> Candidate | None:
    """The file at its last known path, if it is still the same inode (out of the globs)."""
    try:
        found = candidate(path, os.stat(path))
    except OSError:
        return None
    return found if found.fid == fid else None
