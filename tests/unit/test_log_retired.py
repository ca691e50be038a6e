"""Files let go are remembered by their first bytes: found again by any head that starts
with them, the latest wins, forgotten after their time, bounded in number."""

from __future__ import annotations

from mongooseim_agent.logwatch.fileid import FileId, Fingerprint
from mongooseim_agent.logwatch.retired import FORGET_AFTER_NS, Retired

HOUR = 3600 * 10**9


def _head(n: int) -> bytes:
    return f"when=2026-11-23T10:00:00.{n:06d}+00:00 level=info seq={n}\n".encode() * 4


def test_a_head_finds_the_record_it_starts_with() -> None:
    """Match by fingerprint of any length; a longer head still matches; the latest wins."""
    retired = Retired()
    retired.remember(FileId(1, 1), Fingerprint.of(_head(1)[:40]), 40, now_ns=1)
    retired.remember(FileId(1, 2), Fingerprint.of(_head(2)), 300, now_ns=2)
    record = retired.match(_head(1))
    assert record is not None and (record.ino, record.offset) == (1, 40)
    record = retired.match(_head(2) + b"more")
    assert record is not None and record.ino == 2
    assert retired.match(_head(3)) is None
    retired.remember(FileId(1, 3), Fingerprint.of(_head(1)[:40]), 90, now_ns=3)
    record = retired.match(_head(1))
    assert record is not None and (record.ino, record.offset) == (3, 90)
    assert len(retired) == 2


def test_records_expire_and_are_capped() -> None:
    """Overwritten content is forgotten after its hour, files let go after a week; at most
    `kept` records, the oldest dropped first; what is kept survives a save and load."""
    retired = Retired(kept=300)
    retired.remember(FileId(1, 0), Fingerprint.of(_head(0)), 1, now_ns=0, keep_ns=HOUR)
    for n in range(1, 600):
        retired.remember(FileId(1, n), Fingerprint.of(_head(n)), n, now_ns=2 * HOUR)
    assert len(retired) == 300
    assert retired.match(_head(0)) is None
    assert retired.match(_head(299)) is None and retired.match(_head(300)) is not None
    reloaded = Retired(retired.records(), kept=300)
    assert reloaded.records() == retired.records()
    for n in range(600, 856):
        reloaded.remember(FileId(1, n), Fingerprint.of(_head(n)), n,
                          now_ns=2 * HOUR + FORGET_AFTER_NS + 1)
    assert reloaded.match(_head(599)) is None
    assert reloaded.match(_head(855)) is not None
