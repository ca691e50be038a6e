"""What one collector run produced: samples for /metrics, checks for humans and load balancers."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Status(enum.IntEnum):
    """Nagios plugin states; the worst one decides `check`'s exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a declared metric. `metric` must be a name from the contract."""

    metric: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Perf:
    """One perfdata value with what a monitoring plugin reports beside it.

    `uom` is a Monitoring Plugins unit ("" a plain number, "s", "%", "B", "c" a counter).
    `warn` and `crit` are the values above which the check itself alerts, so Icinga graphs
    the thresholds the check really uses; `min` and `max` bound the value where known.
    """

    value: float
    uom: str = ""
    warn: float | None = None
    crit: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """A verdict a human can act on: shown on `/`, by `check`, and used by /node/ready."""

    name: str
    status: Status
    summary: str
    hint: str = ""
    # A plain number is a Perf with no unit, thresholds or bounds.
    perfdata: Mapping[str, float | Perf] = field(default_factory=dict)
    # True when this check failing should take the node out of load balancing.
    affects_readiness: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Immutable result of one collection. `error` set means the collector itself broke."""

    collector: str
    samples: tuple[Sample, ...] = ()
    checks: tuple[Check, ...] = ()
    error: str | None = None
    duration_seconds: float = 0.0
    timestamp: float = 0.0
    # Readings the collector refused as out of range (counted in
    # mongooseim_agent_samples_dropped_total with those the store refuses).
    dropped: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None
