"""`mongooseim-agent scan-logs FILE...`: one-shot pattern counts for post-mortems.

Plain, gzip, bzip2 and xz files (recognised by content, not name), through the same scanner
the daemon follows logs with, so the numbers mean the same thing.
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import time
import zlib
from dataclasses import dataclass
from typing import Any, TextIO

from mongooseim_agent.collectors.logs import configured_patterns
from mongooseim_agent.commands.base import Command
from mongooseim_agent.config import ConfigError, LogsSection, load_config
from mongooseim_agent.logwatch import compressed
from mongooseim_agent.logwatch.scanner import DEFAULT_MAX_LINE_BYTES, LineStream, ScanPlan, Tally
from mongooseim_agent.mongooseim.log_patterns import LogPattern, catalogue, user_pattern

READ_CHUNK = 1 << 20
EXIT_OK = 0
EXIT_UNREADABLE = 2


@dataclass(slots=True)
class FileResult:
    path: str
    tally: Tally
    error: str | None = None


def scan_file(plan: ScanPlan, path: str, chunk: int = READ_CHUNK) -> FileResult:
    """Counts for one file; `error` says why reading stopped early, if it did."""
    tally = plan.tally()
    stream = LineStream(plan)
    try:
        with compressed.open_stream(path) as source:
            while data := source.read(chunk):
                stream.feed(data, tally)
    except (OSError, EOFError, zlib.error, lzma.LZMAError,
            compressed.UnsupportedCompression) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return FileResult(path, tally, reason or type(exc).__name__)
    stream.finish(tally)
    return FileResult(path, tally)


def _user_patterns(args: argparse.Namespace) -> list[LogPattern]:
    found: list[LogPattern] = []
    for kind, values in (("regex", args.pattern or []), ("literal", args.literal or [])):
        for value in values:
            name, sep, text = value.partition("=")
            if not sep:
                raise ValueError(f"--{'pattern' if kind == 'regex' else 'literal'} {value!r}: "
                                 "expected NAME=TEXT")
            try:
                found.append(user_pattern(name, **{kind: text}))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
    return found


def _as_json(result: FileResult, names: tuple[str, ...]) -> dict[str, Any]:
    t = result.tally
    entry: dict[str, Any] = {
        "path": result.path, "lines": t.lines, "long_lines": t.long_lines, "bytes": t.bytes,
        "matches": dict(zip(names, t.matches, strict=True)),
    }
    if result.error is not None:
        entry["error"] = result.error
    return entry


def _print_table(results: list[FileResult], total: Tally, names: tuple[str, ...],
                 out: TextIO) -> None:
    columns = [r.path for r in results] + (["total"] if len(results) > 1 else [])
    tallies = [r.tally for r in results] + ([total] if len(results) > 1 else [])
    rows = [(name, [t.matches[i] for t in tallies]) for i, name in enumerate(names)]
    rows.append(("(lines)", [t.lines for t in tallies]))
    rows.append(("(long lines)", [t.long_lines for t in tallies]))
    label_width = max(len(r[0]) for r in rows)
    widths = [max(len(c), *(len(str(r[1][i])) for r in rows)) for i, c in enumerate(columns)]
    out.write(" ".join(["pattern".ljust(label_width),
                        *(c.rjust(w) for c, w in zip(columns, widths, strict=True))]) + "\n")
    for label, values in rows:
        out.write(" ".join([label.ljust(label_width),
                            *(str(v).rjust(w) for v, w in zip(values, widths, strict=True))])
                  + "\n")


def _configured(args: argparse.Namespace) -> LogsSection:
    """[logs] of the agent's config when run through the CLI (which adds --config), so a
    post-mortem counts the same user patterns as the daemon; defaults otherwise."""
    if not hasattr(args, "config"):
        return LogsSection()
    return load_config(args.config).logs


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        settings = _configured(args)
        patterns = catalogue([*configured_patterns(settings), *_user_patterns(args)])
    except (ValueError, ConfigError) as exc:
        err.write(f"mongooseim-agent scan-logs: {exc}\n")
        return EXIT_UNREADABLE
    max_line = args.max_line_bytes or settings.max_line_bytes
    plan = ScanPlan(patterns, max_line)
    started = time.monotonic()
    results = [scan_file(plan, path) for path in args.files]
    elapsed = time.monotonic() - started
    total = plan.tally()
    for result in results:
        total.add(result.tally)
    for result in results:
        if result.error is not None:
            err.write(f"mongooseim-agent scan-logs: cannot read {result.path}: "
                      f"{result.error}\n")
    if args.json:
        summary = _as_json(FileResult("", total), plan.names)
        del summary["path"]
        document = {
            "files": [_as_json(r, plan.names) for r in results],
            "total": summary,
            "seconds": round(elapsed, 6),
        }
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        # A file that could not be opened has no column: its zeros would read as "clean".
        shown = [r for r in results if r.error is None or r.tally.bytes]
        if shown:
            _print_table(shown, total, plan.names, out)
    return EXIT_UNREADABLE if any(r.error is not None for r in results) else EXIT_OK


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="log files, plain or compressed (gzip, bzip2, xz)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--pattern", action="append", metavar="NAME=REGEX",
                        help="also count lines matching REGEX as NAME; repeatable")
    parser.add_argument("--literal", action="append", metavar="NAME=TEXT",
                        help="also count lines containing TEXT as NAME; repeatable")
    parser.add_argument("--max-line-bytes", type=int, default=None, metavar="N",
                        help="longer lines are matched on their first N bytes (default: "
                        f"[logs] max_line_bytes, {DEFAULT_MAX_LINE_BYTES})")


COMMAND = Command(
    name="scan-logs",
    help="count the fault patterns in log files (plain or compressed), once",
    configure=configure,
    run=run,
)
