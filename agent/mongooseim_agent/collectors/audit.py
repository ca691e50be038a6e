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
import socket
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from mongooseim_agent.collectors.base import Collector
from mongooseim_agent.config import Config
from mongooseim_agent.erlang.connection import Query, reply_int, reply_nodes
from mongooseim_agent.erlang.cookie import CookieUnavailable
from mongooseim_agent.erlang.dist import split_node_name
from mongooseim_agent.erlang.epmd import EpmdClient, NamesReply, OpenConnection
from mongooseim_agent.erlang.errors import CookieRejected, WireError
from mongooseim_agent.metrics import MetricSpec, gauge
from mongooseim_agent.mongooseim.audit import checks, host
from mongooseim_agent.mongooseim.audit.checks import (
    ClusterFacts,
    CookieFacts,
    DistFacts,
    EpmdFacts,
    KernelFacts,
    NameFacts,
    PortMemory,
    PortsFacts,
    Resolution,
)
from mongooseim_agent.mongooseim.audit.erlmem import ErlPortMemory, MeasureFailed
from mongooseim_agent.mongooseim.audit.findings import (
    Finding,
    Targets,
    Verdict,
)
from mongooseim_agent.mongooseim.audit.local import LocalFacts, LocalReader
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
NO_CLUSTER = "no cluster collector was given to the audit"
# Seconds the daemon waits before starting erl to measure the port table's memory: not in
# the busy first minute, and never for a one-shot `check`.
MEASURE_DELAY = 60.0


async def resolve_host(host: str) -> tuple[str, ...]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return tuple(sorted({str(info[4][0]) for info in infos}))


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
        self._live = live
        files = files or host.HostFiles()
        if accounts is None:
            accounts = (host.SystemAccounts() if files.root == Path("/")
                        else host.FileAccounts(files))
        self._local = LocalReader(
            files, accounts, live=live, unit=config.audit.unit, user=config.audit.user,
            release_root=config.node.release_root, cookie_file=config.node.cookie_file,
            proc_root=proc_root, hostname=hostname)
        self._resolve = resolve
        self._open = open_connection
        self._memory = port_memory if config.audit.measure_port_memory else None
        self._wait_for_memory = wait_for_memory
        self._measuring: asyncio.Task[PortMemory] | None = None
        self._memory_error: str | None = None
        self._cluster = cluster
        self._probe_timeout = min(config.probes.timeout, config.audit.timeout)

    async def collect(self) -> Snapshot:
        return Snapshot(self.name, tuple(samples(await self.audit())))

    async def close(self) -> None:
        task, self._measuring = self._measuring, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def audit(self) -> list[Finding]:
        node = self._node() if self._live else None
        local = await asyncio.to_thread(self._local.read, node, self._node_problem())
        targets = Targets(self._settings.expected_connections,
                          self._settings.tls if self._settings.tls is not None else local.tls)
        (names, peers, port_limit), (cluster, cluster_reason) = await asyncio.gather(
            self._live_node(node), self._cluster_facts())
        epmd_error, dist_port, registered = self._registration(node, names)
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
        assert source is not None  # noqa: S101 - LocalReader.read always sets it
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
        # A third of the run at most: a slow membership source (mongooseimctl starts a VM)
        # must leave time for the rest, or the whole audit times out and reports nothing.
        budget = self.timeout / 3
        try:
            async with asyncio.timeout(budget):
                return await self._cluster()
        except TimeoutError:
            return None, f"the cluster collector did not answer in {budget:g}s"

    def _node_name(self, node: NodeProcess | None, local: LocalFacts) -> tuple[str | None, str]:
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
        assert local is not None  # noqa: S101 - LocalReader.read always sets it
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
        self, node: NodeProcess | None, local: LocalFacts
    ) -> tuple[tuple[int, int] | None, str]:
        if node is not None:
            return node.dist_port_range, "the running node's command line"
        if local.vm_args is not None:
            return local.vm_args.dist_port_range, str(local.vm_args_path)
        return None, local.vm_args_problem or "no vm.args"

    async def _ports_facts(
        self, node: NodeProcess | None, local: LocalFacts, live_limit: int | None
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

    def _kernel(self, local: LocalFacts, port_range: tuple[int, int] | None) -> KernelFacts:
        base = local.kernel
        assert base is not None  # noqa: S101 - LocalReader.read always sets it
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


def cluster_from_snapshot(snapshot: Snapshot) -> tuple[ClusterFacts | None, str]:
    """The cluster collector's view, read from its samples (its public output).

    A member not running is a stopped db node while mnesia counts stopped nodes, else an
    expected member missing ([cluster] expected_members, or every member it has seen).
    """
    if snapshot.error is not None:
        return None, f"the cluster collector failed: {snapshot.error}"
    by_metric: dict[str, list[Sample]] = {}
    for sample in snapshot.samples:
        by_metric.setdefault(sample.metric, []).append(sample)
    sources = [s.labels.get("source", "") for s in by_metric.get(
        "mongooseim_cluster_source_info", [])]
    if not sources:
        reason = next((c.summary for c in snapshot.checks if c.name == "cluster_source"),
                      "no source answered")
        return None, f"cluster membership not read: {reason}"
    running = {s.labels["member"]: s.value for s in by_metric.get(
        "mongooseim_cluster_node_running", [])}
    not_running = tuple(sorted(m for m, v in running.items() if not v))
    stopped_count = sum(s.value for s in by_metric.get("mongooseim_cluster_stopped_nodes", []))
    stopped = not_running if stopped_count else ()
    expected_missing = tuple(sorted(
        s.labels["member"] for s in by_metric.get("mongooseim_cluster_expected_node_present", [])
        if not s.value and s.labels["member"] not in stopped))
    return ClusterFacts(tuple(sorted(running)), stopped, expected_missing,
                        f"the cluster collector, through {sources[0]}"), ""


def cluster_source(collector: Collector) -> ClusterSource:
    """The audit's cluster view from a cluster collector of its own (so that its runs do not
    disturb the daemon's collector, whose partition verdict needs two runs in a row)."""

    async def read() -> tuple[ClusterFacts | None, str]:
        try:
            async with asyncio.timeout(collector.timeout):
                snapshot = await collector.collect()
        except TimeoutError:
            return None, f"the cluster collector did not answer in {collector.timeout:g}s"
        return cluster_from_snapshot(snapshot)

    return read


def cache_file(state_dir: Path) -> Path:
    """Where the measured port table costs are kept between runs."""
    return state_dir / "audit-port-memory.json"
