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


class StopLoop(Exception):
    """Ends a run_forever loop after a set number of sleeps."""


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps or works."""

    def __init__(self, sleeps: int) -> None:
        self.now = 100.0
        self.delays: list[float] = []
        self._left = sleeps

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.delays.append(round(delay, 9))
        self.now += delay
        self._left -= 1
        if self._left == 0:
            raise StopLoop


class Timed(Scripted):
    """Each run takes a scripted amount of (fake) time."""

    def __init__(self, outcomes: list[str], clock: FakeTime, durations: list[float]) -> None:
        super().__init__(outcomes)
        self.clock = clock
        self.durations = durations
        self.started: list[float] = []
        self.interval = 1.0
        self.timeout = 10.0

    async def collect(self) -> Snapshot:
        self.started.append(self.clock.now)
        self.clock.now += self.durations[min(self.calls, len(self.durations) - 1)]
        return await super().collect()


async def test_run_forever_keeps_the_interval() -> None:
    """Runs start exactly one interval apart, failing ones included, whatever each took."""
    clock = FakeTime(sleeps=5)
    collector = Timed(["fail", "ok"], clock, durations=[0.25, 0.5, 0.0])
    runner = CollectorRunner(collector, Store(), monotonic=clock.monotonic, sleep=clock.sleep)
    with pytest.raises(StopLoop):
        await runner.run_forever()
    assert collector.started == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert clock.delays == [0.75, 0.5, 1.0, 1.0, 1.0]


async def test_run_forever_skips_missed_slots_after_an_overrun() -> None:
    """A run longer than the interval is followed by one full interval, not a burst."""
    clock = FakeTime(sleeps=3)
    collector = Timed(["ok"], clock, durations=[2.5, 0.0])
    runner = CollectorRunner(collector, Store(), monotonic=clock.monotonic, sleep=clock.sleep)
    with pytest.raises(StopLoop):
        await runner.run_forever()
    assert collector.started == [100.0, 103.5, 104.5]
    assert clock.delays == [1.0, 1.0, 1.0]
