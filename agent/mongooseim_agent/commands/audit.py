"""`mongooseim-agent audit`: the operations guide's checklist against this host, once.

A report with what was seen, what the guide recommends, why, and the fix for each check
(coloured on a terminal), or `--json`; exit 0 when nothing warns or fails, 1 on a warning,
2 on a failure, 3 when the audit could not run (Nagios). `--root DIR` audits a mounted image
or container filesystem: its files only, the live checks skipped with a reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mongooseim_agent.collectors.audit import AuditCollector, cache_file, cluster_source
from mongooseim_agent.collectors.cluster import ClusterCollector
from mongooseim_agent.commands.base import Command
from mongooseim_agent.config import Config, ConfigError, load_config
from mongooseim_agent.erlang.dist import DistSettings
from mongooseim_agent.mongooseim.audit.erlmem import ErlPortMemory
from mongooseim_agent.mongooseim.audit.findings import Finding, Verdict, worst
from mongooseim_agent.mongooseim.audit.host import HostFiles
from mongooseim_agent.mongooseim.discovery import NodeLocator, NodeTracker
from mongooseim_agent.mongooseim.nodelink import NodeLink
from mongooseim_agent.mongooseim.nodewatch import NodeWatch
from mongooseim_agent.snapshot import Status

_COLOURS = {Verdict.PASS: "32", Verdict.WARN: "33", Verdict.FAIL: "31", Verdict.SKIP: "2"}
_NAGIOS = {Verdict.PASS: Status.OK, Verdict.SKIP: Status.OK, Verdict.WARN: Status.WARNING,
           Verdict.FAIL: Status.CRITICAL}


def overall(findings: Sequence[Finding]) -> Verdict:
    """The worst status; skipped checks count as passed."""
    return worst(*(f.status for f in findings if f.status is not Verdict.SKIP))


def exit_code(findings: Sequence[Finding]) -> int:
    return int(_NAGIOS[overall(findings)])


def to_json(findings: Sequence[Finding], root: Path | None) -> str:
    verdict = overall(findings)
    return json.dumps(
        {
            "status": verdict.value,
            "nagios": _NAGIOS[verdict].name,
            "exit_code": int(_NAGIOS[verdict]),
            "root": str(root) if root is not None else "/",
            "live": root is None,
            "checks": [f.as_json() for f in findings],
        },
        indent=2,
    )


def render(findings: Sequence[Finding], root: Path | None, colour: bool) -> str:
    def paint(verdict: Verdict, text: str) -> str:
        return f"\x1b[{_COLOURS[verdict]}m{text}\x1b[0m" if colour else text

    verdict = overall(findings)
    bad = [f.name for f in findings if f.status in (Verdict.WARN, Verdict.FAIL)]
    where = f"image at {root} (files only)" if root is not None else "this host"
    summary = ", ".join(bad) if bad else "all checks pass"
    lines = [paint(verdict, f"MONGOOSEIM AUDIT {_NAGIOS[verdict].name}") +
             f" - {where}: {summary}", ""]
    for finding in findings:
        lines.append(paint(finding.status, f"{finding.status.value.upper():<4}") +
                     f"  {finding.name}")
        rows = [("observed", finding.observed), ("recommended", finding.recommended)]
        if finding.status is not Verdict.PASS:
            rows += [("why", finding.why), ("fix", finding.fix)]
        for label, text in rows:
            if text:
                lines.append(f"      {label + ':':<13}{text}")
        lines.append("")
    counts = {v: sum(1 for f in findings if f.status is v) for v in Verdict}
    lines.append(", ".join(f"{counts[v]} {v.value}" for v in Verdict))
    return "\n".join(lines)


def wants_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


async def build_collector(
    config: Config, root: Path | None
) -> tuple[AuditCollector, NodeLink | None]:
    memory = await asyncio.to_thread(ErlPortMemory,
                                     cache_file=cache_file(config.agent.state_dir))
    if root is not None:
        return AuditCollector(config, lambda: None, None, files=HostFiles(root), live=False,
                              port_memory=memory, wait_for_memory=True), None
    watch = NodeWatch(NodeTracker(NodeLocator(release_root=config.node.release_root),
                                  config.node.name), config.node.interval)
    await watch.refresh()
    link = NodeLink(
        lambda: watch.current, config.node.cookie_file,
        settings=DistSettings(epmd_port=config.probes.epmd_port,
                              connect_timeout=config.probes.timeout),
    )

    def release_root() -> Path | None:
        if config.node.release_root is not None:
            return config.node.release_root
        return watch.current.release_root if watch.current is not None else None

    membership = ClusterCollector(config.cluster, link, release_root=release_root)
    collector = AuditCollector(config, lambda: watch.current, link,
                               node_problem=lambda: watch.discovery.problem,
                               port_memory=memory, wait_for_memory=True,
                               cluster=cluster_source(membership))
    return collector, link


async def run_audit(config: Config, root: Path | None) -> list[Finding]:
    collector, link = await build_collector(config, root)
    try:
        return await collector.audit()
    finally:
        await collector.close()
        if link is not None:
            await link.close()


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a report")
    parser.add_argument("--root", type=Path, default=None, metavar="DIR",
                        help="audit the files of a mounted image or container filesystem; "
                        "live checks are skipped")


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"MONGOOSEIM AUDIT UNKNOWN - config error: {exc}")
        return int(Status.UNKNOWN)
    root: Path | None = args.root
    if root is not None and not root.is_dir():
        print(f"MONGOOSEIM AUDIT UNKNOWN - --root {root}: not a directory")
        return int(Status.UNKNOWN)
    findings = asyncio.run(run_audit(config, root))
    if args.json:
        print(to_json(findings, root))
    else:
        print(render(findings, root, wants_colour(sys.stdout)))
    return exit_code(findings)


COMMAND = Command(
    name="audit",
    help="check this host against the operations guide (nofile and where it comes from, "
    "ERL_MAX_PORTS, node name, port range, epmd, cookie, kernel limits, cluster); "
    "exit 0 OK, 1 WARNING, 2 CRITICAL",
    configure=_configure,
    run=_run,
)
