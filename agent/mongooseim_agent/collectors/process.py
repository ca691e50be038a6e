"""The node process's resources through psutil, and the host's available memory.

Everything read here is world-readable (/proc/PID/stat, statm, status; /proc/meminfo), so it
works for an agent running as its own user. The guide warns that a large ERL_MAX_PORTS
preallocates memory: resident memory against the host's available memory shows it. Open fds
and nofile stay with the fd collector: psutil has neither cheaply nor unprivileged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mongooseim_agent.config import ProcessSection
from mongooseim_agent.metrics import MetricSpec, counter, gauge
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.nodewatch import NodeWatch
from mongooseim_agent.snapshot import Sample, Snapshot

if TYPE_CHECKING:
    import psutil

METRICS: tuple[MetricSpec, ...] = (
    gauge("mongooseim_process_resident_memory_bytes", "Resident memory of the node's process."),
    counter(
        "mongooseim_process_cpu_seconds_total",
        "User and system CPU time of the node's process (resets when it restarts).",
    ),
    gauge("mongooseim_process_threads", "OS threads of the node's process (schedulers, async "
          "and dirty I/O threads)."),
    counter(
        "mongooseim_process_context_switches_total",
        "Context switches of the node's process: kind=voluntary (it waited) or involuntary "
        "(it was preempted: CPU contention).",
        "kind",
    ),
    gauge("mongooseim_host_memory_available_bytes",
          "Memory available to new work on the host (MemAvailable)."),
)


@dataclass(frozen=True, slots=True)
class ProcessReading:
    rss: int
    cpu_seconds: float
    threads: int
    voluntary: int
    involuntary: int


class ProcessGone(Exception):
    """The process exited (or its PID was reused) between discovery and sampling."""


class PsutilReader:
    """Reads one process with psutil, keeping its handle while the same process lives."""

    def __init__(self) -> None:
        self._handle: psutil.Process | None = None
        self._identity: tuple[int, int] | None = None

    def __call__(self, node: NodeProcess) -> ProcessReading:
        # Imported on first use: with [process] enabled = false psutil is never loaded.
        import psutil  # noqa: PLC0415

        identity = (node.pid, node.start_ticks)
        try:
            if self._handle is None or self._identity != identity:
                self._handle, self._identity = psutil.Process(node.pid), identity
            handle = self._handle
            with handle.oneshot():
                cpu = handle.cpu_times()
                switches = handle.num_ctx_switches()
                return ProcessReading(
                    rss=handle.memory_info().rss,
                    cpu_seconds=cpu.user + cpu.system,
                    threads=handle.num_threads(),
                    voluntary=switches.voluntary,
                    involuntary=switches.involuntary,
                )
        except psutil.NoSuchProcess:
            self._handle = self._identity = None
            raise ProcessGone(f"pid {node.pid} exited") from None


def available_memory() -> int:
    import psutil  # noqa: PLC0415

    return int(psutil.virtual_memory().available)


class ProcessCollector:
    name = "process"
    metrics = METRICS

    def __init__(
        self,
        settings: ProcessSection,
        watch: NodeWatch,
        read_process: Callable[[NodeProcess], ProcessReading] | None = None,
        host_available: Callable[[], int] = available_memory,
    ) -> None:
        self.interval = settings.interval
        self.timeout = settings.timeout
        self._watch = watch
        self._read_process = read_process if read_process is not None else PsutilReader()
        self._host_available = host_available

    async def collect(self) -> Snapshot:
        return Snapshot(self.name, await asyncio.to_thread(self._read, self._watch.current))

    def _read(self, node: NodeProcess | None) -> tuple[Sample, ...]:
        samples = [Sample("mongooseim_host_memory_available_bytes", self._host_available())]
        if node is None:
            return tuple(samples)
        try:
            reading = self._read_process(node)
        except ProcessGone:
            return tuple(samples)
        samples += [
            Sample("mongooseim_process_resident_memory_bytes", reading.rss),
            Sample("mongooseim_process_cpu_seconds_total", reading.cpu_seconds),
            Sample("mongooseim_process_threads", reading.threads),
            Sample("mongooseim_process_context_switches_total", reading.voluntary,
                   {"kind": "voluntary"}),
            Sample("mongooseim_process_context_switches_total", reading.involuntary,
                   {"kind": "involuntary"}),
        ]
        return tuple(samples)
