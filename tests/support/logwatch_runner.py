"""A log watcher in its own process, for tests that SIGKILL it: steps until killed.

    python -m tests.support.logwatch_runner STATE_DIR GLOB... [--settle SECONDS]

Prints "ready" once its first step is saved. With --settle it steps for that long, prints
its totals as one JSON line and exits: the end of a soak, compared against the truth.
With --stdin it steps only when told: each line "step N" on stdin runs N steps (reading
any backlog to its end) and prints the totals, with its fds, as one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from mongooseim_agent import logsetup
from mongooseim_agent.logwatch.follower import Follower
from mongooseim_agent.logwatch.scanner import ScanPlan
from mongooseim_agent.logwatch.state import StateStore
from mongooseim_agent.logwatch.watcher import LogWatcher
from mongooseim_agent.mongooseim.log_patterns import catalogue


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("globs", nargs="+")
    parser.add_argument("--settle", type=float, default=None)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--drain-grace", type=float, default=0.2)
    parser.add_argument("--stdin", action="store_true")
    args = parser.parse_args()
    # stdout carries the protocol ("ready", the totals); logs go to stderr.
    logsetup.configure(os.environ.get("LOGWATCH_LOG_LEVEL", "warning"), "console", sys.stderr)
    plan = ScanPlan(catalogue(), 4096)

    def follower() -> Follower:
        return Follower(plan, start_at="beginning", drain_grace=args.drain_grace)

    watcher = LogWatcher(plan, follower, StateStore(args.state_dir))
    watcher.restore()
    watcher.step(args.globs)
    print("ready", flush=True)
    if args.stdin:
        return _commanded(watcher, args.globs)
    deadline = None if args.settle is None else time.monotonic() + args.settle
    while deadline is None or time.monotonic() < deadline:
        result = watcher.step(args.globs)
        if not result.more:
            time.sleep(args.interval)
    watcher.close()
    totals = dataclasses.asdict(result.totals)
    print(json.dumps(totals, default=list), flush=True)
    return 0


def _commanded(watcher: LogWatcher, globs: list[str]) -> int:
    for line in sys.stdin:
        command, _, count = line.partition(" ")
        if command != "step":
            continue
        for _ in range(int(count or 1)):
            result = watcher.step(globs)
            while result.more:
                result = watcher.step(globs)
        totals = dataclasses.asdict(result.totals)
        totals["open_fds"] = len(os.listdir("/proc/self/fd"))
        print(json.dumps(totals, default=list), flush=True)
    watcher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
