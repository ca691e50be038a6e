"""The logs collector: samples for every declared metric and pattern, checks from a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mongooseim_agent.collectors.base import BackgroundCollector
from mongooseim_agent.collectors.logs import METRICS, LogsCollector
from mongooseim_agent.config import LogPatternSection, LogsSection
from mongooseim_agent.snapshot import Snapshot, Status
from tests.support.logfiles import FakeClock, LogBook


@contextlib.asynccontextmanager
async def running(collector: LogsCollector) -> AsyncIterator[LogsCollector]:
    task = asyncio.create_task(collector.run())
    try:
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await collector.close()


async def snapshot_after(collector: LogsCollector, predicate: object = None) -> Snapshot:
    for _ in range(200):
        await asyncio.sleep(0.01)
        snap = await collector.collect()
        values = {(s.metric, s.labels.get("pattern")): s.value for s in snap.samples}
        if predicate is None or predicate(values):  # type: ignore[operator]
            return snap
    raise AssertionError("condition not reached")


def _settings(tmp_path: Path, **extra: object) -> LogsSection:
    return LogsSection(paths=(str(tmp_path / "log" / "*.log*"),), start_at="beginning",
                       poll_interval=0.05, **extra)  # type: ignore[arg-type]


def test_follows_the_collector_protocol(tmp_path: Path) -> None:
    """It is a BackgroundCollector, with its own metric declarations."""
    collector = LogsCollector(LogsSection(), tmp_path)
    assert isinstance(collector, BackgroundCollector)
    assert collector.name == "logs"
    assert collector.metrics is METRICS
    assert collector.interval <= 0.5


async def test_every_declared_metric_and_pattern_is_emitted(tmp_path: Path) -> None:
    """All declared metrics appear, every pattern with a 0 until it matches."""
    (tmp_path / "log").mkdir()
    book = LogBook()
    book.write(tmp_path / "log" / "m.log", ["emfile", "info"])
    settings = _settings(tmp_path, patterns={"slow": LogPatternSection(literal="slow query")})
    async with running(LogsCollector(settings, tmp_path / "state")) as c:
        snap = await snapshot_after(c, lambda v: v[("mongooseim_log_lines_total", None)] == 2)
    names = {s.metric for s in snap.samples}
    assert names == {spec.name for spec in METRICS}
    matches = {s.labels["pattern"]: s.value for s in snap.samples
               if s.metric == "mongooseim_log_matches_total"}
    assert matches == {"emfile": 1, "enfile": 0, "system_limit": 0, "partition": 0,
                       "nodedown": 0, "cookie_rejected": 0, "eaddrinuse": 0, "slow": 0}


async def test_recent_fault_is_critical_then_ages_out(tmp_path: Path) -> None:
    """emfile seen within match_window: CRITICAL with advice; after it: OK, total kept."""
    (tmp_path / "log").mkdir()
    clock = FakeClock()
    book = LogBook()
    book.write(tmp_path / "log" / "m.log", ["ranch", "cookie"])
    settings = _settings(tmp_path, match_window=300)
    async with running(LogsCollector(settings, tmp_path / "state", clock=clock)) as c:
        snap = await snapshot_after(
            c, lambda v: v[("mongooseim_log_matches_total", "emfile")] == 1)
        checks = {check.name: check for check in snap.checks}
        assert checks["log_emfile"].status is Status.CRITICAL
        assert "LimitNOFILE" in checks["log_emfile"].hint
        assert checks["log_cookie_rejected"].status is Status.WARNING
        assert checks["log_partition"].status is Status.OK
        assert checks["log_watch"].status is Status.OK
        clock.advance(301)
        snap = await c.collect()
    checks = {check.name: check for check in snap.checks}
    assert checks["log_emfile"].status is Status.OK
    assert "(1 in total)" in checks["log_emfile"].summary


async def test_collect_waits_for_saved_counters(tmp_path: Path) -> None:
    """Before the saved counters are loaded collect() does not answer zeros."""
    collector = LogsCollector(_settings(tmp_path), tmp_path / "state")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(collector.collect(), 0.05)


async def test_nothing_to_watch_is_a_warning(tmp_path: Path) -> None:
    """No paths configured and no release root discovered: said so, not silently OK."""
    collector = LogsCollector(LogsSection(poll_interval=0.05), tmp_path / "state",
                              release_root=lambda: None)
    async with running(collector) as c:
        snap = await snapshot_after(c)
    check = next(ch for ch in snap.checks if ch.name == "log_watch")
    assert check.status is Status.WARNING
    assert "release root is not known" in check.summary


async def test_default_globs_follow_the_discovered_release_root(tmp_path: Path) -> None:
    """mongooseim.log.N and mongooseim.json.N under REL_ROOT/log, index files skipped; the
    history already there when the root is discovered is not counted (start_at=end)."""
    root = tmp_path / "rel"
    (root / "log").mkdir(parents=True)
    book = LogBook()
    book.write(root / "log" / "mongooseim.log.1", ["emfile"] * 3, count=False)
    (root / "log" / "mongooseim.log.idx").write_bytes(b"emfile\n")
    (root / "log" / "other.log").write_bytes(b"emfile\n")
    settings = LogsSection(poll_interval=0.05)
    found: list[Path | None] = [None]
    collector = LogsCollector(settings, tmp_path / "state", release_root=lambda: found[0],
                              )
    async with running(collector) as c:
        await snapshot_after(c)
        found[0] = root  # discovered later, as when the node starts after the agent
        await snapshot_after(c, lambda v: v[("mongooseim_log_files_watched", None)] == 1)
        book.write(root / "log" / "mongooseim.log.1", ["emfile"])
        book.write(root / "log" / "mongooseim.json.1", ["partition"])
        snap = await snapshot_after(
            c, lambda v: v[("mongooseim_log_matches_total", "partition")] == 1)
    values = {(s.metric, s.labels.get("pattern")): s.value for s in snap.samples}
    assert values[("mongooseim_log_matches_total", "emfile")] == 1
    assert values[("mongooseim_log_files_watched", None)] == 2


async def test_unchanged_totals_reuse_the_snapshot_for_a_second(tmp_path: Path) -> None:
    """Idle collects return the same snapshot; new lines, or a second passing, rebuild it."""
    (tmp_path / "log").mkdir()
    clock = FakeClock()
    book = LogBook()
    log = tmp_path / "log" / "m.log"
    book.write(log, ["info"])
    async with running(LogsCollector(_settings(tmp_path), tmp_path / "state", clock=clock)) as c:
        first = await snapshot_after(c, lambda v: v[("mongooseim_log_lines_total", None)] == 1)
        await asyncio.sleep(0.2)
        idle = await c.collect()
        assert await c.collect() is idle
        clock.advance(1.5)
        aged = await c.collect()
        assert aged is not idle
        assert aged.samples == idle.samples
        book.write(log, ["emfile"])
        grown = await snapshot_after(
            c, lambda v: v[("mongooseim_log_matches_total", "emfile")] == 1)
    assert grown is not aged
    assert first.samples != grown.samples
