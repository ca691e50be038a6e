"""Latest snapshot per collector: written by runners, read by /metrics, /, and /node/ready."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import structlog

from mongooseim_agent.snapshot import Check, Perf, Sample, Snapshot

# Larger than any count, size, limit or timestamp the agent reports; beyond it a value is a
# bug or a hostile reply, and float() of a huge int raises instead of rendering.
MAX_MAGNITUDE = float(2**63)


def sane_number(value: object) -> bool:
    """A finite number within +-MAX_MAGNITUDE (bools and non-numbers are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and abs(number) <= MAX_MAGNITUDE


def _sane_perf(value: object) -> bool:
    if isinstance(value, Perf):
        return sane_number(value.value) and all(
            bound is None or sane_number(bound)
            for bound in (value.warn, value.crit, value.min, value.max)
        )
    return sane_number(value)


def _sanitized(snapshot: Snapshot) -> tuple[Snapshot, list[Sample]]:
    """The snapshot without samples (and perfdata entries) whose value is not a sane number."""
    bad = [s for s in snapshot.samples if not sane_number(s.value)]
    checks = snapshot.checks
    if any(not _sane_perf(v) for c in checks for v in c.perfdata.values()):
        checks = tuple(
            dataclasses.replace(c, perfdata={k: v for k, v in c.perfdata.items()
                                             if _sane_perf(v)})
            for c in checks
        )
    if not bad and checks is snapshot.checks:
        return snapshot, []
    samples = tuple(s for s in snapshot.samples if sane_number(s.value))
    return dataclasses.replace(snapshot, samples=samples, checks=checks), bad


def _same_content(a: Snapshot, b: Snapshot) -> bool:
    return a.error == b.error and a.samples == b.samples and a.checks == b.checks


class Store:
    def __init__(self) -> None:
        self._latest: dict[str, Snapshot] = {}
        # Collector -> wall-clock start and timeout of its run in progress (cleared by put).
        self._running: dict[str, tuple[float, float | None]] = {}
        # Bumped when what is rendered changes, so renderings can be cached until it moves.
        self.version = 0
        # Collector -> samples dropped for an insane value (mongooseim_agent_samples_dropped_total).
        self.dropped: dict[str, int] = {}
        self._log = structlog.get_logger("store")
        self._reported: set[tuple[str, str]] = set()

    def put(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` as the collector's latest; the version moves only when its samples,
        checks or error differ from the previous one (a run's duration and time alone do not:
        the log collector stores four unchanged snapshots a second).

        A sample whose value is not a finite number of sane size is dropped and counted; the
        rest of the snapshot is kept, so one bad reading never fails a whole scrape or check.
        """
        snapshot, bad = _sanitized(snapshot)
        if bad:
            self._count_dropped(snapshot.collector, bad)
        if snapshot.dropped:
            name = snapshot.collector
            self.dropped[name] = self.dropped.get(name, 0) + snapshot.dropped
        previous = self._latest.get(snapshot.collector)
        self._latest[snapshot.collector] = snapshot
        self._running.pop(snapshot.collector, None)
        if previous is None or not _same_content(previous, snapshot):
            self.version += 1

    def _count_dropped(self, collector: str, bad: list[Sample]) -> None:
        self.dropped[collector] = self.dropped.get(collector, 0) + len(bad)
        for sample in bad:
            if (collector, sample.metric) not in self._reported:
                self._reported.add((collector, sample.metric))
                self._log.warning("sample with an unusable value dropped", collector=collector,
                                  metric=sample.metric, value=_short(sample.value))

    def begin(self, collector: str, started: float, timeout: float | None = None) -> None:
        """A run of `collector` started at wall-clock `started`: one stuck past its timeout
        then shows in the load-balancer verdict and as a failed collector."""
        self._running[collector] = (started, timeout)

    def running_since(self, collector: str) -> float | None:
        run = self._running.get(collector)
        return None if run is None else run[0]

    def overdue(self, now: float, slack: float = 1.0) -> frozenset[str]:
        """Collectors whose run in progress is past its timeout (plus `slack` seconds): the
        runner cancels at the timeout, so one still running ignored that, or the loop stalled."""
        return frozenset(
            name for name, (started, timeout) in self._running.items()
            if timeout is not None and now - started > timeout + slack
        )

    def get(self, collector: str) -> Snapshot | None:
        return self._latest.get(collector)

    def touch(self) -> None:
        """Something rendered beside the snapshots changed (drain, reload): drop cached pages."""
        self.version += 1

    def forget(self, collector: str) -> None:
        self._running.pop(collector, None)
        if self._latest.pop(collector, None) is not None:
            self.version += 1

    def __iter__(self) -> Iterator[Snapshot]:
        return iter(sorted(self._latest.values(), key=lambda s: s.collector))

    def __len__(self) -> int:
        return len(self._latest)

    def checks(self) -> list[Check]:
        return [check for snap in self for check in snap.checks]


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, int) else f"int of {value.bit_length()} bits"
    return text[:40]
