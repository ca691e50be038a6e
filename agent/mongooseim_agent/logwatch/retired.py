"""Files read to their end and let go, remembered by their first bytes.

A file that turns up again (renamed back, copied, compressed) with the first bytes of one
read before is resumed where that one was left rather than read again from its start.
"""

from __future__ import annotations

from collections.abc import Iterable

from mongooseim_agent.logwatch.fileid import FileId, Fingerprint
from mongooseim_agent.logwatch.state import RetiredRecord

RETIRED_KEPT = 64


class Retired:
    def __init__(self, records: Iterable[RetiredRecord] = (), kept: int = RETIRED_KEPT) -> None:
        self._records = list(records)
        self._kept = kept

    def records(self) -> tuple[RetiredRecord, ...]:
        return tuple(self._records)

    def signature(self) -> tuple[int, RetiredRecord | None]:
        """Changes whenever records() does (records are only ever appended)."""
        return len(self._records), self._records[-1] if self._records else None

    def remember(self, fid: FileId, fp: Fingerprint, offset: int) -> None:
        if not fp.identifying:
            return
        self._records = [r for r in self._records
                         if (r.fp_len, r.fp) != (fp.length, fp.digest)]
        self._records.append(RetiredRecord(dev=fid.dev, ino=fid.ino, fp_len=fp.length,
                                           fp=fp.digest, offset=offset))
        del self._records[:-self._kept]

    def match(self, head: bytes) -> RetiredRecord | None:
        """The latest record whose first bytes `head` starts with."""
        for record in reversed(self._records):
            fp = Fingerprint(record.fp_len, record.fp)
            if fp.identifying and fp.matches(head):
                return record
        return None
