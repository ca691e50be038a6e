"""The collector contract shared by every module in this package."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mongooseim_agent.metrics import MetricSpec
from mongooseim_agent.snapshot import Snapshot


@runtime_checkable
class Collector(Protocol):
    """A periodic collector: `collect` gathers one Snapshot; the runner times it and stores it.

    `interval` and `timeout` are seconds. `collect` must not block the event loop: blocking
    IO goes through `asyncio.to_thread`. Raising means "collector broken"; a watched thing
    being down is data (a 0 sample and a failing Check), not an exception.
    """

    name: str
    interval: float
    timeout: float
    metrics: tuple[MetricSpec, ...]

    async def collect(self) -> Snapshot: ...


@runtime_checkable
class BackgroundCollector(Collector, Protocol):
    """A collector with a long-running part (e.g. the log follower).

    The daemon runs `run()` as a task for the collector's lifetime and cancels it on stop or
    reload; `collect()` then only reads in-memory state and returns quickly.
    """

    async def run(self) -> None: ...

    async def close(self) -> None: ...
