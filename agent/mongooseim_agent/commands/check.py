"""`mongooseim-agent check`: every check once, as a Nagios/Icinga plugin or as JSON.

The first line is the plugin's status line with perfdata in the Monitoring Plugins format;
the exit code is the worst state of the checks reported (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN). `--only NAME` (repeatable) reports and judges those checks alone, so Icinga can
map one service per check. The log checks come from the counts the running agent saves
under state_dir (collectors/saved_logs.py); the drain state from its marker there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence

from mongooseim_agent import drain, perfdata, presence, runbooks
from mongooseim_agent.collectors.base import BackgroundCollector, Collector
from mongooseim_agent.collectors.registry import default_assembly
from mongooseim_agent.collectors.saved_logs import SavedLogsCollector
from mongooseim_agent.commands.base import Command, emit
from mongooseim_agent.config import Config, ConfigError, load_config
from mongooseim_agent.mongooseim.nodewatch import NodeWatch
from mongooseim_agent.runner import CollectorRunner
from mongooseim_agent.snapshot import Check, Snapshot, Status
from mongooseim_agent.store import Store

UNDRAIN_HINT = "mongooseim-agent undrain when the maintenance is over"


def overall(checks: Iterable[Check], snapshots: Iterable[Snapshot]) -> Status:
    """Nagios precedence: any CRITICAL, else any WARNING, else any UNKNOWN, else OK."""
    statuses = {check.status for check in checks}
    if any(not snap.ok for snap in snapshots):
        statuses.add(Status.UNKNOWN)
    for status in (Status.CRITICAL, Status.WARNING, Status.UNKNOWN):
        if status in statuses:
            return status
    return Status.OK


def render_perfdata(checks: Iterable[Check]) -> str:
    return perfdata.render_all(
        (label, value) for check in checks for label, value in check.perfdata.items()
    )


def headline(status: Status, checks: list[Check], snapshots: list[Snapshot]) -> str:
    bad = [c for c in checks if c.status is status and status is not Status.OK]
    broken = [s for s in snapshots if not s.ok]
    if bad:
        # Checks failing for one reason (every log check while no agent runs) share a line.
        grouped: dict[str, list[str]] = {}
        for c in bad:
            grouped.setdefault(c.summary, []).append(c.name)
        summary = "; ".join(f"{', '.join(names)}: {text}" for text, names in grouped.items())
    elif broken:
        summary = "; ".join(f"collector {s.collector} failed: {s.error}" for s in broken)
    else:
        summary = f"{len(checks)} checks OK"
    # The status line is one line: a newline in a summary would start the long output.
    summary = " ".join(summary.split()).replace("|", "/")
    perf = render_perfdata(checks)
    return f"MONGOOSEIM {status.name} - {summary}" + (f" | {perf}" if perf else "")


def render_table(checks: list[Check], snapshots: list[Snapshot]) -> str:
    rows = [("CHECK", "STATE", "VALUE")]
    rows.extend((c.name, c.status.name, c.summary) for c in checks)
    rows.extend(
        (f"collector:{s.collector}", "UNKNOWN", s.error or "") for s in snapshots if not s.ok
    )
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows)


def _perf_detail(check: Check) -> dict[str, dict[str, object]]:
    detail: dict[str, dict[str, object]] = {}
    for label, value in check.perfdata.items():
        perf = perfdata.as_perf(value)
        detail[label] = {"value": perf.value, "uom": perf.uom, "warn": perf.warn,
                         "crit": perf.crit, "min": perf.min, "max": perf.max}
    return detail


def to_json(status: Status, checks: list[Check], snapshots: list[Snapshot]) -> str:
    return json.dumps(
        {
            "status": status.name,
            "exit_code": int(status),
            "checks": [
                {
                    "name": c.name,
                    "status": c.status.name,
                    "summary": c.summary,
                    "hint": c.hint,
                    "perfdata": {k: perfdata.as_perf(v).value for k, v in c.perfdata.items()},
                    "perfdata_detail": _perf_detail(c),
                    "affects_readiness": c.affects_readiness,
                    "runbook": runbooks.reference(c.name),
                }
                for c in checks
            ],
            "collectors": [
                {"name": s.collector, "ok": s.ok, "error": s.error,
                 "duration_seconds": s.duration_seconds}
                for s in snapshots
            ],
        },
        indent=2,
    )


async def collect_once(collectors: list[Collector], watch: NodeWatch | None = None) -> Store:
    """Discovery first (as the daemon does), then every periodic collector at once."""
    store = Store()
    if watch is not None:
        await watch.refresh()
    periodic = [c for c in collectors if not isinstance(c, BackgroundCollector)]
    await asyncio.gather(*(CollectorRunner(c, store).run_once() for c in periodic))
    return store


def drain_check(config: Config, now: float) -> Check:
    """The drain marker, and whether the running agent applies it."""
    state_dir = config.agent.state_dir
    try:
        state = drain.read(state_dir)
    except drain.DrainError as exc:
        return Check("drain", Status.UNKNOWN, str(exc))
    if state is None:
        return Check("drain", Status.OK, "not drained: /node/ready follows the checks")
    summary = state.describe(now)
    try:
        agent = presence.read(state_dir)
    except presence.PresenceError:
        agent = None
    if not presence.running(agent, now):
        summary += "; no running agent applies it"
    return Check("drain", Status.WARNING, summary, hint=UNDRAIN_HINT)


async def _check(config: Config) -> Store:
    assembly = default_assembly(config)
    saved_logs = SavedLogsCollector(config.logs, config.agent.state_dir)
    try:
        return await collect_once([*assembly.collectors, saved_logs], assembly.watch)
    finally:
        await assembly.close()


def select(checks: list[Check], only: Sequence[str]) -> tuple[list[Check], list[str]]:
    """The checks named in `only` (all when empty), and the names that match none."""
    if not only:
        return checks, []
    names = {c.name for c in checks}
    unknown = [name for name in dict.fromkeys(only) if name not in names]
    wanted = set(only)
    return [c for c in checks if c.name in wanted], unknown


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME",
        help="report and judge only this check (repeatable), e.g. --only node_fds: "
        "one Icinga service per check",
    )


def run_check(
    args: argparse.Namespace,
    collect: Callable[[Config], Store] = lambda config: asyncio.run(_check(config)),
    clock: Callable[[], float] = time.time,
) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        emit(f"MONGOOSEIM UNKNOWN - config error: {exc}\n")
        return int(Status.UNKNOWN)
    store = collect(config)
    snapshots = list(store)
    every = [*store.checks(), drain_check(config, clock())]
    checks, unknown = select(every, args.only)
    if unknown:
        valid = ", ".join(sorted({c.name for c in every}))
        broken = "".join(f"; collector {s.collector} failed: {s.error}"
                         for s in snapshots if not s.ok)
        emit(f"MONGOOSEIM UNKNOWN - no check named {', '.join(unknown)}{broken}; valid "
             f"names: {valid}\n")
        return int(Status.UNKNOWN)
    if args.only:
        # A broken collector only matters to the checks it should have produced.
        snapshots = [s for s in snapshots if s.ok]
    status = overall(checks, snapshots)
    if args.json:
        emit(to_json(status, checks, snapshots) + "\n")
    else:
        emit(headline(status, checks, snapshots) + "\n" + render_table(checks, snapshots) + "\n")
    return int(status)


COMMAND = Command(
    name="check",
    help="run every check once; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios)",
    configure=_configure,
    run=run_check,
)
