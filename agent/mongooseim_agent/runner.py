"""Runs one collector on its interval with a timeout; logs a failure once and a recovery once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

import structlog

from mongooseim_agent.collectors.base import Collector
from mongooseim_agent.snapshot import Snapshot
from mongooseim_agent.store import Store


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CollectorRunner:
    def __init__(
        self,
        collector: Collector,
        store: Store,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.collector = collector
        self._store = store
        self._monotonic = monotonic
        self._wall = wall
        self._sleep = sleep
        self._failing = False
        self._log = structlog.get_logger("runner").bind(collector=collector.name)

    async def run_once(self) -> Snapshot:
        """One collection; never raises except for cancellation."""
        started = self._monotonic()
        self._store.begin(self.collector.name, self._wall(), self.collector.timeout)
        try:
            async with asyncio.timeout(self.collector.timeout):
                snapshot = await self.collector.collect()
            error = None
        except TimeoutError:
            error = f"timed out after {self.collector.timeout:g}s"
            snapshot = Snapshot(self.collector.name)
        except Exception as exc:  # noqa: BLE001 - any collector bug becomes a failed run
            error = _error_text(exc)
            snapshot = Snapshot(self.collector.name)
        duration = self._monotonic() - started
        if error is not None:
            # A failed run keeps the last good samples out: stale values would mislead.
            snapshot = dataclasses.replace(snapshot, samples=(), error=error)
        snapshot = dataclasses.replace(
            snapshot, duration_seconds=duration, timestamp=self._wall()
        )
        self._store.put(snapshot)
        self._log_transition(snapshot)
        return snapshot

    def _log_transition(self, snapshot: Snapshot) -> None:
        if snapshot.error is not None and not self._failing:
            self._failing = True
            self._log.warning("collector failed", error=snapshot.error)
        elif snapshot.error is None and self._failing:
            self._failing = False
            self._log.info("collector recovered")

    async def run_forever(self, skip_first: bool = False) -> None:
        """Collect every `interval` seconds, on a fixed schedule that does not drift.

        `skip_first`: the caller has just run one collection itself.
        """
        interval = self.collector.interval
        next_run = self._monotonic()
        while True:
            if skip_first:
                skip_first = False
            else:
                await self.run_once()
            next_run += interval
            delay = next_run - self._monotonic()
            if delay < 0:
                # Overran: skip the missed slots instead of running back to back.
                next_run = self._monotonic() + interval
                delay = interval
            await self._sleep(delay)
