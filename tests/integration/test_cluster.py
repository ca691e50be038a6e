"""Cluster membership on a real 3-node mnesia cluster of stand-in nodes (real `erl`, disc
schema on all three, joined through the stand-in `mongooseimctl join_cluster`).

The nodes are shared by the tests of this module; each test leaves the cluster as it found
it, except the last, which takes it apart through leave_cluster and remove_from_cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from mongooseim_agent.collectors.cluster import ClusterCollector
from mongooseim_agent.collectors.probes import ProbesCollector
from mongooseim_agent.config import ClusterSection, ProbesSection
from mongooseim_agent.erlang.dist import DistSettings
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.membership import view_hash
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.nodelink import NodeLink
from mongooseim_agent.snapshot import Snapshot, Status
from tests.support.agentproc import AgentProcess, Series, value
from tests.support.mimnode import (
    MimNode,
    MimNodeSpec,
    form_cluster,
    free_port,
    random_cookie,
    start_nodes,
    stop_nodes,
    unique_sname,
)
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

# A deadline for what a loaded machine may take; the tests end as soon as it holds.
DEADLINE = 30.0


@dataclass
class Cluster:
    nodes: list[MimNode]
    cookie: str = dataclasses.field(repr=False)

    def names(self) -> list[str]:
        return sorted(n.node_name for n in self.nodes)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_binary("erl")
    root = tmp_path_factory.mktemp("cluster")
    cookie = random_cookie()
    nodes = [
        MimNode(MimNodeSpec(sname=unique_sname(f"mim{i}"), c2s_port=free_port(), cookie=cookie),
                root / f"node{i}")
        for i in range(3)
    ]
    start_nodes(nodes)
    try:
        form_cluster(nodes)
        yield Cluster(nodes, cookie)
    finally:
        stop_nodes(nodes)


def process_of(node: MimNode) -> NodeProcess:
    proc = psutil.Process(node.pid)
    ticks = int(Path(f"/proc/{node.pid}/stat").read_text().rpartition(")")[2].split()[19])
    return NodeProcess(pid=node.pid, name=node.node_name, longnames=False, uid=proc.uids().real,
                       start_ticks=ticks, release_root=node.rel_root)


class Watch:
    """The cluster and probes collectors of one agent watching `node`, in this process."""

    def __init__(self, node: MimNode, cookie: str, **cluster: object) -> None:
        self.node = node
        process = process_of(node)
        secret = Secret(cookie)
        self.link = NodeLink(lambda: process, settings=DistSettings(connect_timeout=2.0),
                             cookie=lambda _node, _path: secret)
        settings = {"interval": 5, "timeout": 2, "source": "dist", **cluster}
        self.cluster = ClusterCollector(ClusterSection(**settings),  # type: ignore[arg-type]
                                        self.link, release_root=lambda: node.rel_root)
        self.probes = ProbesCollector(ProbesSection(interval=5, timeout=1, listeners={}),
                                      self.link)

    async def close(self) -> None:
        await self.link.close()


@pytest.fixture
async def watches(cluster: Cluster) -> AsyncIterator[Callable[..., Watch]]:
    made: list[Watch] = []

    def make(node: MimNode, cookie: str | None = None, **settings: object) -> Watch:
        watch = Watch(node, cookie or cluster.cookie, **settings)
        made.append(watch)
        return watch

    yield make
    for watch in made:
        await watch.close()


def sample(snapshot: Snapshot, metric: str, **labels: str) -> float | None:
    for s in snapshot.samples:
        if s.metric == metric and dict(s.labels) == labels:
            return s.value
    return None


def samples_of(snapshot: Snapshot, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in snapshot.samples
            if s.metric == metric}


def check(snapshot: Snapshot, name: str) -> tuple[Status, str]:
    found = [c for c in snapshot.checks if c.name == name]
    assert len(found) == 1, [c.name for c in snapshot.checks]
    return found[0].status, found[0].summary


async def until(collect: Callable[[], object], predicate: Callable[[Snapshot], bool],
                limit: float = DEADLINE) -> Snapshot:
    """Collect until `predicate` holds (a node reacting to a change is not instant)."""
    deadline = time.monotonic() + limit
    while True:
        snapshot = await collect()  # type: ignore[misc]
        assert isinstance(snapshot, Snapshot)
        if predicate(snapshot) or time.monotonic() > deadline:
            return snapshot
        await asyncio.sleep(0.1)


def running_count(n: float) -> Callable[[Snapshot], bool]:
    return lambda s: sample(s, "mongooseim_cluster_running_nodes") == n


async def test_all_running(cluster: Cluster, watches: Callable[..., Watch]) -> None:
    """3/3 running, 0 stopped, seen the same by every node's agent; peers all reachable."""
    views = set()
    for node in cluster.nodes:
        watch = watches(node, min_running_members=3)
        snapshot = await watch.cluster.collect()
        assert sample(snapshot, "mongooseim_cluster_db_nodes") == 3
        assert sample(snapshot, "mongooseim_cluster_running_nodes") == 3
        assert sample(snapshot, "mongooseim_cluster_stopped_nodes") == 0
        assert sample(snapshot, "mongooseim_cluster_partitioned") == 0
        assert sample(snapshot, "mongooseim_cluster_source_info", source="dist") == 1
        running = samples_of(snapshot, "mongooseim_cluster_node_running")
        assert running == {(("member", name),): 1 for name in cluster.names()}
        connected = samples_of(snapshot, "mongooseim_cluster_member_connected")
        assert connected == {(("member", name),): 1 for name in cluster.names()
                             if name != node.node_name}
        views |= {labels for labels in samples_of(snapshot, "mongooseim_cluster_view_info")}
        for name in ("cluster_mnesia", "cluster_partition", "cluster_members"):
            assert check(snapshot, name)[0] is Status.OK, check(snapshot, name)
        probes = await watch.probes.collect()
        peers = samples_of(probes, "mongooseim_cluster_peer_up")
        assert len(peers) == 2 * 3 and set(peers.values()) == {1}
    assert views == {(("view", view_hash(cluster.names())),)}


async def test_ctl_source_reads_the_real_mnesia_info(
    cluster: Cluster, watches: Callable[..., Watch]
) -> None:
    """`mongooseimctl mnesia info` prints the node's real mnesia:info(): the ctl source reads
    the same membership from it as distribution does."""
    node = cluster.nodes[0]
    printed = node.ctl("mnesia", "info").stdout
    assert "running db nodes   = [" in printed
    # Each run starts a fresh erl_call: retried under a deadline on a loaded machine.
    by_ctl = await until(watches(node, source="ctl").cluster.collect,
                         lambda s: check(s, "cluster_source")[0] is Status.OK)
    assert sample(by_ctl, "mongooseim_cluster_source_info", source="ctl") == 1, \
        check(by_ctl, "cluster_source")
    assert sample(by_ctl, "mongooseim_cluster_running_nodes") == 3
    assert sample(by_ctl, "mongooseim_cluster_db_nodes") == 3
    assert samples_of(by_ctl, "mongooseim_cluster_view_info") == {
        (("view", view_hash(cluster.names())),): 1}


async def test_stopped_node_then_wrong_cookie(
    cluster: Cluster, watches: Callable[..., Watch]
) -> None:
    """One member stopped: counted, node_running 0, its peer probes fail. Restarted with
    another cookie: it cannot rejoin, its handshake fails (auth 0) and the others still see
    the membership right. Restarted with the right cookie: back to 3/3."""
    first, _, third = cluster.nodes
    gone = third.node_name
    watch = watches(first, min_running_members=3)
    third.stop()
    try:
        stopped = await until(watch.cluster.collect, running_count(2))
        assert sample(stopped, "mongooseim_cluster_db_nodes") == 3
        assert sample(stopped, "mongooseim_cluster_stopped_nodes") == 1
        assert sample(stopped, "mongooseim_cluster_node_running", member=gone) == 0
        assert sample(stopped, "mongooseim_cluster_member_connected", member=gone) == 0
        assert sample(stopped, "mongooseim_cluster_partitioned") == 0
        status, summary = check(stopped, "cluster_members")
        assert status is Status.CRITICAL and gone in summary
        probes = await watch.probes.collect()
        # Stopped, it is in neither nodes() nor epmd: known only as a mnesia member.
        for kind in ("epmd", "dist", "auth"):
            assert sample(probes, "mongooseim_cluster_peer_up", peer=gone, check=kind) == 0

        other_cookie = MimNode(dataclasses.replace(third.spec, cookie=random_cookie()),
                               third.rel_root)
        other_cookie.start()
        try:
            probes = await until(
                watch.probes.collect,
                lambda s: sample(s, "mongooseim_cluster_peer_up", peer=gone, check="dist") == 1)
            assert sample(probes, "mongooseim_cluster_peer_up", peer=gone, check="epmd") == 1
            assert sample(probes, "mongooseim_cluster_peer_up", peer=gone, check="auth") == 0
            status, summary = check(probes, "cluster_peers")
            assert status is Status.CRITICAL and f"{gone} auth" in summary
            for node in cluster.nodes[:2]:
                seen = await watches(node).cluster.collect()
                assert sample(seen, "mongooseim_cluster_running_nodes") == 2
                assert sample(seen, "mongooseim_cluster_node_running", member=gone) == 0
            assert other_cookie.spec.cookie is not None
            alone = await watches(other_cookie, other_cookie.spec.cookie).cluster.collect()
            assert sample(alone, "mongooseim_cluster_running_nodes") == 1
            assert sample(alone, "mongooseim_cluster_db_nodes") == 3
        finally:
            other_cookie.stop()
    finally:
        third.start()
    healed = await until(watch.cluster.collect, running_count(3))
    assert sample(healed, "mongooseim_cluster_node_running", member=gone) == 1


def _cluster_config(tmp: Path, node: MimNode, interval: float) -> Path:
    config = tmp / "agent.toml"
    cookie_file = tmp / "cookie"
    cookie_file.write_text(node.spec.cookie or "")
    cookie_file.chmod(0o600)
    config.write_text(
        f'[agent]\nstate_dir = "{tmp / "state"}"\n'
        f'[node]\nname = "{node.node_name}"\ncookie_file = "{cookie_file}"\n'
        f'[probes]\ninterval = "{interval}s"\ntimeout = "0.5s"\nlisteners = {{}}\n'
        f'[cluster]\ninterval = "{interval}s"\ntimeout = "0.8s"\nsource = "dist"\n'
        f'[logs]\npaths = ["{node.log_dir}/mongooseim.log.*"]\n'
    )
    return config


def _poll(agent: AgentProcess, predicate: Callable[[Series], bool]) -> tuple[Series, float]:
    start = time.monotonic()
    series = agent.poll_metrics(predicate, timeout=DEADLINE)
    return series, time.monotonic() - start


def test_leave_and_remove_through_ctl(cluster: Cluster, tmp_path: Path) -> None:
    """`leave_cluster` on one node and `remove_from_cluster` of a stopped one, both through
    the stand-in mongooseimctl, show on the agent's /metrics within one collection interval;
    the stopped member's peer series read 0 until it is removed, then go."""
    first, second, third = cluster.nodes
    interval = 2.0
    agent = AgentProcess(_cluster_config(tmp_path, first, interval))
    try:
        _poll(agent, lambda s: value(s, "mongooseim_cluster_running_nodes") == 3)
        left = third.ctl("leave_cluster", "-f")
        assert left.returncode == 0, left.stdout
        series, took = _poll(agent, lambda s: value(s, "mongooseim_cluster_db_nodes") == 2)
        print(f"leave_cluster on /metrics after {took:.2f}s (interval {interval}s)")
        assert value(series, "mongooseim_cluster_db_nodes") == 2
        assert took <= interval + 1.0
        assert value(series, "mongooseim_cluster_expected_node_present",
                     member=third.node_name) == 0

        second.stop()
        series, _ = _poll(agent, lambda s: value(
            s, "mongooseim_cluster_peer_up", peer=second.node_name, check="epmd") == 0)
        assert value(series, "mongooseim_cluster_stopped_nodes") == 1
        removed = first.ctl("remove_from_cluster", "-f", second.node_name)
        assert removed.returncode == 0, removed.stdout
        series, took = _poll(agent, lambda s: value(s, "mongooseim_cluster_db_nodes") == 1)
        print(f"remove_from_cluster on /metrics after {took:.2f}s (interval {interval}s)")
        assert value(series, "mongooseim_cluster_db_nodes") == 1
        assert value(series, "mongooseim_cluster_stopped_nodes") == 0
        assert took <= interval + 1.0
        series, _ = _poll(agent, lambda s: value(
            s, "mongooseim_cluster_peer_up", peer=second.node_name, check="epmd") is None)
        assert value(series, "mongooseim_cluster_peer_up", peer=second.node_name,
                     check="epmd") is None
    finally:
        agent.stop()
