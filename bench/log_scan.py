"""Log scanning: `scan-logs` throughput against grep, and the follower's CPU at 10 MB/s.

Generates a MongooseIM-format log (1 GiB by default, --size to shrink) in a temporary
directory, warms the page cache, and times in the same run, best of --runs:
- `LC_ALL=C grep -c -F` with the default catalogue's literals (one count: lines matching any);
- `mongooseim-agent scan-logs` (a count per pattern, lines, long lines);
- `mtail --one_shot` with an equivalent program, when mtail is installed.
Then runs the log collector (default settings) in a child process while this process
appends 10 MB/s of log lines with a rename rotation every 50 MB, and reports the child's CPU
as a share of one core. Prints figures and ratios; never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mongooseim_agent.mongooseim.log_patterns import default_patterns

PLAIN = [
    "level=info what=c2s_started pid=<0.{p}.0> at=mongoose_c2s:handle_event/4:{l} "
    "jid=user{u}@localhost ip=10.0.{a}.{b} port=5222",
    "level=debug what=routing_packet pid=<0.{p}.0> at=mongoose_router:route/4:{l} "
    "from=user{u}@localhost/res to=user{v}@localhost type=chat",
    "level=info what=user_logged_in pid=<0.{p}.0> at=mongoose_c2s:handle_state/3:{l} "
    'user=user{u} server=localhost sid="{{1700000000,<0.{p}.0>}}"',
    "level=warning what=s2s_dns_lookup_failed pid=<0.{p}.0> at=mongoose_s2s_lib:lookup/2:{l} "
    "server=example{v}.org reason=nxdomain",
    "level=error what=pool_connection_failed pid=<0.{p}.0> at=mongoose_rdbms:connect/4:{l} "
    'reason=econnrefused text="Database connection failed, retrying in 2 s"',
]
FAULTS = [
    "level=warning pid=<0.{p}.0> at=ranch_acceptor:loop/5:{l} "
    'unstructured_log="Ranch acceptor reducing accept rate: out of file descriptors"',
    "level=error what=rdbms_reconnect pid=<0.{p}.0> at=mongoose_rdbms:connect/4:{l} "
    "reason=emfile",
    'level=error unstructured_log="Mnesia(mongooseim@node1): ** ERROR ** mnesia_event got '
    '{{inconsistent_database, running_partitioned_network, mongooseim@node2}}"',
    'level=error unstructured_log="** Connection attempt from node mongooseim@evil '
    'rejected. Invalid challenge reply. **"',
    "level=warning what=nodedown pid=<0.{p}.0> remote_node=mongooseim@node3 "
    "reason=net_tick_timeout",
]
BLOCK = 64 << 20


def make_lines(rng: random.Random, size: int, fault_rate: float = 0.001) -> bytes:
    out: list[bytes] = []
    total = 0
    while total < size:
        template = rng.choice(FAULTS) if rng.random() < fault_rate else rng.choice(PLAIN)
        text = template.format(p=rng.randrange(100000), l=rng.randrange(1000),
                               u=rng.randrange(10000), v=rng.randrange(10000),
                               a=rng.randrange(255), b=rng.randrange(255))
        line = (f"when=2026-11-23T10:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
                f"{rng.randrange(1000000):06d}+00:00 {text}\n").encode()
        out.append(line)
        total += len(line)
    return b"".join(out)


def generate(path: Path, size: int) -> None:
    rng = random.Random(25)
    block = make_lines(rng, min(size, BLOCK))
    with path.open("wb") as f:
        written = 0
        while written < size:
            chunk = block[: size - written]
            f.write(chunk)
            written += len(chunk)


def best_of(runs: int, argv: list[str]) -> tuple[float, str]:
    best = float("inf")
    out = ""
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                              env={**os.environ, "LC_ALL": "C"})
        best = min(best, time.perf_counter() - started)
        out = proc.stdout if proc.returncode in (0, 1) else f"exit {proc.returncode}: " + (
            proc.stderr.strip()[:200])
    return best, out


def scan_logs_argv() -> list[str]:
    from mongooseim_agent import cli

    if "scan-logs" in {c.name for c in cli.commands()}:
        return [sys.executable, "-m", "mongooseim_agent", "scan-logs"]
    # Not registered in cli.py yet: the same command object, run directly.
    return [sys.executable, "-c",
            "import argparse, sys\n"
            "from mongooseim_agent.commands.scan_logs import COMMAND\n"
            "p = argparse.ArgumentParser(); COMMAND.configure(p)\n"
            "sys.exit(COMMAND.run(p.parse_args(sys.argv[1:])))"]


def mtail_program() -> str:
    lines = []
    for pattern in default_patterns():
        alternatives = "|".join(lit.decode().replace("/", r"\/") for lit in pattern.literals)
        lines.append(f"counter log_{pattern.name}\n/{alternatives}/ {{\n  log_{pattern.name}++\n}}")
    return "\n".join(lines) + "\n"


def throughput(work: Path, size: int, runs: int) -> None:
    log = work / "mongooseim.log"
    started = time.perf_counter()
    generate(log, size)
    print(f"generated {size / 2**20:.0f} MiB in {time.perf_counter() - started:.1f} s")
    with log.open("rb") as f:
        while f.read(1 << 24):
            pass
    mb = size / 1e6
    literals = [lit.decode() for p in default_patterns() for lit in p.literals]
    grep_argv = ["grep", "-c", "-F", *(a for lit in literals for a in ("-e", lit)), str(log)]
    grep_s, grep_out = best_of(runs, grep_argv)
    print(f"grep -c -F ({len(literals)} literals): {grep_s:.3f} s  {mb / grep_s:7.0f} MB/s"
          f"  (lines matching any: {grep_out.strip()})")
    scan_s, scan_out = best_of(runs, [*scan_logs_argv(), str(log), "--json"])
    try:
        counts = json.loads(scan_out)["total"]["matches"]
    except (ValueError, KeyError):
        counts = scan_out
    print(f"scan-logs:                  {scan_s:.3f} s  {mb / scan_s:7.0f} MB/s  {counts}")
    print(f"scan-logs / grep throughput: {grep_s / scan_s:.2f}x (target >= 0.5x, aim 0.9x)")
    mtail = shutil.which("mtail")
    if mtail is None:
        print("mtail: not installed, skipped")
        return
    progs = work / "progs"
    progs.mkdir()
    (progs / "faults.mtail").write_text(mtail_program())
    mtail_s, _ = best_of(runs, [mtail, "--one_shot", "--progs", str(progs), "--logs",
                                        str(log), "--logtostderr"])
    print(f"mtail --one_shot:           {mtail_s:.3f} s  {mb / mtail_s:7.0f} MB/s"
          f"  scan-logs/mtail {mtail_s / scan_s:.2f}x")


def follower_child(state: Path, logdir: Path, seconds: float) -> None:
    """Runs the collector at default settings, prints its CPU seconds and final totals."""
    from mongooseim_agent import logsetup
    from mongooseim_agent.collectors.logs import LogsCollector
    from mongooseim_agent.config import LogsSection

    # stdout carries the result to the parent.
    logsetup.configure("warning", "console", sys.stderr)

    async def main() -> None:
        collector = LogsCollector(LogsSection(paths=(str(logdir / "mongooseim.log*"),)), state)
        task = asyncio.create_task(collector.run())
        await asyncio.sleep(0.5)
        cpu0, wall0 = time.process_time(), time.monotonic()
        print("ready", flush=True)
        end = wall0 + seconds
        snap = await collector.collect()
        while time.monotonic() < end:
            await asyncio.sleep(collector.interval)
            snap = await collector.collect()  # what the runner would do
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        task.cancel()
        await collector.close()
        lines = next(s.value for s in snap.samples if s.metric == "mongooseim_log_lines_total")
        print(json.dumps({"cpu": cpu, "wall": wall, "lines": lines}), flush=True)

    asyncio.run(main())


def follower_cpu(work: Path, rate: float, seconds: float) -> None:
    logdir = work / "follow"
    logdir.mkdir()
    log = logdir / "mongooseim.log"
    log.touch()
    data = make_lines(random.Random(7), 8 << 20)
    child = subprocess.Popen(
        [sys.executable, __file__, "--follower-child", str(work / "state"), str(logdir),
         str(seconds)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    child.stdout.readline()
    tick = 0.05
    per_tick = int(rate * tick)
    written = since_rotation = pos = rotations = 0
    started = time.monotonic()
    with log.open("ab") as f:
        out = f
        while time.monotonic() - started < seconds - 0.3:
            if pos + per_tick > len(data):
                pos = 0
            chunk = data[pos: data.index(b"\n", pos + per_tick) + 1]
            pos += len(chunk)
            out.write(chunk)
            out.flush()
            written += len(chunk)
            since_rotation += len(chunk)
            if since_rotation >= 50_000_000:
                rotations += 1
                log.rename(logdir / f"mongooseim.log.{rotations}")
                out.close()
                out = log.open("ab")
                since_rotation = 0
            time.sleep(max(0.0, started + (written / rate) - time.monotonic()))
        out.close()
    result = json.loads(child.stdout.readline())
    child.wait()
    wall = time.monotonic() - started
    print(f"follower at {written / wall / 1e6:.1f} MB/s for {wall:.0f} s ({rotations} "
          f"rotations): {100 * result['cpu'] / result['wall']:.2f}% of one core "
          f"(target <= 2%); {result['lines']:.0f} lines counted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 30, help="log size in bytes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=10e6, help="follower test, bytes/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="follower test length")
    parser.add_argument("--follower-child", nargs=3, metavar=("STATE", "LOGDIR", "SECONDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.follower_child:
        state, logdir, seconds = args.follower_child
        follower_child(Path(state), Path(logdir), float(seconds))
        return 0
    try:
        with tempfile.TemporaryDirectory(prefix="log-scan-bench-") as work:
            throughput(Path(work), args.size, args.runs)
        with tempfile.TemporaryDirectory(prefix="log-follow-bench-") as work:
            follower_cpu(Path(work), args.rate, args.seconds)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it never fails the build
        print(f"benchmark error: {type(exc).__name__}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
