"""Reachability, as the guide's checklist asks it: listeners open, epmd answering, the node
registered on a port inside its configured range, and every cluster peer reachable through
epmd and its distribution port and accepting our cookie.

Every probe runs under its own timeout; a failed probe is a 0 sample and a failing check,
never an exception. Peers are `[probes] peers`, every mnesia member (db_nodes: a stopped
member stays a peer, reading 0, until it is removed from the cluster) and the node's
`nodes()`; at most `max_peers` of them, at most `max_concurrency` probed at once, so a node
claiming thousands of peers cannot exhaust the agent's fds or flood /metrics.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from mongooseim_agent.config import ProbesSection, parse_host_port
from mongooseim_agent.erlang.connection import Query, reply_nodes
from mongooseim_agent.erlang.cookie import CookieUnavailable
from mongooseim_agent.erlang.dist import split_node_name
from mongooseim_agent.erlang.epmd import EpmdClient, NamesReply, OpenConnection, close_quietly
from mongooseim_agent.erlang.errors import CookieRejected, RpcError, WireError
from mongooseim_agent.metrics import MetricSpec, gauge
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.nodelink import NodeLink
from mongooseim_agent.snapshot import Check, Perf, Sample, Snapshot, Status

METRICS: tuple[MetricSpec, ...] = (
    gauge("mongooseim_epmd_up", "1 if epmd on this host answered NAMES."),
    gauge("mongooseim_dist_port", "The node's distribution port as epmd reports it."),
    gauge(
        "mongooseim_dist_port_in_range",
        "1 if the distribution port is inside inet_dist_listen_min..max (absent when the node "
        "sets no range).",
    ),
    gauge("mongooseim_probe_success", "1 if the probe succeeded.", "name", "target"),
    gauge(
        "mongooseim_probe_duration_seconds",
        "How long the probe took (until success, failure or its timeout).",
        "name",
        "target",
    ),
    gauge(
        "mongooseim_cluster_peer_up",
        "1 if this host reaches the peer: check=epmd (registered in its epmd), dist (its "
        "distribution port accepts TCP), auth (a handshake with our cookie succeeds). Every "
        "mnesia member is a peer: a stopped one reads 0 until it is removed from the cluster.",
        "peer",
        "check",
    ),
    gauge(
        "mongooseim_cluster_peers_known",
        "Peers known ([probes] peers, mnesia db_nodes, nodes()), probed or not.",
    ),
    gauge(
        "mongooseim_cluster_peers_probed",
        "Peers probed: fewer than known when [probes] max_peers caps them.",
    ),
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    duration: float
    detail: str
    # Why it failed when the reason changes what to do: "cookie_rejected", "no_cookie".
    cause: str = ""


@dataclass(frozen=True, slots=True)
class PeerOutcome:
    peer: str
    # check name -> outcome; "auth" is missing when no cookie is known.
    checks: dict[str, Outcome]


class ProbesCollector:
    name = "probes"
    metrics = METRICS

    def __init__(
        self,
        settings: ProbesSection,
        link: NodeLink,
        *,
        epmd_host: str = "127.0.0.1",
        open_connection: OpenConnection = asyncio.open_connection,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = settings.interval
        # Discovering peers, then per round of max_concurrency peers each one's epmd lookup,
        # then its dist and auth probes side by side, plus scheduling slack.
        rounds = math.ceil(settings.max_peers / settings.max_concurrency)
        self.timeout = settings.timeout * (1 + 2 * rounds) + 1.0
        self._settings = settings
        self._link = link
        self._epmd_host = epmd_host
        self._open = open_connection
        self._clock = clock
        self._listeners = {
            name: parse_host_port(target) for name, target in settings.listeners.items()
        }

    async def collect(self) -> Snapshot:
        node = self._link.node()
        listener_tasks = {
            name: self._timed(self._tcp(host, port))
            for name, (host, port) in self._listeners.items()
        }
        listeners, (epmd, names), (known, discovery_error) = await asyncio.gather(
            _gather_dict(listener_tasks), self._local_epmd(), self._peers(node),
        )
        peers = known[: self._settings.max_peers]
        limit = asyncio.Semaphore(self._settings.max_concurrency)
        peer_outcomes, local_dist = await asyncio.gather(
            asyncio.gather(*(self._probe_peer(peer, limit) for peer in peers)),
            self._local_dist(node, names),
        )
        samples: list[Sample] = []
        checks: list[Check] = []
        for name, outcome in listeners.items():
            host, port = self._listeners[name]
            samples += _probe_samples(name, f"{host}:{port}", outcome)
            checks.append(_listener_check(name, f"{host}:{port}", outcome))
        epmd_target = f"{self._epmd_host}:{self._settings.epmd_port}"
        samples.append(Sample("mongooseim_epmd_up", int(epmd.ok)))
        samples += _probe_samples("epmd", epmd_target, epmd)
        checks.append(_epmd_check(epmd_target, epmd))
        if node is not None and epmd.ok and names is not None:
            samples += self._registration_samples(node, names)
            checks.append(self._registration_check(node, names))
        if node is not None and local_dist is not None:
            samples += _probe_samples("dist", node.name, local_dist)
        for peer in peer_outcomes:
            for check, result in peer.checks.items():
                labels = {"peer": peer.peer, "check": check}
                samples.append(Sample("mongooseim_cluster_peer_up", int(result.ok), labels))
        samples.append(Sample("mongooseim_cluster_peers_known", len(known)))
        samples.append(Sample("mongooseim_cluster_peers_probed", len(peers)))
        checks.append(_peers_check(peer_outcomes, discovery_error, len(known),
                                   self._settings.max_peers))
        return Snapshot(self.name, tuple(samples), tuple(checks))

    async def _timed(self, probe: Awaitable[str]) -> Outcome:
        """Run one probe under the per-probe timeout; every failure becomes an Outcome."""
        start = self._clock()
        limit = self._settings.timeout
        try:
            async with asyncio.timeout(limit):
                detail = await probe
        except TimeoutError:
            return Outcome(False, self._clock() - start, f"no answer in {limit:g}s")
        except CookieRejected as exc:
            return Outcome(False, self._clock() - start, _reason(exc), "cookie_rejected")
        except CookieUnavailable as exc:
            return Outcome(False, self._clock() - start, _reason(exc), "no_cookie")
        except (OSError, WireError) as exc:
            return Outcome(False, self._clock() - start, _reason(exc))
        return Outcome(True, self._clock() - start, detail)

    async def _tcp(self, host: str, port: int) -> str:
        _, writer = await self._open(host, port)
        await close_quietly(writer)
        return "accepts connections"

    async def _local_epmd(self) -> tuple[Outcome, NamesReply | None]:
        client = EpmdClient(self._epmd_host, self._settings.epmd_port, self._settings.timeout,
                            self._open)
        names: list[NamesReply] = []

        async def query() -> str:
            names.append(await client.names())
            return f"{len(names[0].nodes)} nodes registered"

        outcome = await self._timed(query())
        return outcome, names[0] if names else None

    async def _local_dist(
        self, node: NodeProcess | None, names: NamesReply | None
    ) -> Outcome | None:
        if node is None or names is None:
            return None
        alive, host = split_node_name(node.name)
        port = names.nodes.get(alive)
        if port is None:
            return None
        # By its host name, as peers and mongooseimctl reach it.
        return await self._timed(self._tcp(host, port))

    async def _peers(self, node: NodeProcess | None) -> tuple[list[str], str | None]:
        """Known peers, most wanted first: configured, mnesia members, then nodes()."""
        groups: list[list[str]] = [sorted(set(self._settings.peers))]
        error: str | None = None
        if node is not None:
            limit = self._settings.timeout
            try:
                async with asyncio.timeout(limit):
                    connected = await self._link.call(Query.NODES, limit)
                    try:
                        members = await self._link.call(Query.DB_NODES, limit)
                    except RpcError:
                        # A node without mnesia has no members to add.
                        members = []
                for query, reply in ((Query.DB_NODES, members), (Query.NODES, connected)):
                    groups.append(sorted(
                        name for name in reply_nodes(query, reply) if _is_node_name(name)
                    ))
            except TimeoutError:
                error = f"{node.name} did not list its peers in {limit:g}s"
            except (WireError, CookieUnavailable) as exc:
                error = f"cannot list {node.name}'s peers: {_reason(exc)}"
        own = node.name if node is not None else None
        ordered = dict.fromkeys(peer for group in groups for peer in group if peer != own)
        return list(ordered), error

    async def _probe_peer(self, peer: str, limit: asyncio.Semaphore) -> PeerOutcome:
        async with limit:
            return await self._probe_peer_now(peer)

    async def _probe_peer_now(self, peer: str) -> PeerOutcome:
        alive, host = split_node_name(peer)
        client = EpmdClient(host, self._settings.epmd_port, self._settings.timeout, self._open)
        ports: list[int] = []

        async def lookup() -> str:
            ports.append((await client.port_please2(alive)).port)
            return f"registered on port {ports[0]}"

        epmd = await self._timed(lookup())
        if not ports:
            failed = Outcome(False, 0.0, "not probed: the epmd lookup failed")
            return PeerOutcome(peer, {"epmd": epmd, "dist": failed, "auth": failed})
        dist, auth = await asyncio.gather(
            self._timed(self._tcp(host, ports[0])), self._timed(self._auth(peer)),
        )
        checks = {"epmd": epmd, "dist": dist}
        # Without a cookie the handshake says nothing about the peer: leave "auth" unknown.
        if auth.cause != "no_cookie":
            checks["auth"] = auth
        return PeerOutcome(peer, checks)

    async def _auth(self, peer: str) -> str:
        await self._link.check_peer(peer)
        return "accepts our cookie"

    def _registration_samples(self, node: NodeProcess, names: NamesReply) -> list[Sample]:
        port = names.nodes.get(split_node_name(node.name)[0])
        if port is None:
            return []
        samples = [Sample("mongooseim_dist_port", port)]
        if node.dist_port_range is not None:
            low, high = node.dist_port_range
            samples.append(Sample("mongooseim_dist_port_in_range", int(low <= port <= high)))
        return samples

    @staticmethod
    def _registration_check(node: NodeProcess, names: NamesReply) -> Check:
        port = names.nodes.get(split_node_name(node.name)[0])
        if port is None:
            return Check(
                "epmd_registration", Status.CRITICAL,
                f"{node.name} is running but not registered in epmd",
                hint="epmd was probably restarted under the node: nothing can connect to it "
                "(peers, mongooseimctl) until the node is restarted",
            )
        if node.dist_port_range is not None:
            low, high = node.dist_port_range
            if not low <= port <= high:
                return Check(
                    "epmd_registration", Status.WARNING,
                    f"{node.name} listens on {port}, outside its range {low}..{high}",
                    hint="firewalls opened for inet_dist_listen_min..max will block it: "
                    "check the -kernel inet_dist_listen_min/max arguments the node got",
                )
            return Check("epmd_registration", Status.OK,
                         f"{node.name} on port {port}, inside {low}..{high}")
        return Check("epmd_registration", Status.OK,
                     f"{node.name} on port {port} (no port range configured)")


async def _gather_dict(tasks: Mapping[str, Awaitable[T]]) -> dict[str, T]:
    values = await asyncio.gather(*tasks.values())
    return dict(zip(tasks, values, strict=True))


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return text or type(exc).__name__


def _probe_samples(name: str, target: str, outcome: Outcome) -> list[Sample]:
    labels = {"name": name, "target": target}
    return [
        Sample("mongooseim_probe_success", int(outcome.ok), labels),
        Sample("mongooseim_probe_duration_seconds", outcome.duration, labels),
    ]


def _listener_check(name: str, target: str, outcome: Outcome) -> Check:
    return Check(
        f"listener_{name}",
        Status.OK if outcome.ok else Status.CRITICAL,
        f"{name} listener {target}: {outcome.detail}",
        hint="" if outcome.ok else "MongooseIM is not accepting connections there: check the "
        "listener in mongooseim.toml, the log for emfile, and [probes] listeners",
        perfdata={f"listener_{name}": Perf(outcome.duration, "s", min=0)},
        affects_readiness=True,
    )


def _epmd_check(target: str, outcome: Outcome) -> Check:
    return Check(
        "epmd",
        Status.OK if outcome.ok else Status.CRITICAL,
        f"epmd at {target}: {outcome.detail}",
        hint="" if outcome.ok else "without epmd no node here can be reached (peers, "
        "mongooseimctl): start it (epmd -daemon) and restart the node so it registers again",
    )


def _is_node_name(name: str) -> bool:
    try:
        split_node_name(name)
    except ValueError:
        return False
    return len(name) <= 255


def _peers_check(
    peers: list[PeerOutcome], discovery_error: str | None, known: int, max_peers: int
) -> Check:
    capped = (
        f"; only {max_peers} of {known} known peers probed ([probes] max_peers)"
        if known > max_peers else ""
    )
    failures = [
        f"{outcome.peer} {check}: {result.detail}"
        for outcome in peers
        for check, result in outcome.checks.items()
        if not result.ok
    ]
    cookie = any(
        result.cause == "cookie_rejected" for outcome in peers for result in outcome.checks.values()
    )
    if failures:
        return Check(
            "cluster_peers", Status.CRITICAL,
            f"{len(failures)} failed peer checks: " + "; ".join(failures[:20])
            + ("; ..." if len(failures) > 20 else "") + capped,
            hint="every node must reach every other on epmd (4369) and the distribution "
            "port range, with the same cookie" + (
                "; a peer rejected our cookie: the cookies differ" if cookie else ""),
        )
    if discovery_error is not None:
        return Check("cluster_peers", Status.WARNING, discovery_error + capped,
                     hint="peers are then only those listed in [probes] peers")
    if capped:
        return Check("cluster_peers", Status.WARNING,
                     f"{len(peers)} peers reachable{capped}",
                     hint="raise [probes] max_peers if the cluster really is this large; a "
                     "node listing thousands of peers is broken or hostile")
    if not peers:
        return Check("cluster_peers", Status.OK, "no cluster peers known")
    return Check("cluster_peers", Status.OK,
                 f"{len(peers)} peers reachable: " + ", ".join(p.peer for p in peers))

