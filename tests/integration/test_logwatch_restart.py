"""Restarts (as after SIGKILL: nothing saved on the way out) in every rotation state.

Each scenario stops the watcher, changes the files the way a rotation would while the agent
is down, starts a new watcher on the same state directory, and checks exact counts: nothing
written while down is missed, nothing is counted twice, counters continue from where they
were, and content that is truly gone shows in the loss counters.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

from mongooseim_agent.logwatch.state import STATE_FILE_NAME
from tests.support.logfiles import LogBook, Watch, assert_truth, make_watch, mixed

pytestmark = pytest.mark.integration


def test_resume_from_saved_offset(tmp_path: Path, logdir: Path) -> None:
    """Lines written while down are read after the restart; earlier ones are not re-read."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(10))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    before = watch.totals
    book.write(log, mixed(5))
    watch.restart()
    assert watch.totals.matches == before.matches  # restored, not reset
    assert watch.totals.lines == before.lines
    watch.step()
    assert_truth(watch, book)


def test_killed_after_reading_but_before_saving_counts_nothing_twice(
    tmp_path: Path, logdir: Path
) -> None:
    """The saved state is always counters and positions together: a step that read but whose
    save never happened is simply redone."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(6))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    saved = (tmp_path / "state" / STATE_FILE_NAME).read_bytes()
    book.write(log, mixed(6))
    watch.step()
    # As if the second step's write never reached the disk.
    (tmp_path / "state" / STATE_FILE_NAME).write_bytes(saved)
    watch.restart()
    watch.step()
    assert_truth(watch, book)


def test_partial_line_at_stop_is_resumed_whole(tmp_path: Path, logdir: Path) -> None:
    """Stopped mid-line: the saved offset is the line's start, so it is counted once, whole."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, ["info"])
    data = book.lines_of(["emfile"])
    with log.open("ab") as f:
        f.write(data[:30])
    watch = make_watch(tmp_path, logdir)
    watch.step()
    state = json.loads((tmp_path / "state" / STATE_FILE_NAME).read_text())
    assert state["follower"]["files"][0]["offset"] == len(log.read_bytes()) - 30
    with log.open("ab") as f:
        f.write(data[30:])
    watch.restart()
    watch.step()
    assert_truth(watch, book)


def test_rotated_while_down(tmp_path: Path, logdir: Path) -> None:
    """Renamed while down: the old file is finished from its offset, the new one read whole."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(8), count=False)
    watch = make_watch(tmp_path, logdir, start_at="end")
    watch.step()
    book.write(log, ["emfile", "info"])
    log.rename(logdir / "mongooseim.log.1")
    book.write(log, ["partition", "cookie"])
    watch.restart()
    watch.settle()
    assert_truth(watch, book)
    assert (watch.totals.rotations, watch.totals.losses) == (1, 0)


def test_rotated_twice_and_deleted_while_down_is_a_loss(tmp_path: Path, logdir: Path) -> None:
    """The followed file rotated away and deleted while down: its unread tail is gone, which
    is counted as a loss, never guessed; everything still on disk is counted exactly."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(8))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(log, ["emfile"], count=False)  # lost with the file
    log.rename(logdir / "mongooseim.log.1")
    book.write(log, ["cookie"])
    os.unlink(logdir / "mongooseim.log.1")
    watch.restart()
    watch.settle()
    assert_truth(watch, book)
    assert watch.totals.losses == 1


def test_rotated_and_compressed_while_down(tmp_path: Path, logdir: Path) -> None:
    """Rotated and gzipped while down: the unread tail is read from the archive."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(8))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(log, ["emfile", "nodedown"])
    with log.open("rb") as src, gzip.open(logdir / "mongooseim.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    log.unlink()
    book.write(log, ["partition"])
    watch.restart()
    watch.settle()
    assert_truth(watch, book)
    assert watch.totals.losses == 0


def test_copytruncate_while_down(tmp_path: Path, logdir: Path) -> None:
    """Copied and truncated while down: the tail comes from the copy, the copy is not
    re-read, the rewritten original is read from its start."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(8))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(log, ["enfile"])
    shutil.copyfile(log, logdir / "mongooseim.log.1")
    os.truncate(log, 0)
    book.write(log, mixed(20))  # larger than before: only the fingerprint tells
    watch.restart()
    watch.settle()
    assert_truth(watch, book)
    assert (watch.totals.truncations, watch.totals.losses) == (1, 0)


def test_truncated_while_down_without_copy(tmp_path: Path, logdir: Path) -> None:
    """Truncated in place with no copy: new content read from 0, the unknown tail a loss."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(8))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    os.truncate(log, 0)
    book.write(log, ["emfile"])
    watch.restart()
    watch.step()
    assert_truth(watch, book)
    assert (watch.totals.truncations, watch.totals.losses) == (1, 1)


def test_wrap_files_reused_while_down(tmp_path: Path, logdir: Path) -> None:
    """disk_log wrapped past superseded files while down: exact, and no loss reported for
    files that were complete; the file being written when stopped is finished first."""
    files = [logdir / f"mongooseim.log.{i}" for i in range(1, 4)]
    book = LogBook()
    for path in files:
        book.write(path, mixed(5))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(files[2], ["emfile"])  # the active file gets more before the wrap
    for path in files[:2]:
        with path.open("wb"):
            pass
        book.write(path, mixed(4))
    watch.restart()
    watch.step()
    assert_truth(watch, book)
    assert (watch.totals.truncations, watch.totals.losses) == (2, 0)


def test_active_wrap_file_overwritten_while_down_is_a_loss(tmp_path: Path, logdir: Path) -> None:
    """The file being written when stopped was reused too: whatever it got is unknowable."""
    files = [logdir / f"mongooseim.log.{i}" for i in range(1, 3)]
    book = LogBook()
    for path in files:
        book.write(path, mixed(5))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    for path in files:
        with path.open("wb"):
            pass
        book.write(path, mixed(3))
    watch.restart()
    watch.step()
    assert_truth(watch, book)
    assert (watch.totals.truncations, watch.totals.losses) == (2, 1)


def test_new_file_created_while_down_is_read_whole(tmp_path: Path, logdir: Path) -> None:
    """start_at=end applies to the first start only: a file created while down is new."""
    book = LogBook()
    book.write(logdir / "mongooseim.log", mixed(6), count=False)
    watch = Watch(tmp_path / "state", [str(logdir / "mongooseim.*")], start_at="end")
    watch.step()
    book.write(logdir / "mongooseim.json.1", ["emfile", "partition"])
    watch.restart()
    watch.step()
    assert_truth(watch, book)


def test_positions_wait_for_the_release_root(tmp_path: Path, logdir: Path) -> None:
    """Restarted before the node is discovered (no globs yet): saved positions are kept
    for when it is, not taken for vanished files."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(6))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    globs = watch.globs
    book.write(log, ["emfile"])
    watch.restart()
    watch.globs = []
    watch.step()
    watch.globs = globs
    watch.step()
    assert_truth(watch, book)
    assert watch.totals.losses == 0


def test_inode_reused_with_new_content_while_down(tmp_path: Path, logdir: Path) -> None:
    """Same (dev, inode) but other first bytes: a new file, read from its start."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    book.write(log, mixed(6))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    # Rewrite in place without shrinking below the saved offset: only the fingerprint tells.
    fresh = book.lines_of(mixed(12))
    tmp = logdir / "rewrite"
    tmp.write_bytes(fresh)
    with log.open("r+b") as f:
        f.write(fresh)
    tmp.unlink()
    watch.restart()
    watch.step()
    assert_truth(watch, book)
    assert watch.totals.truncations == 1


def test_symlink_swapped_while_down(tmp_path: Path, logdir: Path) -> None:
    """The link now points elsewhere: the old target is finished by its last path."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    link = logdir / "mongooseim.log"
    book = LogBook()
    book.write(a, mixed(4))
    link.symlink_to(a)
    watch = make_watch(tmp_path, logdir)
    watch.step()
    book.write(a, ["emfile"])
    book.write(b, ["cookie"])
    link.unlink()
    link.symlink_to(b)
    watch.restart()
    watch.settle()
    assert_truth(watch, book)
    assert watch.totals.losses == 0


def test_counters_continue_across_many_restarts(tmp_path: Path, logdir: Path) -> None:
    """Ten restarts with writes in between: counters only grow and end at the truth."""
    log = logdir / "mongooseim.log"
    book = LogBook()
    watch = make_watch(tmp_path, logdir)
    previous = 0
    for round_ in range(10):
        book.write(log, mixed(5 + round_))
        watch.step()
        assert watch.totals.lines >= previous
        previous = watch.totals.lines
        watch.restart()
        assert watch.totals.lines == previous
    watch.step()
    assert_truth(watch, book)


def test_corrupt_state_is_set_aside(tmp_path: Path, logdir: Path) -> None:
    """An unreadable state file is kept aside for a post-mortem and counting starts afresh."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / STATE_FILE_NAME).write_text("{not json")
    book = LogBook()
    book.write(logdir / "mongooseim.log", ["emfile"])
    watch = make_watch(tmp_path, logdir)
    watch.step()
    assert_truth(watch, book)
    assert (tmp_path / "state" / (STATE_FILE_NAME + ".corrupt")).read_text() == "{not json"


def test_unwritable_state_dir_keeps_counting(tmp_path: Path, logdir: Path) -> None:
    """No state can be saved: counting goes on, the failure is counted and reported."""
    (tmp_path / "state").write_text("a file where the directory should be")
    book = LogBook()
    book.write(logdir / "mongooseim.log", ["emfile"])
    watch = make_watch(tmp_path, logdir)
    watch.step()
    assert_truth(watch, book)
    assert watch.totals.state_write_errors == 1
    assert not watch.totals.persisted
