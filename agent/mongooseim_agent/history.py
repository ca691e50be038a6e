"""The last hour of a few series, in memory, for the landing page's plots.

A person on the host at 3 a.m. sees the trend without Grafana: fd use against the soft
limit, log matches, the port table against its size. One point every `interval` seconds
from the store's current samples (memory only), kept in a ring of one hour.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mongooseim_agent.snapshot import Sample

WINDOW_SECONDS = 3600.0
INTERVAL_SECONDS = 10.0

# series name -> the metric it follows; counters with labels are summed over them.
SERIES: dict[str, str] = {
    "open_fds": "mongooseim_process_open_fds",
    "max_fds": "mongooseim_process_max_fds",
    "log_matches": "mongooseim_log_matches_total",
    "ports": "mongooseim_vm_ports",
    "port_limit": "mongooseim_vm_port_limit",
}


@dataclass(frozen=True, slots=True)
class Point:
    at: float
    values: dict[str, float]


class History:
    def __init__(self, window: float = WINDOW_SECONDS, interval: float = INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.interval = interval
        self._clock = clock
        self._points: deque[Point] = deque(maxlen=int(window / interval) + 2)

    def point(self, samples: Iterable[Sample], at: float | None = None) -> Point:
        """The followed series' values among `samples` (labelled ones summed)."""
        values: dict[str, float] = {}
        wanted = {metric: name for name, metric in SERIES.items()}
        for sample in samples:
            name = wanted.get(sample.metric)
            if name is not None:
                values[name] = values.get(name, 0.0) + sample.value
        return Point(self._clock() if at is None else at, values)

    def record(self, samples: Iterable[Sample], at: float | None = None) -> None:
        self._points.append(self.point(samples, at))

    def series(self, name: str, now: float | None = None, live: Point | None = None
               ) -> list[tuple[float, float]]:
        """(time, value) of `name` over the window, oldest first; gaps where it was absent.

        `live`: the current values, drawn as the last point so a plot is never behind the
        table beside it by up to an interval.
        """
        start = (self._clock() if now is None else now) - self.window
        points = [*self._points, live] if live is not None else list(self._points)
        return [(p.at, p.values[name]) for p in points if p.at >= start and name in p.values]

    def increments(self, name: str, now: float | None = None, live: Point | None = None
                   ) -> list[tuple[float, float]]:
        """Per-point increase of a counter series; a reset (agent restart) counts from 0."""
        points = self.series(name, now, live)
        out = []
        for (_, before), (at, after) in itertools.pairwise(points):
            out.append((at, after - before if after >= before else after))
        return out

    def __len__(self) -> int:
        return len(self._points)

    async def run(self, samples: Callable[[], Iterable[Sample]]) -> None:
        while True:
            self.record(samples())
            await asyncio.sleep(self.interval)
