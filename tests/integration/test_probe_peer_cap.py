"""Issue 13 item 8: 3000 peers whose epmd never answers. Real sockets: every peer lookup goes
to a real listener on loopback that accepts and never replies. In the collector test the
peer list comes from a stand-in for the node's nodes() reply (the hostile part); in the agent
test from [probes] peers, which goes through the same cap."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from mongooseim_agent.collectors.probes import ProbesCollector
from mongooseim_agent.config import ProbesSection
from mongooseim_agent.erlang.connection import Query
from mongooseim_agent.erlang.etf import Atom, Term
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.snapshot import Status
from tests.support.agentproc import AgentProcess, value

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


class BlackholeThread:
    """The same never-answering listener, on its own thread, for a real agent process."""

    def __init__(self) -> None:
        self.hole = Blackhole()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            server = await asyncio.start_server(self.hole.handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await asyncio.Event().wait()

        with contextlib.suppress(RuntimeError):
            self._loop.run_until_complete(serve())

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def footprint(pid: int) -> tuple[int, float, int]:
    proc = psutil.Process(pid)
    return proc.num_fds(), proc.memory_info().rss / 1e6, proc.num_threads()


def test_agent_under_a_peer_flood(tmp_path: Path) -> None:
    """The real agent told of 3000 peers whose epmd never answers: 64 probed at most 8 at a
    time, its fds stay flat, /metrics stays small and /node/ready answers fast meanwhile."""
    hole = BlackholeThread()
    peers = ", ".join(f'"p{i}@127.0.0.1"' for i in range(3000))
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
        '[node]\nname = "nonexistent_peerflood@localhost"\n'
        f'[probes]\ninterval = "2s"\ntimeout = "0.3s"\nepmd_port = {hole.port}\n'
        f"max_concurrency = 8\nlisteners = {{}}\npeers = [{peers}]\n"
    )
    agent = AgentProcess(config)
    try:
        series = agent.poll_metrics(
            lambda s: value(s, "mongooseim_cluster_peers_probed") == 64, timeout=30)
        assert value(series, "mongooseim_cluster_peers_known") == 3000
        before = footprint(agent.proc.pid)
        ready = poll(agent.port, "/node/ready", pollers=5, seconds=5.0)
        # Reference in the same run: the agent's cheapest page, so that a loaded test
        # machine does not pass for the attack's effect.
        healthy = poll(agent.port, "/-/healthy", pollers=5, seconds=3.0)
        after = footprint(agent.proc.pid)
        _, _, text = agent.get("/metrics")
        p99, ref = p99_of(ready), p99_of(healthy)
        print(f"peer flood: fds/RSS MB/threads before {before}, after {after}; /node/ready "
              f"p99 {p99 * 1e3:.1f} ms over {len(ready)} polls (/-/healthy p99 "
              f"{ref * 1e3:.1f} ms); peak {hole.hole.peak} probe connections at once; "
              f"/metrics {len(text)} bytes")
        assert hole.hole.peak <= 8 + 1
        assert after[0] - before[0] < 20
        assert p99 < max(0.050, 2 * ref)
        assert text.count("mongooseim_cluster_peer_up{") == 64 * 3
        checks = agent.get("/")[2]
        assert "only 64 of 3000 known peers probed" in checks
    finally:
        agent.stop()
        hole.stop()


def p99_of(timings: list[float]) -> float:
    return timings[int(0.99 * (len(timings) - 1))]


def poll(port: int, path: str, pollers: int, seconds: float) -> list[float]:
    timings: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def poll() -> None:
        mine = []
        while time.monotonic() < stop:
            start = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                             .encode())
                while sock.recv(4096):
                    pass
            mine.append(time.perf_counter() - start)
        with lock:
            timings.extend(mine)

    threads = [threading.Thread(target=poll) for _ in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(timings)
