"""Randomized soak: writes, rotations of every lossless kind and SIGKILLs of the watcher
process, interleaved (seeded, bounded); the final counters must equal the truth exactly.

Rotation kinds that destroy data (deleting or overwriting a file the killed watcher had
not finished) have no exact truth, so they are left to the scenario suites, which check
they land in the loss counters.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.logfiles import LogBook, mixed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class Runner:
    """The watcher process; stopped only by SIGKILL to its own PID."""

    def __init__(self, state: Path, globs: list[str]) -> None:
        self.state, self.globs = state, globs
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.logwatch_runner", str(self.state),
             *self.globs],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'agent'}:{ROOT}"},
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            self.kill()
            raise AssertionError(f"watcher process said {first!r}, not 'ready'")

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None

    def settle(self, seconds: float) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.support.logwatch_runner", str(self.state),
             *self.globs, "--settle", str(seconds)],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'agent'}:{ROOT}"},
        )
        result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
        return result


def _rename_rotate(log: Path, n: int) -> None:
    log.rename(log.with_name(f"{log.name}.{n}"))


def _copytruncate(log: Path, n: int) -> None:
    shutil.copyfile(log, log.with_name(f"{log.name}.{n}"))
    os.truncate(log, 0)


def _compress_rotate(log: Path, n: int) -> None:
    rotated = log.with_name(f"{log.name}.{n}")
    log.rename(rotated)
    with rotated.open("rb") as src, gzip.open(f"{rotated}.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    rotated.unlink()


def _swap_link(link: Path, n: int) -> None:
    # Targets stay inside the globs: one swapped away twice while the watcher is killed
    # would otherwise be a file it never saw, whose lines nobody could count.
    target = link.with_name(f"{link.name}.target-{n}")
    target.touch()
    tmp = link.with_name("link.tmp")
    tmp.symlink_to(target)
    tmp.rename(link)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_soak_with_sigkills_ends_at_the_truth(tmp_path: Path, seed: int) -> None:
    """160 random actions and ~8 SIGKILLs; every counter ends equal to what was written."""
    rng = random.Random(seed)
    logdir = tmp_path / "log"
    logdir.mkdir()
    log = logdir / "mongooseim.log"
    link = logdir / "linked.log"
    (logdir / "linked.log.target-0").touch()
    link.symlink_to(logdir / "linked.log.target-0")
    log.touch()
    book = LogBook()
    runner = Runner(tmp_path / "state", [str(logdir / "mongooseim.log*"), f"{link}*"])
    runner.start()
    rotations = 0
    kills = 0
    try:
        for _ in range(160):
            roll = rng.random()
            if roll < 0.70:
                target = log if rng.random() < 0.8 else link
                book.write(target, mixed(rng.randint(1, 40), every=rng.randint(1, 5)))
            elif roll < 0.85 and log.stat().st_size:
                # Only non-empty files are rotated, as logrotate's notifempty does: an empty
                # active file vanishing unseen is (rightly) reported as a possible loss.
                rotations += 1
                rotate = rng.choice([_rename_rotate, _copytruncate, _compress_rotate])
                rotate(log, rotations)
                if rotate is not _copytruncate:
                    log.touch()
            elif roll < 0.90:
                rotations += 1
                _swap_link(link, rotations)
            elif runner.proc is not None:
                runner.kill()
                kills += 1
            else:
                runner.start()
            if rng.random() < 0.3:
                time.sleep(rng.random() * 0.02)
    finally:
        runner.kill()
    totals = runner.settle(1.0)
    assert kills >= 4
    assert totals["matches"] == book.expected()
    assert totals["lines"] == book.lines
    assert (totals["losses"], totals["lost_bytes"]) == (0, 0)
