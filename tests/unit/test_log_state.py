"""The state file: atomic replacement, round trip, and refusal of what it cannot trust."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mongooseim_agent.logwatch.follower import Follower
from mongooseim_agent.logwatch.scanner import ScanPlan
from mongooseim_agent.logwatch.state import (
    MAX_COUNTER,
    Counters,
    FileRecord,
    FollowerState,
    StateError,
    StateStore,
    WatchState,
    load_state,
)
from mongooseim_agent.logwatch.watcher import LogWatcher
from mongooseim_agent.mongooseim.log_patterns import catalogue


def _state(lines: int) -> WatchState:
    record = FileRecord(dev=1, ino=2, fp_len=10, fp="ab", offset=5, path="/l/m.log", size=9)
    return WatchState(saved_at=1.5, follower=FollowerState(files=(record,), scanned_at_ns=7),
                      counters=Counters(lines=lines, matches={"emfile": 3}),
                      journal_cursor="s=1")


def test_round_trip_and_replace(tmp_path: Path) -> None:
    """Saved, loaded equal; a second save replaces it and leaves no temporary file."""
    store = StateStore(tmp_path / "state")
    assert store.load() is None
    store.save(_state(1))
    store.save(_state(2))
    assert store.load() == _state(2)
    assert os.listdir(tmp_path / "state") == ["logs-state.json"]


@pytest.mark.parametrize("content", [b"{", b"[]", b'{"version": 99}',
                                     b'{"counters": {"lines": -1, "bogus": 1}}'])
def test_unusable_state_is_an_error(tmp_path: Path, content: bytes) -> None:
    """Corrupt, foreign or future-version files are refused, never half-used."""
    (tmp_path / "logs-state.json").write_bytes(content)
    with pytest.raises(StateError):
        StateStore(tmp_path).load()


def test_save_failure_leaves_the_old_state(tmp_path: Path) -> None:
    """A failed write (directory not writable) raises and keeps the previous file intact."""
    store = StateStore(tmp_path)
    store.save(_state(1))
    blocker = StateStore(tmp_path / "logs-state.json")  # its "directory" is a file
    with pytest.raises(OSError):
        blocker.save(_state(2))
    assert store.load() == _state(1)


def test_counters_out_of_range_are_clamped_with_a_log_line(tmp_path: Path) -> None:
    """A hand-edited state: a negative count becomes 0, 10**400 becomes MAX_COUNTER, an
    infinite timestamp 0; each is named in a warning; nothing negative reaches the totals."""
    huge = "1" + "0" * 400
    (tmp_path / "logs-state.json").write_text(
        '{"version": 1, "counters": {"lines": ' + huge + ', "losses": -3, '
        '"matches": {"emfile": -50, "enfile": ' + huge + ', "partition": 7}, '
        '"last_match": {"emfile": 1e400, "partition": -5, "nodedown": 12.5}}}')
    with capture_logs() as logs:
        state = load_state(tmp_path)
    assert state is not None
    c = state.counters
    assert (c.lines, c.losses) == (MAX_COUNTER, 0)
    assert c.matches == {"emfile": 0, "enfile": MAX_COUNTER, "partition": 7}
    assert c.last_match == {"emfile": 0.0, "partition": 0.0, "nodedown": 12.5}
    warned = {e["key"]: e["value"] for e in logs
              if e["event"] == "log watcher state: value out of range, clamped"}
    assert warned == {
        "counters.lines": "an integer of 1329 bits", "counters.losses": "-3",
        "counters.matches.emfile": "-50", "counters.matches.enfile": "an integer of 1329 bits",
        "counters.last_match.emfile": "inf", "counters.last_match.partition": "-5",
    }
    plan = ScanPlan(catalogue(), 4096)
    watcher = LogWatcher(plan, lambda: Follower(plan), StateStore(tmp_path))
    totals = watcher.restore()
    assert totals.matches["emfile"] == 0 and totals.matches["enfile"] == MAX_COUNTER
    assert min([*totals.matches.values(), totals.lines, totals.losses]) >= 0


@pytest.mark.parametrize("record", [
    '{"dev": 1, "ino": 2, "fp_len": 8, "fp": "a", "offset": 1' + "0" * 400 + ', "path": "/l",'
    ' "size": 1}',
    '{"dev": 1, "ino": 2, "fp_len": 8, "fp": "a", "offset": -1, "path": "/l", "size": 1}',
])
def test_positions_out_of_range_make_the_file_unusable(tmp_path: Path, record: str) -> None:
    """A position no file can have is refused (StateError naming the key), never used."""
    (tmp_path / "logs-state.json").write_text(
        '{"version": 1, "follower": {"files": [' + record + ']}}')
    with pytest.raises(StateError, match=r"follower\.files\.0\.offset"):
        StateStore(tmp_path).load()


def test_a_fifo_as_state_file_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO where the state file should be: StateError at once, no hang."""
    os.mkfifo(tmp_path / "logs-state.json")
    with pytest.raises(StateError, match="not a regular file"):
        StateStore(tmp_path).load()
