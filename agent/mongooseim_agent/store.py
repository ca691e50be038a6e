"""Latest snapshot per collector: written by runners, read by /metrics, /, and /node/ready."""

from __future__ import annotations

from collections.abc import Iterator

from mongooseim_agent.snapshot import Check, Snapshot


def _same_content(a: Snapshot, b: Snapshot) -> bool:
    return a.error == b.error and a.samples == b.samples and a.checks == b.checks


class Store:
    def __init__(self) -> None:
        self._latest: dict[str, Snapshot] = {}
        # Collector -> wall-clock start and timeout of its run in progress (cleared by put).
        self._running: dict[str, tuple[float, float | None]] = {}
        # Bumped when what is rendered changes, so renderings can be cached until it moves.
        self.version = 0

    def put(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` as the collector's latest; the version moves only when its samples,
        checks or error differ from the previous one (a run's duration and time alone do not:
        the log collector stores four unchanged snapshots a second)."""
        previous = self._latest.get(snapshot.collector)
        self._latest[snapshot.collector] = snapshot
        self._running.pop(snapshot.collector, None)
        if previous is None or not _same_content(previous, snapshot):
            self.version += 1

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
