"""Latest snapshot per collector: written by runners, read by /metrics, /, and /node/ready."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from mongooseim_agent.snapshot import Check, Snapshot, Status


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)


class Store:
    def __init__(self) -> None:
        self._latest: dict[str, Snapshot] = {}
        # Bumped on every change, so renderings of the store can be cached until it moves.
        self.version = 0

    def put(self, snapshot: Snapshot) -> None:
        self._latest[snapshot.collector] = snapshot
        self.version += 1

    def get(self, collector: str) -> Snapshot | None:
        return self._latest.get(collector)

    def touch(self) -> None:
        """Something rendered beside the snapshots changed (drain, reload): drop cached pages."""
        self.version += 1

    def forget(self, collector: str) -> None:
        if self._latest.pop(collector, None) is not None:
            self.version += 1

    def __iter__(self) -> Iterator[Snapshot]:
        return iter(sorted(self._latest.values(), key=lambda s: s.collector))

    def __len__(self) -> int:
        return len(self._latest)

    def checks(self) -> list[Check]:
        return [check for snap in self for check in snap.checks]

    def readiness(self, drained: bool) -> Readiness:
        """Ready unless drained or a readiness-affecting check is critical."""
        reasons = ["drained (mongooseim-agent undrain restores)"] if drained else []
        reasons.extend(
            f"{check.name}: {check.summary}"
            for check in self.checks()
            if check.affects_readiness and check.status is Status.CRITICAL
        )
        return Readiness(not reasons, tuple(reasons))
