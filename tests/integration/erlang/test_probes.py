"""The probes collector against a real cluster, real listeners, and the faults of the issue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mongooseim_agent.collectors.probes import METRICS, ProbesCollector
from mongooseim_agent.config import ProbesSection
from mongooseim_agent.erlang.cookie import CookieUnavailable
from mongooseim_agent.erlang.dist import DistSettings
from mongooseim_agent.erlang.errors import CookieRejected, WireError
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.nodelink import NodeLink
from mongooseim_agent.snapshot import Snapshot, Status
from tests.integration.erlang.erlnodes import (
    Epmd,
    ErlNode,
    assert_not_leaked,
    free_port,
    frozen,
    unique,
)

pytestmark = pytest.mark.integration

# What a probe that gets an answer may take: the first handshake and RPC to a node on a loaded
# 2-core machine can take seconds (0.5 s lost node_a's nodes() listing, and with it node_a2).
# Probes meant to stall (a frozen epmd or peer) use STALL_TIMEOUT instead.
PROBE_TIMEOUT = 10.0
STALL_TIMEOUT = 0.5


def values(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.metric, tuple(sorted(s.labels.items()))): s.value for s in snapshot.samples}


def value(snapshot: Snapshot, metric: str, **labels: str) -> float | None:
    return values(snapshot).get((metric, tuple(sorted(labels.items()))))


def check(snapshot: Snapshot, name: str) -> tuple[Status, str, str]:
    found = [c for c in snapshot.checks if c.name == name]
    assert len(found) == 1, [c.name for c in snapshot.checks]
    return found[0].status, found[0].summary, found[0].hint


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    """A real listening socket standing in for the c2s listener."""

    async def serve(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def link_for(node: NodeProcess | None, epmd_port: int, timeout: float = PROBE_TIMEOUT,
             **kwargs: object) -> NodeLink:
    return NodeLink(lambda: node,
                    settings=DistSettings(epmd_port=epmd_port, connect_timeout=timeout),
                    **kwargs)  # type: ignore[arg-type]


def section(epmd_port: int, listeners: dict[str, str], peers: tuple[str, ...] = (),
            timeout: float = PROBE_TIMEOUT) -> ProbesSection:
    return ProbesSection(interval=30, timeout=timeout, epmd_port=epmd_port,
                         listeners=listeners, peers=peers)


async def collect_in_time(collector: ProbesCollector) -> Snapshot:
    start = time.monotonic()
    snapshot = await asyncio.wait_for(collector.collect(), collector.timeout)
    assert time.monotonic() - start < collector.timeout
    return snapshot


async def test_cluster_view(
    epmd: Epmd, node_a: ErlNode, node_a2: ErlNode, node_c: ErlNode, listener: int
) -> None:
    """Listeners, epmd, the dist port in its range, and each peer's epmd/dist/auth state."""
    host = node_a.name.split("@")[1]
    gone = f"{unique('gone')}@{host}"
    closed = free_port()
    link = link_for(node_a.process(), epmd.port)
    collector = ProbesCollector(
        section(epmd.port, {"c2s": f"127.0.0.1:{listener}", "s2s": f"127.0.0.1:{closed}"},
                peers=(node_c.name, gone)),
        link,
    )
    try:
        snapshot = await collect_in_time(collector)
    finally:
        await link.close()
    assert {s.metric for s in snapshot.samples} == {m.name for m in METRICS}
    assert value(snapshot, "mongooseim_probe_success", name="c2s",
                 target=f"127.0.0.1:{listener}") == 1
    assert value(snapshot, "mongooseim_probe_success", name="s2s",
                 target=f"127.0.0.1:{closed}") == 0
    assert check(snapshot, "listener_s2s")[0] is Status.CRITICAL
    assert value(snapshot, "mongooseim_epmd_up") == 1
    assert node_a.spec.dist_range is not None
    assert value(snapshot, "mongooseim_dist_port") == node_a.spec.dist_range[0]
    assert value(snapshot, "mongooseim_dist_port_in_range") == 1
    assert value(snapshot, "mongooseim_probe_success", name="dist", target=node_a.name) == 1
    # node_a2 comes from nodes() on node_a; node_c and the gone node from the config.
    for peer, expected in [
        (node_a2.name, {"epmd": 1, "dist": 1, "auth": 1}),
        (node_c.name, {"epmd": 1, "dist": 1, "auth": 0}),
        (gone, {"epmd": 0, "dist": 0, "auth": 0}),
    ]:
        for kind, up in expected.items():
            assert value(snapshot, "mongooseim_cluster_peer_up", peer=peer, check=kind) == up, \
                (peer, kind)
    status, summary, hint = check(snapshot, "cluster_peers")
    assert status is Status.CRITICAL
    assert f"{node_c.name} auth" in summary
    assert "cookie" in hint
    assert node_a2.name not in summary
    assert_not_leaked([f"{c.summary} {c.hint}" for c in snapshot.checks],
                      node_a.spec.cookie, node_c.spec.cookie)


async def test_no_range_no_in_range_sample(epmd: Epmd, node_a: ErlNode, node_a2: ErlNode,
                                           listener: int) -> None:
    """A node without inet_dist_listen_min/max gets a dist port but no in-range sample."""
    link = link_for(node_a2.process(), epmd.port)
    collector = ProbesCollector(section(epmd.port, {"c2s": f"127.0.0.1:{listener}"}), link)
    try:
        snapshot = await collect_in_time(collector)
    finally:
        await link.close()
    assert value(snapshot, "mongooseim_dist_port") is not None
    assert not [s for s in snapshot.samples if s.metric == "mongooseim_dist_port_in_range"]
    assert value(snapshot, "mongooseim_cluster_peer_up", peer=node_a.name, check="auth") == 1
    assert check(snapshot, "cluster_peers")[0] is Status.OK


async def test_dist_port_outside_range(epmd: Epmd, node_a: ErlNode, listener: int) -> None:
    """A configured range the node does not actually use shows as 0 and a warning."""
    real = node_a.process()
    assert real.dist_port_range is not None
    port = real.dist_port_range[0]
    claimed = NodeProcess(pid=real.pid, name=real.name, longnames=False, uid=real.uid,
                          start_ticks=0, cookie=real.cookie, dist_port_range=(port + 1, port + 2))
    link = link_for(claimed, epmd.port)
    collector = ProbesCollector(section(epmd.port, {}), link)
    try:
        snapshot = await collect_in_time(collector)
    finally:
        await link.close()
    assert value(snapshot, "mongooseim_dist_port_in_range") == 0
    assert check(snapshot, "epmd_registration")[0] is Status.WARNING


async def test_epmd_not_running(node_a: ErlNode, node_a2: ErlNode, listener: int) -> None:
    """No epmd: epmd_up 0 and a critical check, listeners still probed, all within time."""
    port = free_port()
    link = link_for(node_a.process(), port)
    collector = ProbesCollector(
        section(port, {"c2s": f"127.0.0.1:{listener}"}, peers=(node_a2.name,)), link)
    try:
        snapshot = await collect_in_time(collector)
    finally:
        await link.close()
    assert value(snapshot, "mongooseim_epmd_up") == 0
    assert check(snapshot, "epmd")[0] is Status.CRITICAL
    assert value(snapshot, "mongooseim_probe_success", name="c2s",
                 target=f"127.0.0.1:{listener}") == 1
    assert value(snapshot, "mongooseim_dist_port") is None
    for kind in ("epmd", "dist", "auth"):
        assert value(snapshot, "mongooseim_cluster_peer_up", peer=node_a2.name, check=kind) == 0
    status, summary, _ = check(snapshot, "cluster_peers")
    assert status is Status.CRITICAL
    assert f"{node_a2.name} epmd" in summary


async def test_frozen_epmd_and_frozen_peer(epmd: Epmd, node_a: ErlNode, fresh_node: ErlNode,
                                           erl_workdir: Path) -> None:
    """Ports that accept and never answer: a wedged epmd, a wedged peer VM. Each probe
    ends at its timeout with the right state, and the next run sees them recovered."""
    wedged_epmd = Epmd(erl_workdir)
    # While frozen the probes stall (a short timeout); after the thaw they must get answers,
    # which on a loaded machine takes the generous one.
    links = [link_for(node_a.process(), wedged_epmd.port, STALL_TIMEOUT),
             link_for(node_a.process(), epmd.port, STALL_TIMEOUT),
             link_for(node_a.process(), wedged_epmd.port),
             link_for(node_a.process(), epmd.port)]
    wedged = ProbesCollector(section(wedged_epmd.port, {}, timeout=STALL_TIMEOUT), links[0])
    cluster = ProbesCollector(section(epmd.port, {}, peers=(fresh_node.name,),
                                      timeout=STALL_TIMEOUT), links[1])
    thawed_epmd = ProbesCollector(section(wedged_epmd.port, {}), links[2])
    thawed = ProbesCollector(section(epmd.port, {}, peers=(fresh_node.name,)), links[3])
    try:
        with frozen(wedged_epmd.pid), frozen(fresh_node.pid):
            during_epmd = await collect_in_time(wedged)
            during_peer = await collect_in_time(cluster)
        after = await collect_in_time(thawed)
        after_epmd = await collect_in_time(thawed_epmd)
    finally:
        for link in links:
            await link.close()
        wedged_epmd.stop()
    assert value(during_epmd, "mongooseim_epmd_up") == 0
    assert "no answer" in check(during_epmd, "epmd")[1]
    assert value(after_epmd, "mongooseim_epmd_up") == 1
    peer = fresh_node.name
    # epmd answers for the frozen node; the kernel accepts TCP for it; the handshake stalls.
    assert value(during_peer, "mongooseim_cluster_peer_up", peer=peer, check="epmd") == 1
    assert value(during_peer, "mongooseim_cluster_peer_up", peer=peer, check="dist") == 1
    assert value(during_peer, "mongooseim_cluster_peer_up", peer=peer, check="auth") == 0
    assert "no answer in" in check(during_peer, "cluster_peers")[1]
    assert value(after, "mongooseim_cluster_peer_up", peer=peer, check="auth") == 1


async def test_no_node_and_no_cookie(epmd: Epmd, node_a: ErlNode, listener: int) -> None:
    """Without a discovered node: listeners and epmd only; unknown cookie: no auth sample."""

    def no_cookie(node: NodeProcess | None, path: Path | None) -> Secret:
        raise CookieUnavailable("no cookie configured")

    collector = ProbesCollector(
        section(epmd.port, {"c2s": f"127.0.0.1:{listener}"}, peers=(node_a.name,)),
        link_for(None, epmd.port, cookie=no_cookie),
    )
    snapshot = await collect_in_time(collector)
    assert value(snapshot, "mongooseim_epmd_up") == 1
    assert not [s for s in snapshot.samples if s.metric == "mongooseim_dist_port"]
    assert value(snapshot, "mongooseim_cluster_peer_up", peer=node_a.name, check="dist") == 1
    assert value(snapshot, "mongooseim_cluster_peer_up", peer=node_a.name, check="auth") is None
    assert {c.name for c in snapshot.checks} == {"listener_c2s", "epmd", "cluster_peers"}


async def test_concurrent_peer_checks_all_see_the_cookie_rejection(
    epmd: Epmd, node_a: ErlNode, node_c: ErlNode
) -> None:
    """The probes and the audit check the same peers at the same moment (at start-up, on
    every aligned run): each must read node_c's verdict on our cookie, a rejection. Without
    one handshake per peer at a time, node_c dropped the later attempts before its challenge
    and the audit reported the peer as unreachable instead of its cookie as wrong."""
    link = link_for(node_a.process(), epmd.port)

    async def verdict() -> str:
        try:
            await link.check_peer(node_c.name)
        except CookieRejected:
            return "rejected"
        except WireError as exc:
            return f"{type(exc).__name__}: {exc}"
        return "accepted"

    try:
        for _ in range(3):
            assert await asyncio.gather(*(verdict() for _ in range(4))) == ["rejected"] * 4
    finally:
        await link.close()
    assert link._peer_turns == {}  # nothing kept per peer once done
