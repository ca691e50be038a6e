"""`mongooseim-agent check`: every collector once, a table or JSON, Nagios exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Iterable

from mongooseim_agent.collectors.base import BackgroundCollector, Collector
from mongooseim_agent.collectors.registry import default_assembly
from mongooseim_agent.commands.base import Command
from mongooseim_agent.config import Config, ConfigError, load_config
from mongooseim_agent.mongooseim.nodewatch import NodeWatch
from mongooseim_agent.runner import CollectorRunner
from mongooseim_agent.snapshot import Check, Snapshot, Status
from mongooseim_agent.store import Store

_PERF_LABEL = re.compile(r"[^A-Za-z0-9_.-]")


def overall(checks: Iterable[Check], snapshots: Iterable[Snapshot]) -> Status:
    """Nagios precedence: any CRITICAL, else any WARNING, else any UNKNOWN, else OK."""
    statuses = {check.status for check in checks}
    if any(not snap.ok for snap in snapshots):
        statuses.add(Status.UNKNOWN)
    for status in (Status.CRITICAL, Status.WARNING, Status.UNKNOWN):
        if status in statuses:
            return status
    return Status.OK


def perfdata(checks: Iterable[Check]) -> str:
    parts = []
    for check in checks:
        for label, value in check.perfdata.items():
            parts.append(f"{_PERF_LABEL.sub('_', label)}={value:g}")
    return " ".join(parts)


def headline(status: Status, checks: list[Check], snapshots: list[Snapshot]) -> str:
    bad = [c for c in checks if c.status is status and status is not Status.OK]
    broken = [s for s in snapshots if not s.ok]
    if bad:
        summary = "; ".join(f"{c.name}: {c.summary}" for c in bad)
    elif broken:
        summary = "; ".join(f"collector {s.collector} failed: {s.error}" for s in broken)
    else:
        summary = f"{len(checks)} checks OK"
    perf = perfdata(checks)
    return f"MONGOOSEIM {status.name} - {summary}" + (f" | {perf}" if perf else "")


def render_table(checks: list[Check], snapshots: list[Snapshot]) -> str:
    rows = [("CHECK", "STATE", "VALUE")]
    rows.extend((c.name, c.status.name, c.summary) for c in checks)
    rows.extend(
        (f"collector:{s.collector}", "UNKNOWN", s.error or "") for s in snapshots if not s.ok
    )
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows)


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
                    "perfdata": dict(c.perfdata),
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


async def _check(config: Config) -> Store:
    assembly = default_assembly(config)
    try:
        return await collect_once(assembly.collectors, assembly.watch)
    finally:
        await assembly.close()


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"MONGOOSEIM UNKNOWN - config error: {exc}")
        return int(Status.UNKNOWN)
    store = asyncio.run(_check(config))
    snapshots = list(store)
    checks = store.checks()
    status = overall(checks, snapshots)
    if args.json:
        print(to_json(status, checks, snapshots))
    else:
        print(headline(status, checks, snapshots))
        print(render_table(checks, snapshots))
    return int(status)


COMMAND = Command(
    name="check",
    help="run every check once; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios)",
    configure=_configure,
    run=_run,
)
