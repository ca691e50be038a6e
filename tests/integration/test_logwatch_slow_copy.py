"""copytruncate of a big file: the watcher polls while the copy is still being written.

The copy is recognised from its first bytes long before it is complete; when the original
is then truncated, the unread rest is finished from the copy. It must be resumed at the
offset read from the original, not at the size the copy had when it was first seen (which
read again what had been counted already: the soak found it with a slow copy).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.logfiles import LogBook, assert_truth, make_watch, mixed

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("seen_at", [300, 2000])
def test_copy_seen_half_written_is_finished_from_the_read_offset(
    tmp_path: Path, logdir: Path, seen_at: int
) -> None:
    log = logdir / "mongooseim.log"
    copy = logdir / "mongooseim.log.1"
    book = LogBook()
    book.write(log, mixed(40))
    watch = make_watch(tmp_path, logdir, start_at="beginning")
    watch.step()
    book.write(log, ["cookie", "nodedown"])  # written after the last poll, before the copy
    content = log.read_bytes()
    assert watch.totals.lines == 40 and len(content) > seen_at
    with copy.open("wb") as out:
        out.write(content[:seen_at])  # logrotate is still copying when the watcher polls
        out.flush()
        watch.step()
        out.write(content[seen_at:])
    os.truncate(log, 0)
    book.write(log, ["partition", "enfile"])
    watch.settle()
    assert_truth(watch, book)
    assert (watch.totals.truncations, watch.totals.losses) == (1, 0)
