"""The state file: atomic replacement, round trip, and refusal of what it cannot trust."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mongooseim_agent.logwatch.state import (
    Counters,
    FileRecord,
    FollowerState,
    StateError,
    StateStore,
    WatchState,
)


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
