"""Node discovery's one home: refreshed first, then on its own schedule; collectors read it.

Before, discovery was a side effect of whichever collector ran first; now the daemon and
`check` both call `refresh()` before any collector runs, and the daemon keeps `run()` going
beside the collectors. Collectors only read `current` / `discovery`, never refresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from mongooseim_agent.mongooseim.discovery import Discovery, NodeTracker
from mongooseim_agent.mongooseim.node import NodeProcess

NOT_YET = Discovery(None, "node discovery has not run yet")


class NodeWatch:
    """The watched node as last found. `refresh` is single-flight; `run` repeats it."""

    def __init__(
        self,
        tracker: NodeTracker,
        interval: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = interval
        self._tracker = tracker
        self._monotonic = monotonic
        self._sleep = sleep
        self._discovery = NOT_YET
        self._lock = asyncio.Lock()
        self._failing = False
        self._log = structlog.get_logger("nodewatch")

    @property
    def discovery(self) -> Discovery:
        return self._discovery

    @property
    def current(self) -> NodeProcess | None:
        return self._discovery.node

    async def refresh(self) -> Discovery:
        """Re-validate the known process, or look for the node (blocking /proc IO in a thread)."""
        async with self._lock:
            try:
                found = await asyncio.to_thread(self._tracker.refresh)
            except Exception as exc:  # noqa: BLE001 - a discovery bug reads as "not found"
                found = Discovery(None, f"node discovery failed: {type(exc).__name__}: {exc}")
                if not self._failing:
                    self._log.warning("node discovery failed", error=found.problem)
                self._failing = True
            else:
                self._failing = False
            if found.node != self._discovery.node:
                self._log.info(
                    "node found" if found.node is not None else "node lost",
                    node=found.node.name if found.node is not None else None,
                    pid=found.node.pid if found.node is not None else None,
                    problem=found.problem,
                )
            self._discovery = found
            return found

    async def run(self, skip_first: bool = False) -> None:
        """Refresh every `interval` on a fixed schedule (missed slots skipped, not bunched)."""
        next_run = self._monotonic()
        while True:
            if skip_first:
                skip_first = False
            else:
                await self.refresh()
            next_run += self.interval
            delay = next_run - self._monotonic()
            if delay < 0:
                next_run = self._monotonic() + self.interval
                delay = self.interval
            await self._sleep(delay)
