"""The audit's blocking side: files under a root, and the node's own /proc entries.

Called off the event loop. Everything missing or unreadable becomes a fact or a problem
text; only the cookie is kept as a Secret, never in a printable field.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mongooseim_agent import procfs
from mongooseim_agent.erlang.cookie import CookieUnavailable, read_cookie_file
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.audit import host, sockets, sysctl, systemd
from mongooseim_agent.mongooseim.audit.checks import (
    CookieFacts,
    FileFacts,
    KernelFacts,
    NofileSource,
)
from mongooseim_agent.mongooseim.audit.findings import RELEASE_DEFAULT_COOKIE
from mongooseim_agent.mongooseim.cookie import expand_cookie_path
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.vmargs import VmArgs


@dataclass
class LocalFacts:
    """What the blocking side read: files under the root and the node's /proc entries."""

    running: tuple[int | None, int | None] | None = None
    absent_reason: str | None = None
    source: NofileSource | None = None
    vm_args: VmArgs | None = None
    vm_args_path: str | None = None
    vm_args_problem: str | None = None
    tls: bool | None = None
    kernel: KernelFacts | None = None
    listeners: list[sockets.Listener] | None = None
    cookie: CookieFacts | None = None
    cookie_secret: Secret | None = field(default=None, repr=False)
    hostname: str | None = None
    nr_open: int | None = None
    user_uid: int | None = None



class LocalReader:
    """Reads one host's facts for the audit; `live` False: an image, files only."""

    def __init__(
        self,
        files: host.HostFiles,
        accounts: host.Accounts,
        *,
        live: bool,
        unit: str | None = None,
        user: str | None = None,
        release_root: Path | None = None,
        cookie_file: Path | None = None,
        proc_root: Path = Path("/proc"),
        hostname: Callable[[], str] = socket.gethostname,
    ) -> None:
        self._files = files
        # Release files of a live node are read where the node reads them, on this host.
        self._release_files = host.HostFiles() if live else files
        self._accounts = accounts
        self._live = live
        self._unit = unit
        self._user = user
        self._release_root = release_root
        self._cookie_file = cookie_file
        self._proc = proc_root
        self._hostname = hostname

    def read(self, node: NodeProcess | None, node_problem: str | None) -> LocalFacts:
        local = LocalFacts()
        unit = self._unit
        under_systemd: bool | None = None
        user_name = self._user
        if node is not None:
            try:
                limit = procfs.parse_nofile((self._proc / str(node.pid) / "limits").read_text())
                local.running = (limit.soft, limit.hard)
            except (OSError, ValueError) as exc:
                local.absent_reason = (f"the node's limit is not known: cannot read "
                                       f"/proc/{node.pid}/limits: {exc}")
            try:
                cgroup_unit = systemd.unit_from_cgroup(
                    (self._proc / str(node.pid) / "cgroup").read_text())
                under_systemd = cgroup_unit is not None
                unit = cgroup_unit or unit
            except OSError:
                under_systemd = None
            if user_name is None:
                owner = self._accounts.by_uid(node.uid)
                user_name = owner.name if owner is not None else None
        elif self._live:
            problem = node_problem or "not found"
            local.absent_reason = f"the node is not running here ({problem})"
        if unit is None:
            unit = host.find_unit(self._files, ("mongooseim.service",)) or "mongooseim.service"
        local.source = host.nofile_source(self._files, self._accounts, user_name=user_name,
                                          unit=unit, under_systemd=under_systemd)
        self._read_release(node, local)
        self._read_kernel(local)
        if self._live:
            local.listeners = self._read_listeners()
            local.hostname = self._hostname()
        else:
            try:
                local.hostname = (self._files.read("/etc/hostname") or "").strip() or None
            except host.Unreadable:
                local.hostname = None
        local.cookie = self._cookie_local(node, local)
        return local

    def _read_release(self, node: NodeProcess | None, local: LocalFacts) -> None:
        files = self._release_files
        configured = self._release_root
        if node is not None and node.release_root is not None:
            configured = node.release_root
        root = host.find_release_root(files, configured)
        if root is None:
            local.vm_args_problem = ("no REL_ROOT/etc/vm.args found (set [node] release_root)"
                                     if configured is None else
                                     f"{configured}/etc/vm.args: no such file")
            return
        local.vm_args_path = f"{root}/etc/vm.args"
        local.vm_args, local.vm_args_problem = host.read_vm_args(files, root)
        try:
            toml = files.read(f"{root}/etc/mongooseim.toml")
        except host.Unreadable:
            toml = None
        local.tls = host.tls_configured(toml) if toml is not None else None

    def _read_kernel(self, local: LocalFacts) -> None:
        problems: list[str] = []
        file_max: tuple[int, str] | None = None
        nr_open: tuple[int, str] | None = None
        port_range: tuple[tuple[int, int], str] | None = None
        if self._live:
            sys_dir = self._proc / "sys"
            try:
                file_max = (int((sys_dir / "fs/file-max").read_text()), "/proc/sys/fs/file-max")
                nr_open = (int((sys_dir / "fs/nr_open").read_text()), "/proc/sys/fs/nr_open")
                port_range = (sysctl.parse_port_range(
                    (sys_dir / "net/ipv4/ip_local_port_range").read_text()),
                    "/proc/sys/net/ipv4/ip_local_port_range")
            except (OSError, ValueError) as exc:
                problems.append(f"/proc/sys: {exc}")
        else:
            values, problems = host.sysctl_files(self._files)
            file_max_value = values.get("fs.file-max")
            if file_max_value is not None and file_max_value.value.isdigit():
                file_max = (int(file_max_value.value), file_max_value.where)
            nr = values.get("fs.nr_open")
            nr_open = ((int(nr.value), nr.where) if nr is not None and nr.value.isdigit()
                       else (int(sysctl.KERNEL_DEFAULTS["fs.nr_open"]), "the kernel's default"))
            span = values.get("net.ipv4.ip_local_port_range")
            try:
                port_range = ((sysctl.parse_port_range(span.value), span.where) if span is not None
                              else (sysctl.parse_port_range(
                                  sysctl.KERNEL_DEFAULTS["net.ipv4.ip_local_port_range"]),
                                  "the kernel's default"))
            except ValueError as exc:
                problems.append(f"{span.where if span else '?'}: ip_local_port_range: {exc}")
        local.nr_open = nr_open[0] if nr_open else None
        local.kernel = KernelFacts(file_max, nr_open, port_range, (), None, tuple(problems))

    def _read_listeners(self) -> list[sockets.Listener] | None:
        found: list[sockets.Listener] = []
        for name in ("tcp", "tcp6"):
            try:
                found.extend(sockets.parse_proc_net_tcp((self._proc / "net" / name).read_text()))
            except OSError:
                continue
        return found

    def _cookie_local(self, node: NodeProcess | None, local: LocalFacts) -> CookieFacts:
        source = local.source
        user_name = source.user if source is not None else None
        user = self._accounts.by_name(user_name) if user_name else None
        if node is not None and user is None:
            user = self._accounts.by_uid(node.uid)
        uid = node.uid if node is not None else (user.uid if user is not None else None)
        if user is not None:
            user_name = user.name

        def owner(found_uid: int) -> str:
            entry = self._accounts.by_uid(found_uid)
            return entry.name if entry is not None else str(found_uid)

        args_file = None
        if local.vm_args_path is not None and local.vm_args is not None \
                and local.vm_args.cookie is not None:
            try:
                args_file = host.file_facts(self._release_files, local.vm_args_path, owner)
            except host.Unreadable:
                args_file = None
        secret: Secret | None = None
        description: str | None = None
        if node is not None and node.cookie is not None:
            secret, description = node.cookie, "-setcookie on the node's command line"
        elif node is None and local.vm_args is not None and local.vm_args.cookie is not None:
            secret = Secret(local.vm_args.cookie)
            description = f"-setcookie in {local.vm_args_path}"
        cookie_file: FileFacts | None = None
        unreadable: str | None = None
        if secret is None and user is not None:
            path = f"{user.home.rstrip('/')}/.erlang.cookie"
            try:
                cookie_file = host.file_facts(self._files, path, owner)
            except host.Unreadable as exc:
                unreadable = str(exc)
            if cookie_file is not None:
                description = path
                try:
                    secret = read_cookie_file(self._files.real(path))
                except (CookieUnavailable, host.Unreadable) as exc:
                    unreadable = str(exc)
        configured = self._cookie_file
        if secret is None and self._live and configured is not None:
            # The agent's own copy of the node's cookie (e.g. a systemd credential).
            try:
                secret = read_cookie_file(expand_cookie_path(configured, os.environ))
                description = description or f"[node] cookie_file {configured}"
            except CookieUnavailable as exc:
                unreadable = unreadable or str(exc)
        local.cookie_secret = secret
        if secret is None and description is None:
            return CookieFacts(None, None, unreadable, service_user=user_name, service_uid=uid)
        return CookieFacts(
            description,
            (secret == Secret(RELEASE_DEFAULT_COOKIE)) if secret is not None else None,
            unreadable,
            cookie_file=cookie_file,
            args_file=args_file if description and "-setcookie" in description else None,
            service_user=user_name,
            service_uid=uid,
        )
