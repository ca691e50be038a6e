"""The journal source against a real child process: a stand-in for journalctl (journald does
not run on the test machines), so the argv, the cursor persisted with the counters and the
resume after a restart are exercised for real; journalctl's own output format is covered by
the parser's unit tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mongooseim_agent.collectors.logs import LogsCollector
from mongooseim_agent.config import LogsSection
from mongooseim_agent.snapshot import Snapshot, Status

pytestmark = pytest.mark.integration

FAKE = Path(__file__).resolve().parents[1] / "support" / "fake_journalctl.py"


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.n = 0
        path.write_text("")

    def add(self, message: object) -> str:
        self.n += 1
        cursor = f"s=abc;i={self.n:x}"
        with self.path.open("a") as f:
            f.write(json.dumps({"__CURSOR": cursor, "MESSAGE": message,
                                "_SYSTEMD_UNIT": "mongooseim.service"}) + "\n")
        return cursor


@contextlib.asynccontextmanager
async def collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    close: bool = True) -> AsyncIterator[LogsCollector]:
    monkeypatch.setenv("FAKE_JOURNAL", str(tmp_path / "journal.jsonl"))
    monkeypatch.setenv("FAKE_JOURNAL_ARGV", str(tmp_path / "argv.jsonl"))
    monkeypatch.setenv("FAKE_JOURNAL_FOLLOWING", str(tmp_path / "following"))
    c = LogsCollector(LogsSection(journal_unit="mongooseim.service", poll_interval=0.02),
                      tmp_path / "state", journal_command=(sys.executable, str(FAKE)))
    task = asyncio.create_task(c.run())
    try:
        yield c
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if close:
            await c.close()
        else:
            # As after a SIGKILL: only the child is stopped, nothing is flushed.
            assert c._journal is not None
            await c._journal.stop()


async def until(c: LogsCollector, metric: str, value: float,
                pattern: str | None = None) -> Snapshot:
    for _ in range(300):
        snap = await c.collect()
        for s in snap.samples:
            if s.metric == metric and s.labels.get("pattern") == pattern and s.value == value:
                return snap
        await asyncio.sleep(0.01)
    raise AssertionError(f"{metric}{{{pattern}}} never reached {value}: {snap.samples}")


async def following(tmp_path: Path, runs: int, deadline: float = 10.0) -> None:
    """Until the `runs`-th journalctl run has output its backlog and follows new entries."""
    marks = tmp_path / "following"
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        if marks.exists() and len(marks.read_text().splitlines()) >= runs:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"journalctl run {runs} never started following")


def argvs(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "argv.jsonl").read_text().splitlines()]


async def test_journal_counts_and_resumes_after_the_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First start from the end; restarts (clean and killed) resume after the saved cursor,
    so nothing is skipped or counted twice and the counters continue."""
    journal = Journal(tmp_path / "journal.jsonl")
    journal.add("reason=emfile before the agent started")
    async with collector(tmp_path, monkeypatch) as c:
        await until(c, "mongooseim_log_lines_total", 0)
        await following(tmp_path, 1)
        journal.add("Ranch acceptor reducing accept rate: out of file descriptors")
        last = journal.add([0xFF, 0x20, 0x65, 0x6E, 0x66, 0x69, 0x6C, 0x65])  # \xff enfile
        snap = await until(c, "mongooseim_log_lines_total", 2)
        check = next(ch for ch in snap.checks if ch.name == "log_watch")
        assert check.status is Status.OK and "journal of mongooseim.service" in check.summary
    journal.add("mnesia_event got {inconsistent_database, running_partitioned_network, b}")
    async with collector(tmp_path, monkeypatch, close=False) as c:
        await until(c, "mongooseim_log_matches_total", 1, "partition")
    journal.add("node 'mim@b' down: net_tick_timeout")
    async with collector(tmp_path, monkeypatch) as c:
        snap = await until(c, "mongooseim_log_lines_total", 4)
    counts = {s.labels["pattern"]: s.value for s in snap.samples
              if s.metric == "mongooseim_log_matches_total"}
    assert (counts["emfile"], counts["enfile"], counts["partition"], counts["nodedown"]) == (
        1, 1, 1, 1)
    calls = argvs(tmp_path)
    assert calls[0][-1] == "--lines=0"
    assert f"--after-cursor={last}" in calls[1]
    assert "--unit=mongooseim.service" in calls[0]


async def test_vacuumed_cursor_is_a_loss_then_follows_from_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saved cursor the journal no longer has: counted as a loss, not re-read from zero."""
    journal = Journal(tmp_path / "journal.jsonl")
    async with collector(tmp_path, monkeypatch) as c:
        await following(tmp_path, 1)
        journal.add("reason=emfile")
        await until(c, "mongooseim_log_lines_total", 1)
    journal.path.write_text("")  # vacuumed
    journal.add("reason=emfile, older than anything the agent saw")
    async with collector(tmp_path, monkeypatch) as c:
        await until(c, "mongooseim_log_losses_total", 1)
        # The run refused for its cursor never followed; the next one, from the end, does.
        await following(tmp_path, 2)
        journal.add("reason=emfile")
        snap = await until(c, "mongooseim_log_lines_total", 2)
    counts = {s.labels.get("pattern"): s.value for s in snap.samples
              if s.metric == "mongooseim_log_matches_total"}
    assert counts["emfile"] == 2


async def test_missing_journalctl_is_reported(tmp_path: Path) -> None:
    """No journalctl binary: a read error and a warning, and the agent keeps running."""
    c = LogsCollector(LogsSection(journal_unit="mongooseim.service", poll_interval=0.02),
                      tmp_path / "state", journal_command=(str(tmp_path / "no-journalctl"),))
    task = asyncio.create_task(c.run())
    try:
        snap = await until(c, "mongooseim_log_read_errors_total", 1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await c.close()
    check = next(ch for ch in snap.checks if ch.name == "log_watch")
    assert check.status is Status.WARNING
    assert "journal of mongooseim.service not being read" in check.summary
