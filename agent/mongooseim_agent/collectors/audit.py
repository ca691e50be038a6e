"""The operations guide's checklist against this host: every `[audit] interval` in the
daemon, once by `mongooseim-agent audit`.

Files are read under a root (`/`, or `--root` for a mounted image, where the live checks
are skipped); the live side reads the node's /proc entries, asks epmd, resolves names, and
hands peers our cookie through the distribution handshake (never reading theirs). Findings
become mongooseim_config_check_* samples; they carry no Check, so that `check` and
/node/ready stay about the node's health, not the host's configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from mongooseim_agent import procfs
from mongooseim_agent.config import Config
from mongooseim_agent.erlang.connection import Query, reply_int, reply_nodes
from mongooseim_agent.erlang.cookie import CookieUnavailable, read_cookie_file
from mongooseim_agent.erlang.dist import split_node_name
from mongooseim_agent.erlang.epmd import EpmdClient, NamesReply, OpenConnection
from mongooseim_agent.erlang.errors import CookieRejected, WireError
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.metrics import MetricSpec, gauge
from mongooseim_agent.mongooseim.audit import checks, host, sockets, sysctl, systemd
from mongooseim_agent.mongooseim.audit.checks import (
    ClusterFacts,
    CookieFacts,
    DistFacts,
    EpmdFacts,
    FileFacts,
    KernelFacts,
    NameFacts,
    NofileSource,
    PortMemory,
    PortsFacts,
    Resolution,
)
from mongooseim_agent.mongooseim.audit.erlmem import ErlPortMemory, MeasureFailed
from mongooseim_agent.mongooseim.audit.findings import (
    RELEASE_DEFAULT_COOKIE,
    Finding,
    Targets,
    Verdict,
)
from mongooseim_agent.mongooseim.cookie import expand_cookie_path
from mongooseim_agent.mongooseim.discovery import full_node_name
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.nodelink import NodeLink
from mongooseim_agent.mongooseim.vmargs import VmArgs
from mongooseim_agent.snapshot import Sample, Snapshot

METRICS: tuple[MetricSpec, ...] = (
    gauge("mongooseim_config_check_ok",
          "1 if the audit check passes, 0 if it warns or fails; absent while it is skipped.",
          "check"),
    gauge("mongooseim_config_check_observed",
          "The figure an audit check observed (nofile: the node's soft limit; erl_max_ports: "
          "the port table; dist_port_range: its width; ...), for checks that have one.",
          "check"),
    gauge("mongooseim_config_check_recommended",
          "The figure the operations guide recommends for the audit check, scaled by "
          "[audit] expected_connections.",
          "check"),
    gauge("mongooseim_config_check_status",
          "1 for the audit check's current status (pass, warn, fail, skip), 0 for the others.",
          "check", "status"),
)

Resolver = Callable[[str], Awaitable[tuple[str, ...]]]
ClusterSource = Callable[[], Awaitable[tuple[ClusterFacts | None, str]]]
NO_CLUSTER = "the cluster collector is not part of this build"
# Seconds the daemon waits before starting erl to measure the port table's memory: not in
# the busy first minute, and never for a one-shot `check`.
MEASURE_DELAY = 60.0


async def resolve_host(host: str) -> tuple[str, ...]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return tuple(sorted({str(info[4][0]) for info in infos}))


@dataclass
class _Local:
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


class AuditCollector:
    name = "audit"
    metrics = METRICS

    def __init__(
        self,
        config: Config,
        node: Callable[[], NodeProcess | None],
        link: NodeLink | None,
        *,
        node_problem: Callable[[], str | None] = lambda: None,
        files: host.HostFiles | None = None,
        live: bool = True,
        accounts: host.Accounts | None = None,
        proc_root: Path = Path("/proc"),
        hostname: Callable[[], str] = socket.gethostname,
        resolve: Resolver = resolve_host,
        open_connection: OpenConnection = asyncio.open_connection,
        port_memory: ErlPortMemory | None = None,
        wait_for_memory: bool = False,
        cluster: ClusterSource | None = None,
    ) -> None:
        self._settings = config.audit
        self._config = config
        self.interval = config.audit.interval
        self.timeout = config.audit.timeout
        self._node = node
        self._node_problem = node_problem
        self._link = link
        self._files = files or host.HostFiles()
        self._live = live
        # Release files of a live node are read where the node reads them, on this host.
        self._release_files = host.HostFiles() if live else self._files
        if accounts is None:
            accounts = (host.SystemAccounts() if self._files.root == Path("/")
                        else host.FileAccounts(self._files))
        self._accounts = accounts
        self._proc = proc_root
        self._hostname = hostname
        self._resolve = resolve
        self._open = open_connection
        self._memory = port_memory if config.audit.measure_port_memory else None
        self._wait_for_memory = wait_for_memory
        self._measuring: asyncio.Task[PortMemory] | None = None
        self._memory_error: str | None = None
        self._cluster = cluster
        self._probe_timeout = min(config.probes.timeout, config.audit.timeout)
        self._targets_fixed = (config.audit.expected_connections, config.audit.tls)
        self._log = structlog.get_logger("audit")

    async def collect(self) -> Snapshot:
        return Snapshot(self.name, tuple(samples(await self.audit())))

    async def close(self) -> None:
        task, self._measuring = self._measuring, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def audit(self) -> list[Finding]:
        node = self._node() if self._live else None
        local = await asyncio.to_thread(self._read_local, node)
        targets = Targets(self._settings.expected_connections,
                          self._settings.tls if self._settings.tls is not None else local.tls)
        names, peers, port_limit = await self._live_node(node)
        epmd_error, dist_port, registered = self._registration(node, names)
        cluster, cluster_reason = await self._cluster_facts()
        if cluster is not None:
            peers = sorted(set(peers) | {m for m in cluster.db_nodes if node is None
                                         or m != node.name})
        name, name_source = self._node_name(node, local)
        own, resolved_peers, cookie = await asyncio.gather(
            self._resolve_one(name.partition("@")[2]) if name and self._live else _none(),
            self._resolve_peers(peers),
            self._cookie_peers(node, peers, local.cookie),
        )
        source = local.source
        assert source is not None  # noqa: S101 - _read_local always sets it
        port_range, range_source = self._port_range(node, local)
        ports = await self._ports_facts(node, local, port_limit)
        known = node is not None or local.vm_args is not None
        findings = [
            checks.check_nofile(local.running, live=self._live, absent_reason=local.absent_reason,
                                targets=targets, source=source),
            checks.check_nofile_source(source, local.running, live=self._live, targets=targets,
                                       nr_open=local.nr_open),
            checks.check_erl_max_ports(ports, targets),
            checks.check_node_name(NameFacts(name, name_source, own, resolved_peers,
                                             known=known)),
            checks.check_dist_port_range(DistFacts(
                port_range, range_source, dist_port,
                cluster_size=max(1 + len(peers), len(cluster.db_nodes) if cluster else 0),
                live=self._live and node is not None, known=known)),
            checks.check_epmd(EpmdFacts(
                self._live, f"127.0.0.1:{self._config.probes.epmd_port}", epmd_error,
                registered, local.listeners, self._config.probes.epmd_port, dist_port,
                port_range)),
            checks.check_cookie(cookie),
            checks.check_kernel_limits(self._kernel(local, port_range), targets),
            checks.check_cluster(cluster, cluster_reason),
        ]
        return findings

    # -- the blocking side -----------------------------------------------------------

    def _read_local(self, node: NodeProcess | None) -> _Local:
        local = _Local()
        unit = self._settings.unit
        under_systemd: bool | None = None
        user_name = self._settings.user
        if node is not None:
            try:
                limit = procfs.parse_nofile((self._proc / str(node.pid) / "limits").read_text())
                local.running = (limit.soft, limit.hard)
            except (OSError, ValueError) as exc:
                local.absent_reason = f"cannot read /proc/{node.pid}/limits: {exc}"
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
            local.absent_reason = self._node_problem() or "no node found"
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

    def _read_release(self, node: NodeProcess | None, local: _Local) -> None:
        files = self._release_files
        configured = self._config.node.release_root
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

    def _read_kernel(self, local: _Local) -> None:
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

    def _cookie_local(self, node: NodeProcess | None, local: _Local) -> CookieFacts:
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
        configured = self._config.node.cookie_file
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

    # -- the live side ---------------------------------------------------------------

    async def _live_node(
        self, node: NodeProcess | None
    ) -> tuple[NamesReply | str | None, list[str], int | None]:
        if not self._live:
            return None, [], None
        epmd = EpmdClient("127.0.0.1", self._config.probes.epmd_port, self._probe_timeout,
                          self._open)

        async def names() -> NamesReply | str:
            try:
                return await epmd.names()
            except WireError as exc:
                return str(exc)

        async def call(query: Query) -> object:
            if node is None or self._link is None:
                return None
            try:
                async with asyncio.timeout(self._probe_timeout):
                    return await self._link.call(query, self._probe_timeout)
            except (TimeoutError, WireError, CookieUnavailable):
                return None

        reply, nodes_reply, limit_reply = await asyncio.gather(
            names(), call(Query.NODES), call(Query.PORT_LIMIT))
        peers = set(self._config.probes.peers)
        if nodes_reply is not None:
            with contextlib.suppress(WireError):
                peers.update(reply_nodes(Query.NODES, nodes_reply))  # type: ignore[arg-type]
        port_limit = None
        if limit_reply is not None:
            try:
                port_limit = reply_int(Query.PORT_LIMIT, limit_reply)  # type: ignore[arg-type]
            except WireError:
                port_limit = None
        if node is not None:
            peers.discard(node.name)
        return reply, sorted(peers), port_limit

    @staticmethod
    def _registration(
        node: NodeProcess | None, names: NamesReply | str | None
    ) -> tuple[str | None, int | None, bool | None]:
        if names is None:
            return None, None, None
        if isinstance(names, str):
            return names, None, None
        if node is None:
            return None, None, None
        port = names.nodes.get(split_node_name(node.name)[0])
        return None, port, port is not None

    async def _cluster_facts(self) -> tuple[ClusterFacts | None, str]:
        if not self._live:
            return None, "a live check, and --root audits files only"
        if self._cluster is None:
            return None, NO_CLUSTER
        try:
            async with asyncio.timeout(self._probe_timeout * 2):
                return await self._cluster()
        except TimeoutError:
            return None, "the cluster view did not come in time"

    def _node_name(self, node: NodeProcess | None, local: _Local) -> tuple[str | None, str]:
        if node is not None:
            return node.name, "the running node's command line"
        if local.vm_args is None:
            return None, local.vm_args_problem or "no vm.args"
        return (full_node_name(local.vm_args, local.hostname or "localhost"),
                str(local.vm_args_path))

    async def _resolve_one(self, host_name: str) -> Resolution:
        try:
            async with asyncio.timeout(self._probe_timeout):
                addresses = await self._resolve(host_name)
        except TimeoutError:
            return Resolution((), f"no answer in {self._probe_timeout:g}s")
        except OSError as exc:
            return Resolution((), exc.strerror or type(exc).__name__)
        return Resolution(addresses, None if addresses else "no addresses")

    async def _resolve_peers(self, peers: list[str]) -> dict[str, Resolution]:
        if not self._live:
            return {}
        hosts = [peer.partition("@")[2] for peer in peers]
        results = await asyncio.gather(*(self._resolve_one(h) for h in hosts))
        return dict(zip(peers, results, strict=True))

    async def _cookie_peers(
        self, node: NodeProcess | None, peers: list[str], local: CookieFacts | None
    ) -> CookieFacts:
        assert local is not None  # noqa: S101 - _read_local always sets it
        if not self._live:
            return _replace_cookie(local, peers_note="peers not checked: a live check")
        if not peers:
            return local
        if node is None:
            return _replace_cookie(local, peers_note="peers not checked: the node is not "
                                   "running here")
        if self._link is None:
            return _replace_cookie(local, peers_note="peers not checked: no distribution "
                                   "link to the node")
        link = self._link

        async def one(peer: str) -> tuple[str, str]:
            try:
                async with asyncio.timeout(self._probe_timeout):
                    await link.check_peer(peer)
            except CookieRejected:
                return peer, "rejected"
            except TimeoutError:
                return peer, f"no answer in {self._probe_timeout:g}s"
            except CookieUnavailable as exc:
                return peer, str(exc)
            except (WireError, OSError, ValueError) as exc:
                return peer, str(exc) or type(exc).__name__
            return peer, "accepted"

        outcomes = await asyncio.gather(*(one(peer) for peer in peers))
        return _replace_cookie(
            local,
            rejected_by=tuple(p for p, r in outcomes if r == "rejected"),
            accepted_by=tuple(p for p, r in outcomes if r == "accepted"),
            unchecked={p: r for p, r in outcomes if r not in ("rejected", "accepted")},
            peers_checked=True,
        )

    def _port_range(
        self, node: NodeProcess | None, local: _Local
    ) -> tuple[tuple[int, int] | None, str]:
        if node is not None:
            return node.dist_port_range, "the running node's command line"
        if local.vm_args is not None:
            return local.vm_args.dist_port_range, str(local.vm_args_path)
        return None, local.vm_args_problem or "no vm.args"

    async def _ports_facts(
        self, node: NodeProcess | None, local: _Local, live_limit: int | None
    ) -> PortsFacts:
        configured: int | None = None
        origin: str | None = None
        if node is not None:
            configured, origin = node.max_ports, node.max_ports_source
            if configured is None and local.vm_args is not None:
                configured, origin = _vm_args_ports(local.vm_args, local.vm_args_path)
        elif local.vm_args is not None:
            configured, origin = _vm_args_ports(local.vm_args, local.vm_args_path)
        nofile_soft: int | None = None
        nofile_where: str | None = None
        if local.running is not None:
            nofile_soft, nofile_where = local.running[0], "the running node"
        elif local.source is not None:
            restart = local.source.restart_value()
            if restart is not None:
                nofile_soft, nofile_where = restart[0], restart[2]
        known = node is not None or local.vm_args is not None
        memory, note = await self._port_memory(configured) if known else (None, None)
        return PortsFacts(configured, origin, live_limit, nofile_soft, nofile_where, known,
                          memory, note, local.vm_args_problem or "no node and no vm.args")

    async def _port_memory(self, ports: int | None) -> tuple[PortMemory | None, str | None]:
        if self._memory is None or ports is None:
            return None, None
        if self._memory.erl is None:
            return None, "memory cost not measured: erl is not installed here"
        cached = self._memory.cached(ports)
        if cached is not None:
            return cached, None
        if self._wait_for_memory:
            try:
                return await self._memory.measure(ports), None
            except MeasureFailed as exc:
                return None, f"memory cost not measured: {exc}"
        task = self._measuring
        if task is not None and task.done():
            self._measuring = None
            if not task.cancelled() and task.exception() is not None:
                self._memory_error = str(task.exception())
            task = None
        if task is None and self._memory_error is None:
            self._measuring = asyncio.create_task(self._measure_later(self._memory, ports),
                                                  name="audit-port-memory")
        if self._memory_error is not None:
            return None, f"memory cost not measured: {self._memory_error}"
        return None, "memory cost: being measured with erl (shown from the next run)"

    async def _measure_later(self, memory: ErlPortMemory, ports: int) -> PortMemory:
        # A one-shot run (`check`) closes the collector before this: no VM is started for it.
        await asyncio.sleep(MEASURE_DELAY)
        return await memory.measure(ports)

    def _kernel(self, local: _Local, port_range: tuple[int, int] | None) -> KernelFacts:
        base = local.kernel
        assert base is not None  # noqa: S101 - _read_local always sets it
        values: list[tuple[int, str]] = []
        if local.running is not None:
            for value, label in zip(local.running, ("soft", "hard"), strict=True):
                if value is not None:
                    values.append((value, f"the running node's {label} limit"))
        source = local.source
        if source is not None:
            if source.unit_limit is not None:
                for value in (source.unit_limit.soft, source.unit_limit.hard):
                    if value is not None:
                        values.append((value, f"LimitNOFILE= {source.unit_limit_where}"))
            for rule in (source.limits.soft, source.limits.hard):
                if rule is not None and rule.value is not None:
                    values.append((rule.value, f"limits.conf {rule.where}"))
        unique = sorted(set(values))
        return KernelFacts(base.file_max, base.nr_open, base.port_range, unique, port_range,
                           base.problems)


async def _none() -> None:
    return None


def _vm_args_ports(args: VmArgs, path: str | None) -> tuple[int | None, str | None]:
    if args.max_ports is not None:
        return args.max_ports, f"+Q in {path}"
    value = args.env.get("ERL_MAX_PORTS")
    if value is not None and value.strip().isdigit():
        return int(value), f"-env ERL_MAX_PORTS in {path}"
    return None, None


def _replace_cookie(facts: CookieFacts, **changes: object) -> CookieFacts:
    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


def samples(findings: Iterable[Finding]) -> list[Sample]:
    out: list[Sample] = []
    for finding in findings:
        label = {"check": finding.name}
        for verdict in Verdict:
            out.append(Sample("mongooseim_config_check_status",
                              1 if finding.status is verdict else 0,
                              {"check": finding.name, "status": verdict.value}))
        if finding.status is Verdict.SKIP:
            continue
        out.append(Sample("mongooseim_config_check_ok",
                          1 if finding.status is Verdict.PASS else 0, label))
        if finding.observed_value is not None:
            out.append(Sample("mongooseim_config_check_observed", finding.observed_value, label))
        if finding.recommended_value is not None:
            out.append(Sample("mongooseim_config_check_recommended", finding.recommended_value,
                              label))
    return out


def cache_file(state_dir: Path) -> Path:
    """Where the measured port table costs are kept between runs."""
    return state_dir / "audit-port-memory.json"
