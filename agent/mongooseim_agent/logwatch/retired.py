"""Files read to their end and let go, remembered by their first bytes.

A file that turns up again (renamed back, copied, compressed, its directory moved away and
back) with the first bytes of one read before is resumed where that one was left rather
than read again from its start. A file let go is remembered for FORGET_AFTER_NS (a rotated
file gone for a week is not coming back); content overwritten in place only until a late
copy of it could still turn up (an hour). At most RETIRED_KEPT records are kept, and they
are saved with the positions, so a restart remembers them too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from mongooseim_agent.logwatch.fileid import FileId, Fingerprint
from mongooseim_agent.logwatch.state import RetiredRecord

RETIRED_KEPT = 20_000
FORGET_AFTER_NS = 7 * 86_400 * 10**9
OVERWRITTEN_KEPT_NS = 3600 * 10**9
# Expired records are looked for every this many new ones.
_PRUNE_EVERY = 256

_Key = tuple[int, str]


class Retired:
    def __init__(self, records: Iterable[RetiredRecord] = (), kept: int = RETIRED_KEPT,
                 forget_after_ns: int = FORGET_AFTER_NS) -> None:
        # Oldest first, one per fingerprint (dicts keep insertion order), with the order
        # each was remembered in.
        self._records: dict[_Key, tuple[int, RetiredRecord]] = {}
        self._lengths: Counter[int] = Counter()
        self._kept = kept
        self._forget_after = forget_after_ns
        self._seq = 0
        for record in records:
            self._put(record)

    def records(self) -> tuple[RetiredRecord, ...]:
        return tuple(record for _, record in self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def signature(self) -> int:
        """Changes whenever records() does."""
        return self._seq

    def _put(self, record: RetiredRecord) -> None:
        self._drop((record.fp_len, record.fp))
        self._seq += 1
        self._records[(record.fp_len, record.fp)] = (self._seq, record)
        self._lengths[record.fp_len] += 1

    def _drop(self, key: _Key) -> None:
        if self._records.pop(key, None) is not None:
            self._lengths[key[0]] -= 1
            if not self._lengths[key[0]]:
                del self._lengths[key[0]]

    def remember(self, fid: FileId, fp: Fingerprint, offset: int, now_ns: int,
                 keep_ns: int | None = None) -> None:
        """Remember the content `fp` identifies as read up to `offset`, for `keep_ns`
        (default FORGET_AFTER_NS)."""
        if not fp.identifying:
            return
        keep = self._forget_after if keep_ns is None else keep_ns
        self._put(RetiredRecord(dev=fid.dev, ino=fid.ino, fp_len=fp.length, fp=fp.digest,
                                offset=offset, at_ns=now_ns, until_ns=now_ns + keep))
        while len(self._records) > self._kept:
            self._drop(next(iter(self._records)))
        if self._seq % _PRUNE_EVERY == 0:
            expired = [key for key, (_, r) in self._records.items()
                       if self._expiry(r) and self._expiry(r) < now_ns]
            for key in expired:
                self._drop(key)

    def _expiry(self, record: RetiredRecord) -> int:
        if record.until_ns:
            return record.until_ns
        return record.at_ns + self._forget_after if record.at_ns else 0

    def match(self, head: bytes) -> RetiredRecord | None:
        """The latest record whose first bytes `head` starts with."""
        best: tuple[int, RetiredRecord] | None = None
        for length in self._lengths:
            fp = Fingerprint.of(head[:length])
            if fp.length != length or not fp.identifying:
                continue
            entry = self._records.get((fp.length, fp.digest))
            if entry is not None and (best is None or entry[0] > best[0]):
                best = entry
        return best[1] if best is not None else None
