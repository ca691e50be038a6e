"""The watcher: a step that fails half-way rolls back to the saved state, so nothing read
in it is lost or counted twice, and journal entries it had taken are kept."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from mongooseim_agent.logwatch.follower import Follower
from mongooseim_agent.logwatch.journal import JournalBatch, JournalEntry
from mongooseim_agent.logwatch.scanner import ScanPlan
from mongooseim_agent.logwatch.sources import Listing, list_files
from mongooseim_agent.logwatch.state import StateStore
from mongooseim_agent.logwatch.watcher import LogWatcher
from mongooseim_agent.mongooseim.log_patterns import catalogue
from tests.support.logfiles import LogBook


class Flaky:
    """A lister that raises on one chosen call, as a bug deep in a poll would."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail_on: int | None = None

    def __call__(self, globs: Sequence[str]) -> Listing:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("bug")
        return list_files(globs)


def test_failed_step_rolls_back_and_carries_journal_entries(tmp_path: Path) -> None:
    """Lines of one file were already counted when the step broke: they are counted once."""
    plan = ScanPlan(catalogue())
    lister = Flaky()
    watcher = LogWatcher(plan, lambda: Follower(plan, start_at="beginning", lister=lister),
                         StateStore(tmp_path / "state"))
    watcher.restore()
    older, newer = tmp_path / "a.log", tmp_path / "b.log"
    book = LogBook()
    book.write(older, ["info"])
    book.write(newer, ["info", "info"])
    os.utime(older, ns=(1, 1))
    globs = [str(tmp_path / "*.log")]
    watcher.step(globs)
    book.write(older, ["partition", "emfile"])
    os.utime(older, ns=(1, 1))
    os.truncate(newer, 0)  # no copy anywhere: the second look at the globs is taken
    lister.fail_on = lister.calls + 2
    batch = JournalBatch((JournalEntry("c1", b"reason=emfile"),))
    with pytest.raises(RuntimeError):
        watcher.step(globs, batch)
    totals = watcher.step(globs).totals
    assert totals.lines == book.lines + 1
    assert (totals.matches["partition"], totals.matches["emfile"]) == (1, 2)
    assert watcher.journal_cursor == "c1"
