"""The load-balancer verdict: should this node get new traffic? Read from the store only.

Every condition is named and carries what was observed, so a 503 says why. A condition
comes from a readiness-affecting check (node_process, node_fds, listener_*, vm_port_table,
node_state, node_responsive, cluster_*), from the drain, or from the agent itself. A verdict
does not outlive its collector: one older than a few of the collector's intervals, one from a
collector that failed or is stuck past its timeout, counts as failing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from mongooseim_agent.config import LoadBalancerSection
from mongooseim_agent.drain import DrainState
from mongooseim_agent.snapshot import Check, Snapshot, Status
from mongooseim_agent.store import Store


@dataclass(frozen=True, slots=True)
class Schedule:
    """How often a collector runs and how long one run may take, in seconds."""

    interval: float
    timeout: float


@dataclass(frozen=True, slots=True)
class Condition:
    """One thing the verdict depends on. `value` is what was observed."""

    name: str
    ok: bool
    value: str
    # Why it fails: "critical", "warning", "stale", "collector failed", "stuck", "drained",
    # "missing"; "" while it holds.
    reason: str = ""
    # The collector it came from ("" for the drain and the agent itself).
    source: str = ""
    age_seconds: float | None = None
    # Shown, but never makes the node not ready ([load_balancer] exempt).
    exempt: bool = False

    @property
    def blocks(self) -> bool:
        return not self.ok and not self.exempt

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason and self.reason not in self.value else ""
        return f"{self.name}: {self.value}{why}"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ok": self.ok,
            "value": self.value,
            "reason": self.reason,
            "source": self.source,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "exempt": self.exempt,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    ready: bool
    conditions: tuple[Condition, ...] = ()
    drained: bool = False
    # Why, since when and by whom, while drained (drain.py owns it).
    drain: DrainState | None = None

    @property
    def reasons(self) -> tuple[str, ...]:
        """One line per condition that keeps the node out, drain first."""
        return tuple(c.describe() for c in self.conditions if c.blocks)

    @property
    def blocking(self) -> tuple[Condition, ...]:
        return tuple(c for c in self.conditions if c.blocks)

    def ignoring(self, names: Iterable[str]) -> Verdict:
        """The verdict with `names` treated as exempt: `/node/ready?ignore=drained` lets
        HAProxy's httpchk pass while its agent-check carries the drain (DRAIN, not DOWN)."""
        ignored = frozenset(names)
        if not ignored:
            return self
        conditions = tuple(
            dataclasses.replace(c, exempt=True) if c.name in ignored else c
            for c in self.conditions
        )
        return dataclasses.replace(
            self, ready=not any(c.blocks for c in conditions), conditions=conditions
        )

    def to_json(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "drained": self.drained,
            "drain": None if self.drain is None else self.drain.to_dict(),
            "reasons": list(self.reasons),
            "conditions": [c.to_json() for c in self.conditions],
        }


STARTING = Verdict(
    False,
    (Condition("agent_started", False, "first collection not done", "starting"),),
)


class ReadinessPolicy:
    """Turns the store into a Verdict, by the rules of one [load_balancer] section.

    It remembers each collector's last readiness checks, so a collector that fails or stalls
    (and so stores no checks) keeps its conditions, failing, instead of silently dropping
    them: the verdict fails closed. Build a new policy when the collectors change (reload).
    """

    def __init__(self, settings: LoadBalancerSection) -> None:
        self._settings = settings
        self._exempt = frozenset(settings.exempt)
        self._fail_at = Status.WARNING if settings.fail_on == "warning" else Status.CRITICAL
        self._remembered: dict[str, tuple[Check, ...]] = {}

    def evaluate(
        self,
        store: Store,
        schedules: Mapping[str, Schedule],
        now: float,
        drained: str | None = None,
    ) -> Verdict:
        """`drained`: how the node was drained (reason, since, by), or None.

        `now` is wall-clock time, the clock snapshots are stamped with.
        """
        conditions: list[Condition] = []
        if drained is not None:
            conditions.append(self._condition("drained", False, drained, "drained"))
        seen: set[str] = set()
        for snap in store:
            schedule = schedules.get(snap.collector)
            for condition in self._from_snapshot(snap, schedule, store, now):
                seen.add(condition.name)
                conditions.append(condition)
        for name in self._settings.required:
            if name not in seen:
                conditions.append(
                    self._condition(name, False, "no verdict yet", "missing")
                )
        ready = not any(c.blocks for c in conditions)
        return Verdict(ready, tuple(conditions), drained is not None)

    def _from_snapshot(
        self, snap: Snapshot, schedule: Schedule | None, store: Store, now: float
    ) -> Iterator[Condition]:
        if snap.ok:
            current = tuple(c for c in snap.checks if c.affects_readiness)
            self._remembered[snap.collector] = current
            checks = current
        else:
            checks = self._remembered.get(snap.collector, ())
        age = max(0.0, now - snap.timestamp) if snap.timestamp else None
        failure = self._staleness(snap, schedule, store, now, age)
        for check in checks:
            if failure is not None:
                reason, detail = failure
                yield self._condition(
                    check.name, False, f"{detail}; last verdict: {check.summary}", reason,
                    source=snap.collector, age=age,
                )
            elif check.status is Status.UNKNOWN:
                # A check that cannot tell (no cookie, an old kernel) is shown, not obeyed:
                # otherwise an agent missing a permission would empty the whole pool.
                yield self._condition(
                    check.name, True, check.summary, "unknown", source=snap.collector, age=age
                )
            elif check.status >= self._fail_at:
                yield self._condition(
                    check.name, False, check.summary, check.status.name.lower(),
                    source=snap.collector, age=age,
                )
            else:
                yield self._condition(
                    check.name, True, check.summary, "", source=snap.collector, age=age
                )

    def _staleness(
        self,
        snap: Snapshot,
        schedule: Schedule | None,
        store: Store,
        now: float,
        age: float | None,
    ) -> tuple[str, str] | None:
        """Why this collector's verdicts cannot be trusted now, or None."""
        if schedule is not None:
            since = store.running_since(snap.collector)
            if since is not None and now - since > schedule.timeout + 1.0:
                return "stuck", (
                    f"collector {snap.collector} stuck: running for {now - since:.1f}s, "
                    f"timeout {schedule.timeout:g}s"
                )
            limit = self._settings.stale_after * schedule.interval + schedule.timeout
            if age is not None and age > limit:
                return "stale", (
                    f"stale: collector {snap.collector} last ran {age:.1f}s ago "
                    f"(limit {limit:g}s)"
                )
        if not snap.ok:
            return "collector failed", f"collector {snap.collector} failed: {snap.error}"
        return None

    def _condition(
        self,
        name: str,
        ok: bool,
        value: str,
        reason: str,
        *,
        source: str = "",
        age: float | None = None,
    ) -> Condition:
        return Condition(name, ok, value, reason, source, age, exempt=name in self._exempt)
