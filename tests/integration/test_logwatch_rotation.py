"""Every rotation case a running follower meets, on real files, with exact counts.

Telegraf's tail_behavior_test.go is the floor (append, partial write, rename+create,
copytruncate smaller/same size/larger, delete with unread data, delete+recreate, symlink,
resume from offset, stop mid-line), including the cases it skips as "to be fixed".
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
from pathlib import Path

import pytest

from tests.support.logfiles import LogBook, assert_truth, make_watch, mixed

pytestmark = pytest.mark.integration


def test_append(tmp_path: Path, logdir: Path) -> None:
    """Lines appended to a followed file are counted once each."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(10))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    assert_truth(watch, book)
    book.write(log, mixed(7))
    watch.step()
    watch.step()
    assert_truth(watch, book)
    assert (watch.totals.rotations, watch.totals.truncations, watch.totals.losses) == (0, 0, 0)


def test_partial_write_waits_for_the_newline(tmp_path: Path, logdir: Path) -> None:
    """A line written in two pieces counts once, when complete."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    data = book.lines_of(["emfile"])
    log.write_bytes(data[:20])
    watch = make_watch(tmp_path, logdir)
    assert watch.step().lines == 0
    with log.open("ab") as f:
        f.write(data[20:])
    watch.step()
    assert_truth(watch, book)


def test_rename_and_create(tmp_path: Path, logdir: Path) -> None:
    """logrotate `create` / OTP file handler: the renamed file is finished, the new one read."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(5))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(log, ["ranch", "info"])  # unread when the rename happens
    log.rename(logdir / "mongooseim.log.0")
    book.write(log, ["partition", "info"])
    watch.settle()
    assert_truth(watch, book)
    assert watch.totals.rotations == 1
    assert watch.totals.losses == 0


@pytest.mark.parametrize("new_lines", [1, 3, 40], ids=["smaller", "same-size", "larger"])
def test_copytruncate(tmp_path: Path, logdir: Path, new_lines: int) -> None:
    """Copy + truncate: unread lines are finished from the copy, the copy is not re-read,
    and new content is read whether it is smaller, as large or larger than the old."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, ["info", "info", "emfile"])
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(log, ["cookie", "nodedown"])  # written after the last poll, before the copy
    shutil.copyfile(log, logdir / "mongooseim.log.1")
    os.truncate(log, 0)
    book.write(log, (["partition"] * new_lines))
    watch.settle()
    assert_truth(watch, book)
    # The copy is not new content: copytruncate shows as a truncation only.
    assert (watch.totals.truncations, watch.totals.rotations, watch.totals.losses) == (1, 0, 0)


def test_copytruncate_then_compress(tmp_path: Path, logdir: Path) -> None:
    """Copy + truncate + immediate compress (no delaycompress): finished from the .gz."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, ["info", "emfile"])
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(log, ["enfile", "nodedown"])
    with log.open("rb") as src, gzip.open(logdir / "mongooseim.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.truncate(log, 0)
    book.write(log, ["cookie"])
    watch.settle()
    assert_truth(watch, book)
    assert (watch.totals.truncations, watch.totals.losses) == (1, 0)


def test_truncate_without_copy_counts_a_possible_loss(tmp_path: Path, logdir: Path) -> None:
    """An active file truncated with no copy anywhere: new content read, a loss recorded."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, ["info", "emfile"])
    watch = make_watch(tmp_path, logdir)
    watch.step()
    os.truncate(log, 0)
    book.write(log, ["partition"])
    watch.step()
    assert_truth(watch, book)
    assert (watch.totals.truncations, watch.totals.losses, watch.totals.lost_bytes) == (1, 1, 0)


def test_delete_reads_the_remaining_data(tmp_path: Path, logdir: Path) -> None:
    """Lines written just before the file is deleted are read through the open fd."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, ["info"])
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(log, ["emfile", "partition"])
    log.unlink()
    watch.settle()
    assert_truth(watch, book)
    assert watch.totals.files == ()
    assert watch.totals.losses == 0


def test_delete_and_recreate(tmp_path: Path, logdir: Path) -> None:
    """Deleted then recreated under the same name: old tail and new file both counted once."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, ["info"])
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(log, ["emfile"])
    log.unlink()
    book.write(log, ["cookie", "info"])
    watch.settle()
    assert_truth(watch, book)
    assert watch.totals.rotations == 1


def test_symlink_followed_and_swapped(tmp_path: Path, logdir: Path) -> None:
    """A symlink is followed to its target; a swap to a new target is a rotation."""
    target_a = tmp_path / "a.log"
    target_b = tmp_path / "b.log"
    link = logdir / "mongooseim.log"
    book = LogBook()
    book.write(target_a, ["info"])
    link.symlink_to(target_a)
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(target_a, ["emfile"])
    watch.step()
    book.write(target_a, ["nodedown"])  # unread at the swap
    book.write(target_b, ["partition"])
    tmp_link = logdir / "tmp-link"
    tmp_link.symlink_to(target_b)
    tmp_link.rename(link)
    watch.settle()
    assert_truth(watch, book)
    assert watch.totals.rotations == 1
    assert watch.totals.files == (str(link),)


def test_late_file_is_read_from_its_start(tmp_path: Path, logdir: Path) -> None:
    """A file appearing after the watcher started is read whole, even with start_at=end."""
    watch = make_watch(tmp_path, logdir, start_at="end")
    watch.step()
    book = LogBook()
    book.write(logdir / "mongooseim.log", ["emfile", "info", "partition"])
    watch.step()
    assert_truth(watch, book)
    assert watch.totals.rotations == 0


def test_start_at_end_skips_history_but_not_a_line_in_progress(
    tmp_path: Path, logdir: Path
) -> None:
    """Existing files start at their last complete line; an unfinished line still counts."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, ["emfile"] * 5, count=False)
    tail = book.lines_of(["partition"])
    with log.open("ab") as f:
        f.write(tail[:15])
    watch = make_watch(tmp_path, logdir, start_at="end")
    watch.step()
    with log.open("ab") as f:
        f.write(tail[15:])
    book.write(log, ["cookie"])
    watch.step()
    assert_truth(watch, book)


def test_start_at_beginning_reads_history(tmp_path: Path, logdir: Path) -> None:
    """start_at=beginning counts what the files already hold."""
    book = LogBook()
    book.write(logdir / "mongooseim.log", mixed(12))
    book.write(logdir / "mongooseim.log.1", mixed(6))
    watch = make_watch(tmp_path, logdir, start_at="beginning")
    watch.step()
    assert_truth(watch, book)


def test_disk_log_wrap_cycle(tmp_path: Path, logdir: Path) -> None:
    """OTP disk_log wrap: .1 .. .N reused in turn, each truncated and rewritten in place."""
    book = LogBook()
    files = [logdir / f"mongooseim.log.{i}" for i in range(1, 4)]
    watch = make_watch(tmp_path, logdir)
    for _ in range(4):
        for path in files:
            with path.open("wb"):
                pass  # disk_log opens the next file truncating it
            book.write(path, mixed(6))
            watch.step()
    (logdir / "mongooseim.log.idx").write_bytes(b"\x00\x01emfile-binary")
    (logdir / "mongooseim.log.siz").write_bytes(b"emfile")
    watch.step()
    assert_truth(watch, book)
    # Three files created in the first cycle, then each reused (truncated) in later ones.
    assert (watch.totals.rotations, watch.totals.truncations) == (2, 9)
    assert watch.totals.losses == 0
    assert len(watch.totals.files) == 3


def test_compressed_after_rename_is_not_reread(tmp_path: Path, logdir: Path) -> None:
    """logrotate compress: the rotated file turns into .gz after being read; nothing doubles."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(9))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    rotated = logdir / "mongooseim.log.1"
    log.rename(rotated)
    book.write(log, mixed(4))
    watch.step()
    with rotated.open("rb") as src, gzip.open(logdir / "mongooseim.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    rotated.unlink()
    watch.settle()
    assert_truth(watch, book)
    assert watch.totals.losses == 0


def test_unreadable_file_counted_logged_once_and_retried(tmp_path: Path, logdir: Path) -> None:
    """EACCES: one read error, one log line, retried each poll, read fully once allowed."""
    from structlog.testing import capture_logs

    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, ["emfile", "info"])
    denied = {str(log)}

    def opener(path: str) -> int:
        if path in denied:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return os.open(path, os.O_RDONLY)

    with capture_logs() as logs:
        watch = make_watch(tmp_path, logdir, open_fd=opener)
        for _ in range(3):
            watch.step()
        assert watch.totals.read_errors == 1
        assert watch.totals.unreadable == (str(log),)
        assert watch.totals.lines == 0
        book.write(log, ["partition"])
        denied.clear()
        watch.step()
    assert_truth(watch, book)
    assert watch.totals.unreadable == ()
    events = [e["event"] for e in logs]
    assert events.count("log file unreadable; retrying every poll") == 1
    assert events.count("log file readable again") == 1


def test_huge_growth_is_read_in_bounded_steps(tmp_path: Path, logdir: Path) -> None:
    """A file growing by far more than one poll's budget is read over several steps."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(3000))
    watch = make_watch(tmp_path, logdir, budget=64 * 1024)
    first = watch.watcher.step(watch.globs)
    assert first.more
    assert 0 < first.totals.bytes <= 64 * 1024
    watch.step()
    assert_truth(watch, book)


def test_long_line_without_newline_in_a_followed_file(tmp_path: Path, logdir: Path) -> None:
    """An 8 MB line with no newline: counted as one long line, memory capped, next line ok."""
    log = logdir / "mongooseim.log"
    watch = make_watch(tmp_path, logdir, max_line_bytes=4096)
    watch.step()
    with log.open("ab") as f:
        for _ in range(8):
            f.write(b"reason=emfile " + b"x" * (1 << 20))
            f.flush()
            watch.step()
        f.write(b"\nreason=emfile\n")
    watch.step()
    assert (watch.totals.lines, watch.totals.long_lines) == (2, 1)
    assert watch.totals.matches["emfile"] == 2


def test_file_rotated_and_compressed_between_two_polls(tmp_path: Path, logdir: Path) -> None:
    """A file that lived and was compressed between polls exists only as an archive: its
    lines are read from it, once; one still being written is retried, not re-read."""
    from structlog.testing import capture_logs

    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(4))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    log.rename(logdir / "mongooseim.log.1")
    book.write(log, mixed(9))  # never seen as a plain file:
    whole = gzip.compress(log.read_bytes())
    archive = logdir / "mongooseim.log.2.gz"
    log.unlink()
    book.write(log, ["cookie"])
    with capture_logs() as logs:
        archive.write_bytes(whole[: len(whole) // 2])  # gzip still writing
        watch.step()
        watch.step()
        archive.write_bytes(whole)
        watch.settle()
        watch.settle()
    assert_truth(watch, book)
    events = [e["event"] for e in logs]
    assert events.count("archive not readable (yet); retried when it changes") == 1
