"""The cluster collector's metrics and checks from given answers (real nodes are in the
integration tests): counts, per-member series, views, partitions, sources, CETS."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mongooseim_agent.collectors.cluster import ClusterCollector
from mongooseim_agent.config import ClusterSection
from mongooseim_agent.erlang.connection import Query
from mongooseim_agent.erlang.errors import DistUnreachable, RpcError
from mongooseim_agent.erlang.etf import Atom, Term
from mongooseim_agent.mongooseim.ctl import CtlResult
from mongooseim_agent.mongooseim.membership import view_hash
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.snapshot import Snapshot, Status

OWN = "mim@a"
NODE = NodeProcess(pid=1, name=OWN, longnames=False, uid=0, start_ticks=0)


def atoms(*names: str) -> list[Term]:
    return [Atom(n) for n in names]


class Node:
    """Answers the allow-listed queries from a table: stands in for NodeLink."""

    def __init__(self, db: Sequence[str], running: Sequence[str], connected: Sequence[str],
                 is_running: str = "yes", cets: Term | None = None) -> None:
        self.answers: dict[Query, Term] = {
            Query.MNESIA_IS_RUNNING: Atom(is_running),
            Query.DB_NODES: atoms(*db),
            Query.RUNNING_DB_NODES: atoms(*running),
            Query.NODES: atoms(*connected),
        }
        self.cets = cets
        self.down = False
        self.calls: list[Query] = []

    def node(self) -> NodeProcess:
        return NODE

    async def call(self, query: Query, time_limit: float) -> Term:
        self.calls.append(query)
        if self.down:
            raise DistUnreachable("connection refused")
        if query is Query.CETS_STATUS:
            if self.cets is None:
                raise RpcError("badrpc {'EXIT',{undef,...}}")
            return self.cets
        return self.answers[query]


def collector(node: Node, **settings: object) -> ClusterCollector:
    return ClusterCollector(ClusterSection(**settings), node)  # type: ignore[arg-type]


def value(snapshot: Snapshot, metric: str, **labels: str) -> float | None:
    for sample in snapshot.samples:
        if sample.metric == metric and dict(sample.labels) == labels:
            return sample.value
    return None


def series(snapshot: Snapshot, metric: str) -> dict[str, float]:
    return {next(iter(s.labels.values()), ""): s.value for s in snapshot.samples
            if s.metric == metric}


def check(snapshot: Snapshot, name: str) -> tuple[Status, str, bool]:
    found = [c for c in snapshot.checks if c.name == name]
    assert len(found) == 1, [c.name for c in snapshot.checks]
    return found[0].status, found[0].summary, found[0].affects_readiness


async def test_all_running() -> None:
    """3/3 running: counts, per-member 1s, one view, not partitioned, checks OK."""
    node = Node(["mim@a", "mim@b", "mim@c"], ["mim@a", "mim@b", "mim@c"], ["mim@b", "mim@c"])
    snapshot = await collector(node).collect()
    assert value(snapshot, "mongooseim_cluster_db_nodes") == 3
    assert value(snapshot, "mongooseim_cluster_running_nodes") == 3
    assert value(snapshot, "mongooseim_cluster_stopped_nodes") == 0
    assert series(snapshot, "mongooseim_cluster_node_running") == {
        "mim@a": 1, "mim@b": 1, "mim@c": 1}
    assert series(snapshot, "mongooseim_cluster_member_connected") == {"mim@b": 1, "mim@c": 1}
    assert value(snapshot, "mongooseim_cluster_view_info",
                 view=view_hash(["mim@a", "mim@b", "mim@c"])) == 1
    assert value(snapshot, "mongooseim_cluster_partitioned") == 0
    assert value(snapshot, "mongooseim_cluster_source_info", source="dist") == 1
    assert not series(snapshot, "mongooseim_cets_nodes")
    for name in ("cluster_mnesia", "cluster_partition", "cluster_members"):
        status, _, readiness = check(snapshot, name)
        assert status is Status.OK and readiness, name
    assert "dist" in check(snapshot, "cluster_source")[1]


async def test_member_stops_and_stays_expected() -> None:
    """A stopped member reads 0; once removed from db_nodes it stays expected (seen since
    start) and reads 0 there; a configured expected list replaces that."""
    node = Node(["mim@a", "mim@b", "mim@c"], ["mim@a", "mim@b", "mim@c"], ["mim@b", "mim@c"])
    cluster = collector(node, min_running_members=3)
    await cluster.collect()
    node.answers[Query.RUNNING_DB_NODES] = atoms("mim@a", "mim@b")
    node.answers[Query.NODES] = atoms("mim@b")
    stopped = await cluster.collect()
    assert value(stopped, "mongooseim_cluster_stopped_nodes") == 1
    assert value(stopped, "mongooseim_cluster_node_running", member="mim@c") == 0
    assert value(stopped, "mongooseim_cluster_member_connected", member="mim@c") == 0
    assert value(stopped, "mongooseim_cluster_partitioned") == 0
    status, summary, readiness = check(stopped, "cluster_members")
    assert status is Status.CRITICAL and readiness and "mim@c" in summary
    node.answers[Query.DB_NODES] = atoms("mim@a", "mim@b")
    removed = await cluster.collect()
    assert value(removed, "mongooseim_cluster_db_nodes") == 2
    assert value(removed, "mongooseim_cluster_expected_node_present", member="mim@c") == 0
    configured = collector(node, expected_members=("mim@a", "mim@z"))
    snapshot = await configured.collect()
    assert series(snapshot, "mongooseim_cluster_expected_node_present") == {
        "mim@a": 1, "mim@z": 0}
    assert check(snapshot, "cluster_members")[0] is Status.WARNING


async def test_partition_is_flagged_on_the_second_run() -> None:
    """Connected but missing from running_db_nodes: 0 on first sight (a peer may be starting
    mnesia), 1 and a critical readiness check when it persists."""
    node = Node(["mim@a", "mim@b", "mim@c"], ["mim@a", "mim@b"], ["mim@b", "mim@c"])
    cluster = collector(node)
    first = await cluster.collect()
    assert value(first, "mongooseim_cluster_partitioned") == 0
    assert "mim@c" in check(first, "cluster_partition")[1]
    second = await cluster.collect()
    assert value(second, "mongooseim_cluster_partitioned") == 1
    status, summary, readiness = check(second, "cluster_partition")
    assert status is Status.CRITICAL and readiness and "mim@c" in summary
    node.answers[Query.RUNNING_DB_NODES] = atoms("mim@a", "mim@b", "mim@c")
    healed = await cluster.collect()
    assert value(healed, "mongooseim_cluster_partitioned") == 0


async def test_mnesia_not_running() -> None:
    """is_running = no: a critical readiness check."""
    node = Node(["mim@a"], [], [], is_running="no")
    snapshot = await collector(node).collect()
    status, summary, readiness = check(snapshot, "cluster_mnesia")
    assert status is Status.CRITICAL and readiness and "no" in summary


CETS = {
    Atom("available_nodes"): atoms("mim@a", "mim@b"),
    Atom("unavailable_nodes"): [],
    Atom("joined_nodes"): atoms("mim@a", "mim@b"),
    Atom("discovered_nodes"): atoms("mim@a", "mim@b"),
    Atom("remote_nodes_without_disco"): [],
    Atom("remote_nodes_with_unknown_tables"): [],
    Atom("remote_nodes_with_missing_tables"): [],
    Atom("conflict_nodes"): [],
    Atom("conflict_tables"): [],
    Atom("discovery_works"): Atom("true"),
}


async def test_cets_only_node() -> None:
    """A CETS-only node runs no mnesia: not a fault; members and view come from CETS."""
    node = Node(["mim@a"], [], ["mim@b"], is_running="no", cets=CETS)
    snapshot = await collector(node, min_running_members=2).collect()
    assert series(snapshot, "mongooseim_cets_nodes") == {
        "joined": 2, "available": 2, "unavailable": 0, "discovered": 2, "conflict": 0,
        "without_disco": 0}
    assert value(snapshot, "mongooseim_cets_discovery_works") == 1
    assert value(snapshot, "mongooseim_cluster_db_nodes") is None
    assert series(snapshot, "mongooseim_cluster_node_running") == {"mim@a": 1, "mim@b": 1}
    assert check(snapshot, "cluster_mnesia")[0] is Status.OK
    assert check(snapshot, "cluster_members")[0] is Status.OK
    assert check(snapshot, "cluster_cets")[0] is Status.OK
    assert Query.CETS_STATUS in node.calls


async def test_auto_falls_back_to_ctl_and_says_so(tmp_path: Path) -> None:
    """dist refused: auto answers through mongooseimctl; source_info and the check say so;
    the ctl form that worked (6.x systemInfo after Unknown command) is remembered."""
    ctl = tmp_path / "mongooseimctl"
    ctl.write_text("#!/bin/sh\n")
    ctl.chmod(0o755)
    runs: list[tuple[str, ...]] = []

    async def run(argv: Sequence[str], time_limit: float) -> CtlResult:
        runs.append(tuple(argv[1:3]))
        if argv[2] == "info":
            return CtlResult(1, "Unknown command 'info'\n")
        return CtlResult(0, '{"data":{"mnesia":{"systemInfo":['
                            '{"key":"db_nodes","result":["mim@a","mim@b"]},'
                            '{"key":"running_db_nodes","result":["mim@a","mim@b"]},'
                            '{"key":"is_running","result":"yes"}]}}}')

    node = Node([], [], [])
    node.down = True
    cluster = ClusterCollector(ClusterSection(ctl_path=ctl), node,  # type: ignore[arg-type]
                               run_ctl=run)
    first = await cluster.collect()
    assert value(first, "mongooseim_cluster_source_info", source="ctl") == 1
    assert value(first, "mongooseim_cluster_running_nodes") == 2
    status, summary, _ = check(first, "cluster_source")
    assert status is Status.OK and "ctl" in summary and "dist: connection refused" in summary
    # Without nodes() the partition cannot be judged: unknown, and no partitioned sample.
    assert check(first, "cluster_partition")[0] is Status.UNKNOWN
    assert value(first, "mongooseim_cluster_partitioned") is None
    runs.clear()
    await cluster.collect()
    assert runs == [("mnesia", "systemInfo")]


async def test_no_source_answers() -> None:
    """Nothing answered: a critical cluster_source naming each failure, membership unknown."""
    node = Node([], [], [])
    node.down = True
    snapshot = await collector(node, source="dist").collect()
    assert snapshot.samples == ()
    status, summary, _ = check(snapshot, "cluster_source")
    assert status is Status.CRITICAL and "dist: connection refused" in summary
    assert check(snapshot, "cluster_members")[0] is Status.UNKNOWN


async def test_hostile_node_names_are_refused() -> None:
    """A reply with a name that is not a node name never becomes a label."""
    node = Node(["mim@a", 'x"}\n'], ["mim@a"], [])
    snapshot = await collector(node, source="dist").collect()
    assert snapshot.samples == ()
    assert "not a node name" in check(snapshot, "cluster_source")[1]
