"""File descriptors of the node's process against its own nofile limit, and the host's table.

Open fds are counted with one stat() of /proc/PID/fd: since Linux 6.2 its st_size is the
number of open fds, which costs the same at 100 or 1M fds and works for another user's
process (listing the directory needs the same uid). An st_size of 0 means an older kernel:
then the directory is listed, which only works for the same user or root.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent import procfs
from mongooseim_agent.config import FdsSection
from mongooseim_agent.metrics import MetricSpec, gauge
from mongooseim_agent.mongooseim.discovery import Discovery
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.nodewatch import NodeWatch
from mongooseim_agent.perfdata import above
from mongooseim_agent.snapshot import Check, Perf, Sample, Snapshot, Status

METRICS: tuple[MetricSpec, ...] = (
    gauge(
        "mongooseim_node_info",
        "1 while the watched node's process is found; its name, OTP release and release root.",
        "erlang_node", "otp_release", "release_root",
    ),
    gauge("mongooseim_node_up", "1 if the node's beam.smp process is found."),
    gauge(
        "mongooseim_node_start_time_seconds",
        "Start time of the node's OS process (Unix seconds): a change is a restart.",
    ),
    gauge("mongooseim_process_open_fds", "Open file descriptors of the node's process."),
    gauge("mongooseim_process_max_fds", "Soft nofile limit of the node's process."),
    gauge("mongooseim_process_max_fds_hard", "Hard nofile limit of the node's process."),
    gauge("mongooseim_host_fds_allocated", "Allocated file handles on the host (file-nr)."),
    gauge("mongooseim_host_fds_max", "Host-wide file handle limit (fs.file-max)."),
    gauge("mongooseim_host_nr_open", "Largest nofile limit a process may be given (fs.nr_open)."),
    gauge(
        "mongooseim_vm_port_limit_configured",
        "Port table size from the command line (+Q, else ERL_MAX_PORTS), before ERTS rounds "
        "it up to a power of two.",
    ),
    gauge(
        "mongooseim_vm_process_limit_configured",
        "Process table size from the command line (+P).",
    ),
)


class FdCountUnavailable(Exception):
    """The kernel gave no st_size count and listing the fd directory was refused."""


def _stat_size(path: str) -> int:
    return os.stat(path).st_size


def count_open_fds(
    proc_root: Path, pid: int, stat_size: Callable[[str], int] = _stat_size
) -> int:
    """Open fds of `pid`: stat's st_size when the kernel reports it, else a listing."""
    # A str path: building a Path costs more than the stat itself.
    fd_dir = f"{proc_root}/{pid}/fd"
    size = stat_size(fd_dir)
    if size > 0:
        return size
    try:
        return len(os.listdir(fd_dir))
    except PermissionError as exc:
        raise FdCountUnavailable(
            "this kernel does not count fds in stat() and listing "
            f"{fd_dir} was refused: run the agent as the node's user or root"
        ) from exc


@dataclass(frozen=True, slots=True)
class FdReading:
    node: NodeProcess | None
    problem: str | None
    open_fds: int | None
    fd_error: str | None
    nofile: procfs.Limit | None
    file_nr: procfs.FileNr | None
    nr_open: int | None
    start_time: float | None


def _ratio_status(ratio: float, warning: float, critical: float) -> Status:
    if ratio >= critical:
        return Status.CRITICAL
    if ratio >= warning:
        return Status.WARNING
    return Status.OK


class FdCollector:
    """Samples the discovered node's fds and limits, and the host's fd table."""

    name = "fds"
    metrics = METRICS

    def __init__(
        self,
        settings: FdsSection,
        watch: NodeWatch,
        proc_root: Path = Path("/proc"),
        clock_ticks: Callable[[], int] = lambda: os.sysconf("SC_CLK_TCK"),
        count_fds: Callable[[Path, int], int] = count_open_fds,
    ) -> None:
        self._count_fds = count_fds
        self.interval = settings.interval
        self.timeout = settings.timeout
        self._settings = settings
        self._watch = watch
        self._proc = proc_root
        self._clock_ticks = clock_ticks
        # Boot time never changes, and /proc/stat is large on a many-core host: read once.
        self._btime: int | None = None

    async def collect(self) -> Snapshot:
        reading = await asyncio.to_thread(self._read, self._watch.discovery)
        return Snapshot(self.name, self._samples(reading), self._checks(reading))

    def _read(self, found: Discovery) -> FdReading:
        file_nr = procfs.parse_file_nr((self._proc / "sys/fs/file-nr").read_text())
        nr_open = int((self._proc / "sys/fs/nr_open").read_text())
        node = found.node
        if node is None:
            return FdReading(None, found.problem, None, None, None, file_nr, nr_open, None)
        try:
            nofile = procfs.parse_nofile((self._proc / str(node.pid) / "limits").read_text())
            open_fds: int | None = None
            fd_error: str | None = None
            try:
                open_fds = self._count_fds(self._proc, node.pid)
            except FdCountUnavailable as exc:
                fd_error = str(exc)
            btime = self._boot_time()
        except FileNotFoundError:
            # The process exited between discovery and sampling: it is down for this round.
            return FdReading(None, "the node's process exited", None, None, None, file_nr,
                             nr_open, None)
        start = btime + node.start_ticks / self._clock_ticks()
        return FdReading(node, None, open_fds, fd_error, nofile, file_nr, nr_open, start)

    def _boot_time(self) -> int:
        if self._btime is None:
            self._btime = procfs.parse_btime((self._proc / "stat").read_text())
        return self._btime

    def _samples(self, r: FdReading) -> tuple[Sample, ...]:
        samples: list[Sample] = []
        if r.file_nr is not None:
            samples.append(Sample("mongooseim_host_fds_allocated", r.file_nr.allocated))
            samples.append(Sample("mongooseim_host_fds_max", r.file_nr.maximum))
        if r.nr_open is not None:
            samples.append(Sample("mongooseim_host_nr_open", r.nr_open))
        node = r.node
        if node is None:
            samples.append(Sample("mongooseim_node_up", 0))
            return tuple(samples)
        samples.append(Sample("mongooseim_node_info", 1, {
            "erlang_node": node.name,
            "otp_release": node.otp_release or "",
            "release_root": str(node.release_root or ""),
        }))
        samples.append(Sample("mongooseim_node_up", 1))
        if r.start_time is not None:
            samples.append(Sample("mongooseim_node_start_time_seconds", r.start_time))
        if r.open_fds is not None:
            samples.append(Sample("mongooseim_process_open_fds", r.open_fds))
        if r.nofile is not None:
            if r.nofile.soft is not None:
                samples.append(Sample("mongooseim_process_max_fds", r.nofile.soft))
            if r.nofile.hard is not None:
                samples.append(Sample("mongooseim_process_max_fds_hard", r.nofile.hard))
        if node.max_ports is not None:
            samples.append(Sample("mongooseim_vm_port_limit_configured", node.max_ports))
        if node.max_processes is not None:
            samples.append(Sample("mongooseim_vm_process_limit_configured", node.max_processes))
        return tuple(samples)

    def _checks(self, r: FdReading) -> tuple[Check, ...]:
        checks = [self._node_check(r)]
        if r.node is not None:
            checks.append(self._fd_check(r))
        if r.file_nr is not None and r.file_nr.maximum > 0:
            s = self._settings
            ratio = r.file_nr.allocated / r.file_nr.maximum
            checks.append(
                Check(
                    "host_fds",
                    _ratio_status(ratio, s.host_warning_ratio, s.host_critical_ratio),
                    f"{r.file_nr.allocated} of {r.file_nr.maximum} host file handles "
                    f"allocated ({ratio:.1%})",
                    hint="raise fs.file-max (sysctl) before the host table fills: "
                    "every process then gets ENFILE",
                    perfdata={"host_fds": Perf(
                        r.file_nr.allocated,
                        warn=above(s.host_warning_ratio, r.file_nr.maximum),
                        crit=above(s.host_critical_ratio, r.file_nr.maximum),
                        min=0, max=r.file_nr.maximum)},
                )
            )
        return tuple(checks)

    @staticmethod
    def _node_check(r: FdReading) -> Check:
        if r.node is None:
            return Check(
                "node_process",
                Status.CRITICAL,
                r.problem or "node not found",
                hint="start MongooseIM (mongooseimctl start) or set [node] name",
                affects_readiness=True,
            )
        return Check(
            "node_process",
            Status.OK,
            f"{r.node.name} running as pid {r.node.pid}",
            affects_readiness=True,
        )

    def _fd_check(self, r: FdReading) -> Check:
        soft = r.nofile.soft if r.nofile is not None else None
        if r.open_fds is None:
            return Check("node_fds", Status.UNKNOWN, r.fd_error or "open fds unknown")
        if soft is None:
            return Check("node_fds", Status.OK, f"{r.open_fds} open fds, nofile unlimited",
                         perfdata={"open_fds": Perf(r.open_fds, min=0)})
        ratio = r.open_fds / soft
        status = _ratio_status(ratio, self._settings.warning_ratio, self._settings.critical_ratio)
        return Check(
            "node_fds",
            status,
            f"{r.open_fds} of {soft} fds open ({ratio:.1%} of the process's nofile limit)",
            hint="raise the service's LimitNOFILE= (systemd) or limits.conf nofile for the "
            "MongooseIM user; emfile errors start at 100%",
            perfdata={
                "open_fds": Perf(r.open_fds, warn=above(self._settings.warning_ratio, soft),
                                 crit=above(self._settings.critical_ratio, soft),
                                 min=0, max=soft),
                "max_fds": Perf(soft, min=0),
            },
            affects_readiness=True,
        )


