"""Issue 13 item 8: a node claiming 3000 peers whose epmd never answers. Real sockets: every
peer lookup goes to a real listener on loopback that accepts and never replies; the peer list
comes from a stand-in for the node's nodes() reply (the hostile part)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from mongooseim_agent.collectors.probes import ProbesCollector
from mongooseim_agent.config import ProbesSection
from mongooseim_agent.erlang.connection import Query
from mongooseim_agent.erlang.etf import Atom, Term
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.secret import Secret
from mongooseim_agent.snapshot import Status

pytestmark = pytest.mark.integration

NODE = NodeProcess(pid=1, name="mongooseim@127.0.0.1", longnames=True, uid=0, start_ticks=0)


class HostileNode:
    """NodeLink's surface: nodes() lists 3000 peers plus junk; no mnesia."""

    def __init__(self, peers: list[str]) -> None:
        self.peers = peers

    def node(self) -> NodeProcess:
        return NODE

    async def call(self, query: Query, time_limit: float) -> Term:
        if query is Query.NODES:
            return [Atom(p) for p in self.peers]
        return [Atom(NODE.name)]

    async def check_peer(self, peer: str, *, address: str | None = None) -> None:
        await asyncio.sleep(3600)

    async def cookie(self) -> Secret:
        return Secret("unused")


class Blackhole:
    """Accepts every connection and never answers; counts how many it holds at once."""

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.total = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.total += 1
        self.peak = max(self.peak, self.open)
        try:
            await reader.read()
        finally:
            self.open -= 1
            writer.close()


@pytest.fixture
async def blackhole() -> AsyncIterator[tuple[Blackhole, int]]:
    hole = Blackhole()
    server = await asyncio.start_server(hole.handle, "127.0.0.1", 0)
    yield hole, server.sockets[0].getsockname()[1]
    server.close()


async def test_peer_cap_and_concurrency(blackhole: tuple[Blackhole, int]) -> None:
    """3000 peers: 64 probed, at most 8 at once, the run ends inside its timeout, the
    cap is reported, and /metrics carries 3 series per probed peer only."""
    hole, port = blackhole
    peers = [f"p{i}@127.0.0.1" for i in range(3000)] + ["junk", "a@b@c", "x" * 300 + "@h"]
    settings = ProbesSection(interval=10, timeout=0.3, epmd_port=port, listeners={},
                             max_peers=64, max_concurrency=8)
    collector = ProbesCollector(settings, HostileNode(peers))  # type: ignore[arg-type]
    start = time.monotonic()
    snapshot = await asyncio.wait_for(collector.collect(), collector.timeout)
    took = time.monotonic() - start
    print(f"3000 peers: {took:.2f}s, {hole.total} connections, peak {hole.peak} at once")
    assert took < collector.timeout
    # The local epmd probe goes to the same listener: one connection beyond the peers' cap.
    assert hole.peak <= 8 + 1
    assert hole.total == 64 + 1
    peer_series = [s for s in snapshot.samples if s.metric == "mongooseim_cluster_peer_up"]
    assert len(peer_series) == 64 * 3
    assert all(s.value == 0 for s in peer_series)
    known = {s.metric: s.value for s in snapshot.samples if "peers_" in s.metric}
    assert known == {"mongooseim_cluster_peers_known": 3000,
                     "mongooseim_cluster_peers_probed": 64}
    peers_check = next(c for c in snapshot.checks if c.name == "cluster_peers")
    assert peers_check.status is Status.CRITICAL
    assert "only 64 of 3000 known peers probed" in peers_check.summary
    assert len(peers_check.summary) < 4000
