"""Find the watched node's beam.smp under a proc root and follow it across restarts.

A known PID is re-validated with one read of /proc/PID/stat (its start time tells a reused
PID apart); the process table is scanned only when that PID is gone or was never found.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent import procfs
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.vmargs import (
    VmArgs,
    parse_beam_argv,
    parse_vm_args_file,
    release_root_from_args,
)

BEAM_COMMS = frozenset({"beam.smp", "beam"})


@dataclass(frozen=True, slots=True)
class Discovery:
    """The outcome of a lookup: the node, or why there is none."""

    node: NodeProcess | None
    problem: str | None = None


def full_node_name(args: VmArgs, hostname: str) -> str | None:
    """Node name as the VM forms it: a bare -sname gets the short host name appended."""
    raw = args.node_name
    if raw is None:
        return None
    if "@" in raw:
        return raw
    host = hostname if args.longnames else hostname.split(".", 1)[0]
    return f"{raw}@{host}"


def _is_mongooseim(args: VmArgs, release_root: Path | None) -> bool:
    if args.progname == "mongooseim":
        return True
    return release_root is not None and (release_root / "etc" / "mongooseim.toml").exists()


class NodeLocator:
    """Reads one process's facts from a proc root. All IO is synchronous: call off-loop."""

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        hostname: Callable[[], str] = socket.gethostname,
        release_root: Path | None = None,
    ) -> None:
        self._proc = proc_root
        self._hostname = hostname
        self._release_root = release_root

    def start_ticks(self, pid: int) -> int | None:
        try:
            return procfs.parse_stat_start_ticks((self._proc / str(pid) / "stat").read_text())
        except (OSError, ValueError):
            return None

    def beam_pids(self) -> list[int]:
        pids: list[int] = []
        try:
            entries = os.listdir(self._proc)
        except OSError:
            return pids
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                comm = (self._proc / entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm in BEAM_COMMS:
                pids.append(int(entry))
        return sorted(pids)

    def read(self, pid: int) -> NodeProcess | None:
        """The node facts of `pid`, or None when it is gone or not a distributed beam."""
        base = self._proc / str(pid)
        try:
            argv = procfs.parse_nul_separated((base / "cmdline").read_bytes())
            stat = (base / "stat").read_text()
            uid = procfs.parse_status_uid((base / "status").read_text())
        except (OSError, ValueError):
            return None
        try:
            args = parse_beam_argv(argv)
        except ValueError:
            return None
        name = full_node_name(args, self._hostname())
        if name is None or args.hidden:
            return None
        root = self._release_root or self._find_release_root(pid, args)
        env = self._environ(pid)
        file_args = self._vm_args_file(root)
        max_ports, source = self._max_ports(args, env, file_args)
        cookie = args.cookie
        return NodeProcess(
            pid=pid,
            name=name,
            longnames=args.longnames,
            uid=uid,
            start_ticks=procfs.parse_stat_start_ticks(stat),
            release_root=root,
            otp_release=self._otp_release(args),
            cookie=Secret(cookie) if cookie is not None else None,
            max_ports=max_ports,
            max_ports_source=source,
            max_processes=args.max_processes,
            dist_port_range=args.dist_port_range,
        )

    def is_mongooseim(self, node: NodeProcess) -> bool:
        try:
            argv = procfs.parse_nul_separated((self._proc / str(node.pid) / "cmdline").read_bytes())
        except OSError:
            return False
        return _is_mongooseim(parse_beam_argv(argv), node.release_root)

    def _find_release_root(self, pid: int, args: VmArgs) -> Path | None:
        from_args = release_root_from_args(args)
        if from_args is not None:
            return Path(from_args)
        candidates: list[Path] = []
        if args.root:
            candidates.append(Path(args.root))
        # Another user's process: cwd is not readable, and argv is all there is.
        with contextlib.suppress(OSError):
            candidates.append(Path(os.readlink(self._proc / str(pid) / "cwd")))
        for candidate in candidates:
            if (candidate / "etc" / "vm.args").is_file():
                return candidate
        return None

    @staticmethod
    def _otp_release(args: VmArgs) -> str | None:
        """The OTP version of the installation beam runs from (`-root`, always in its argv).

        An OTP install keeps it in releases/<major>/OTP_VERSION (world-readable, so this
        works unprivileged); a release that bundles ERTS may not have the file.
        """
        if not args.root:
            return None
        try:
            candidates = sorted(Path(args.root, "releases").glob("*/OTP_VERSION"))
        except OSError:
            return None
        for path in reversed(candidates):
            try:
                text = path.read_text(errors="replace").strip()
            except OSError:
                continue
            if text and len(text) <= 32 and text.isprintable():
                return text
        return None

    def _environ(self, pid: int) -> dict[str, str] | None:
        try:
            return procfs.parse_environ((self._proc / str(pid) / "environ").read_bytes())
        except OSError:
            return None

    @staticmethod
    def _vm_args_file(root: Path | None) -> VmArgs | None:
        if root is None:
            return None
        try:
            return parse_vm_args_file((root / "etc" / "vm.args").read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return None

    @staticmethod
    def _max_ports(
        args: VmArgs, env: dict[str, str] | None, file_args: VmArgs | None
    ) -> tuple[int | None, str | None]:
        if args.max_ports is not None:
            return args.max_ports, "+Q"
        if env is not None:
            value = env.get("ERL_MAX_PORTS")
            if value is not None and value.strip().isdigit():
                return int(value), "environ"
            return None, None
        if file_args is not None:
            if file_args.max_ports is not None:
                return file_args.max_ports, "vm.args +Q"
            value = file_args.env.get("ERL_MAX_PORTS")
            if value is not None and value.strip().isdigit():
                return int(value), "vm.args"
        return None, None


class NodeTracker:
    """Keeps the current NodeProcess; `refresh` is cheap while the known PID lives."""

    def __init__(self, locator: NodeLocator, name: str | None) -> None:
        self._locator = locator
        self._name = name
        self._current: NodeProcess | None = None
        self._last_name: str | None = name
        self._problem: str | None = None

    @property
    def current(self) -> NodeProcess | None:
        return self._current

    @property
    def wanted_name(self) -> str | None:
        """The configured name, else the last one seen: the `node` label while it is down."""
        return self._last_name

    @property
    def problem(self) -> str | None:
        return self._problem

    def refresh(self) -> Discovery:
        """Blocking: re-validate the known PID, scanning for the node only when it is gone."""
        known = self._current
        if known is not None and self._locator.start_ticks(known.pid) == known.start_ticks:
            return Discovery(known)
        found = self._scan()
        self._current = found.node
        self._problem = found.problem
        if found.node is not None:
            self._last_name = found.node.name
        return found

    def _scan(self) -> Discovery:
        nodes = [n for pid in self._locator.beam_pids() if (n := self._locator.read(pid))]
        if self._name is not None:
            wanted = self._name
            matches = [n for n in nodes if n.name == wanted or n.name.split("@")[0] == wanted]
            exact = [n for n in matches if n.name == wanted]
            chosen = exact or matches
            if not chosen:
                return Discovery(None, f"no running beam.smp with node name {wanted}")
            return Discovery(chosen[0])
        if len(nodes) == 1:
            return Discovery(nodes[0])
        if not nodes:
            return Discovery(None, "no distributed Erlang node (beam.smp) is running")
        mongooseim = [n for n in nodes if self._locator.is_mongooseim(n)]
        if len(mongooseim) == 1:
            return Discovery(mongooseim[0])
        names = ", ".join(sorted(n.name for n in nodes))
        return Discovery(None, f"several Erlang nodes run here ({names}): set [node] name")
