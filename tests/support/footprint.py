"""The agent's own footprint (fds, RSS, threads) around an attack, printed in the test output."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil


@dataclass(frozen=True, slots=True)
class Footprint:
    fds: int
    rss: int
    threads: int

    def __str__(self) -> str:
        return f"fds={self.fds} rss={self.rss / 2**20:.1f}MiB threads={self.threads}"


def footprint(pid: int | None = None) -> Footprint:
    process = psutil.Process(pid if pid is not None else os.getpid())
    return Footprint(process.num_fds(), process.memory_info().rss, process.num_threads())


def report(attack: str, before: Footprint, after: Footprint) -> None:
    print(f"\n[{attack}] before: {before}\n[{attack}] after:  {after}")
