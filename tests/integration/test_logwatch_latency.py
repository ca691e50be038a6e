"""A matching line reaches /metrics within 1 s of being written, at default settings: the
collector's follow loop, the runner's collect interval and the exposition, all real."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mongooseim_agent.collectors.logs import METRICS, LogsCollector
from mongooseim_agent.config import LogsSection
from mongooseim_agent.exposition import StoreCollector
from mongooseim_agent.metrics import Contract
from mongooseim_agent.runner import CollectorRunner
from mongooseim_agent.store import Store
from tests.support.logfiles import LogBook

pytestmark = pytest.mark.integration


async def test_match_visible_in_metrics_within_one_second(tmp_path: Path) -> None:
    """Five emfile lines written one at a time: each shows in a scrape in under 1 s."""
    (tmp_path / "log").mkdir()
    log = tmp_path / "log" / "mongooseim.log"
    book = LogBook()
    book.write(log, ["info"] * 100)
    collector = LogsCollector(LogsSection(paths=(str(tmp_path / "log" / "*.log"),)),
                              tmp_path / "state")
    store = Store()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(Contract([METRICS]),
                                      lambda: [s for snap in store for s in snap.samples]))
    tasks = [asyncio.create_task(collector.run()),
             asyncio.create_task(CollectorRunner(collector, store).run_forever())]
    latencies = []
    try:
        for _ in range(500):
            if store.get("logs") is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        for n in range(1, 6):
            book.write(log, ["ranch"])
            written = time.monotonic()
            wanted = f'mongooseim_log_matches_total{{pattern="emfile"}} {float(n)}'
            while wanted not in generate_latest(registry).decode():
                assert time.monotonic() - written < 3, "not visible after 3 s"
                await asyncio.sleep(0.01)
            latencies.append(time.monotonic() - written)
            await asyncio.sleep(0.37 * n % 0.5)  # land at different points of the cycles
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await collector.close()
    assert max(latencies) < 1.0, latencies
