"""The collector runner: timeouts, failures as data, transition-only logging, cancellation."""

import asyncio

import pytest
from structlog.testing import capture_logs

from mongooseim_agent.metrics import MetricSpec
from mongooseim_agent.runner import CollectorRunner
from mongooseim_agent.snapshot import Sample, Snapshot
from mongooseim_agent.store import Store


class Scripted:
    """A collector whose runs follow a script of outcomes."""

    name = "scripted"
    interval = 0.01
    timeout = 0.05
    metrics: tuple[MetricSpec, ...] = ()

    def __init__(self, outcomes: list[str]) -> None:
        self.outcomes = outcomes
        self.calls = 0

    async def collect(self) -> Snapshot:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if outcome == "fail":
            raise RuntimeError("boom")
        if outcome == "hang":
            await asyncio.sleep(10)
        return Snapshot(self.name, (Sample("x", 1.0),))


async def test_failure_and_recovery_logged_once_each() -> None:
    """Three failures log one warning; the recovery logs one info."""
    store = Store()
    runner = CollectorRunner(Scripted(["fail", "fail", "fail", "ok", "ok"]), store)
    with capture_logs() as logs:
        for _ in range(5):
            await runner.run_once()
    events = [(e["event"], e["log_level"]) for e in logs]
    assert events == [("collector failed", "warning"), ("collector recovered", "info")]
    assert logs[0]["error"] == "RuntimeError: boom"


async def test_timeout_is_a_failed_run_without_stale_samples() -> None:
    """A hanging collector is cut at its timeout; the stored snapshot has no samples."""
    store = Store()
    snap = await CollectorRunner(Scripted(["hang"]), store).run_once()
    assert snap.error == "timed out after 0.05s"
    assert snap.samples == ()
    assert 0.05 <= snap.duration_seconds < 1
    assert store.get("scripted") is snap


async def test_success_records_duration_and_timestamp() -> None:
    """A good run is stored with its duration and wall-clock time."""
    store = Store()
    runner = CollectorRunner(Scripted(["ok"]), store, monotonic=iter([1.0, 1.25]).__next__,
                             wall=lambda: 1234.0)
    snap = await runner.run_once()
    assert snap.ok and snap.duration_seconds == 0.25 and snap.timestamp == 1234.0


async def test_cancellation_propagates() -> None:
    """Stopping the daemon cancels a run in progress instead of it being swallowed."""
    collector = Scripted(["hang"])
    collector.timeout = 30
    task = asyncio.create_task(CollectorRunner(collector, Store()).run_forever())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_forever_keeps_the_interval() -> None:
    """Runs repeat on the interval while failing ones do not stop the loop."""
    collector = Scripted(["fail", "ok"])
    task = asyncio.create_task(CollectorRunner(collector, Store()).run_forever())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 5 <= collector.calls <= 25
