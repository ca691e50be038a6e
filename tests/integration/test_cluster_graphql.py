"""The GraphQL source against a local HTTP server that replays MongooseIM 6's documented
answers. This server is a FAKE: MongooseIM itself cannot run here. It checks what the real
handler checks (POST, basic auth, the Host header `localhost`) and answers each query with
the shapes of priv/graphql/schemas/admin/{server,mnesia,cets}.gql; everything else (HTTP,
the client, the collector, the `check` command and the agent's pages) is real.

Also here: mongooseimctl through the real subprocess runner (a script that hangs is killed
at ctl_timeout)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from mongooseim_agent.collectors.cluster import ClusterCollector
from mongooseim_agent.config import ClusterSection
from mongooseim_agent.mongooseim.ctl import CtlClient, CtlTimeout, run_subprocess
from mongooseim_agent.mongooseim.graphql import GraphqlClient, GraphqlUnavailable
from mongooseim_agent.mongooseim.membership import CetsState, Source, view_hash
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.snapshot import Snapshot, Status
from tests.support.agentproc import AgentProcess

pytestmark = pytest.mark.integration

USER, PASSWORD = "admin", "s3cr3t-graphql-pw"
MEMBERS = ["mongooseim@node1", "mongooseim@node2", "mongooseim@node3"]


@dataclass
class FakeMongooseIM:
    """What the fake answers; tests change it between runs."""

    status: str = "RUNNING"
    running: list[str] = field(default_factory=lambda: MEMBERS[:2])
    cets: bool = False
    delay: float = 0.0
    requests: list[tuple[str, str | None, str]] = field(default_factory=list)

    def answer(self, query: str) -> dict[str, object]:
        if "server" in query:
            return {"data": {"server": {"status": {
                "statusCode": self.status, "message": "The MongooseIM node is running",
                "version": "6.3.1"}}}}
        if "mnesia" in query:
            return {"data": {"mnesia": {"systemInfo": [
                {"key": "db_nodes", "result": MEMBERS},
                {"key": "running_db_nodes", "result": self.running},
                {"key": "is_running", "result": "yes"}]}}}
        if "cets" in query and self.cets:
            return {"data": {"cets": {"systemInfo": {
                "availableNodes": MEMBERS[:2], "unavailableNodes": MEMBERS[2:],
                "joinedNodes": MEMBERS[:2], "discoveredNodes": MEMBERS,
                "remoteNodesWithoutDisco": [], "remoteNodesWithUnknownTables": [],
                "remoteUnknownTables": [], "remoteNodesWithMissingTables": [],
                "remoteMissingTables": [], "conflictNodes": [], "conflictTables": [],
                "discoveryWorks": True}}}}
        # What MongooseIM answers for a backend it does not run (@use directive).
        return {"data": {"cets": None}, "errors": [{
            "message": "Cannot execute query without cets", "path": ["cets"],
            "extensions": {"code": "deps_not_loaded"}}]}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        auth = request.headers.get("Authorization")
        self.requests.append((request.host, auth, body["query"]))
        if self.delay:
            await asyncio.sleep(self.delay)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.host != "localhost":
            return web.Response(status=404, text="no route for this host")
        if auth != expected:
            return web.json_response({"errors": [{"message": "Request is not authorized",
                                                  "extensions": {"code": "no_permissions"}}]},
                                     status=401)
        return web.json_response(self.answer(body["query"]))


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeMongooseIM, str]]:
    mim = FakeMongooseIM()
    app = web.Application()
    app.router.add_post("/api/graphql", mim.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield mim, f"http://127.0.0.1:{port}/api/graphql"
    await runner.cleanup()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "graphql-password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


class NoNode:
    """NodeLink's surface with no node found: distribution cannot answer."""

    def node(self) -> NodeProcess | None:
        return None

    async def call(self, query: object, time_limit: float) -> object:
        from mongooseim_agent.mongooseim.nodelink import NodeNotFound
        raise NodeNotFound("the node was not found")


def collector(url: str, password_file: Path, **extra: object) -> ClusterCollector:
    settings = ClusterSection(interval=5, timeout=1, graphql_url=url, graphql_user=USER,
                              graphql_password_file=password_file, **extra)  # type: ignore[arg-type]
    return ClusterCollector(settings, NoNode())  # type: ignore[arg-type]


def sample(snapshot: Snapshot, metric: str, **labels: str) -> float | None:
    for s in snapshot.samples:
        if s.metric == metric and dict(s.labels) == labels:
            return s.value
    return None


def check(snapshot: Snapshot, name: str) -> tuple[Status, str]:
    found = [c for c in snapshot.checks if c.name == name]
    assert len(found) == 1, [c.name for c in snapshot.checks]
    return found[0].status, found[0].summary


async def test_membership_over_graphql(fake: tuple[FakeMongooseIM, str],
                                       password_file: Path) -> None:
    """Basic auth and Host: localhost sent; mnesia membership read; no CETS -> no cets_*."""
    mim, url = fake
    snapshot = await collector(url, password_file, source="graphql").collect()
    assert sample(snapshot, "mongooseim_cluster_source_info", source="graphql") == 1
    assert sample(snapshot, "mongooseim_cluster_db_nodes") == 3
    assert sample(snapshot, "mongooseim_cluster_running_nodes") == 2
    assert sample(snapshot, "mongooseim_cluster_stopped_nodes") == 1
    assert sample(snapshot, "mongooseim_cluster_node_running", member=MEMBERS[2]) == 0
    assert sample(snapshot, "mongooseim_cluster_view_info", view=view_hash(MEMBERS[:2])) == 1
    assert not [s for s in snapshot.samples if s.metric.startswith("mongooseim_cets")]
    # GraphQL cannot see nodes(): no connected or partitioned series, and it says so.
    assert sample(snapshot, "mongooseim_cluster_partitioned") is None
    assert check(snapshot, "cluster_partition")[0] is Status.UNKNOWN
    assert {host for host, _, _ in mim.requests} == {"localhost"}
    assert len(mim.requests) == 3


async def test_cets_and_not_running(fake: tuple[FakeMongooseIM, str],
                                    password_file: Path) -> None:
    """CETS counts per state from `cets { systemInfo }`; NOT_RUNNING is a critical
    readiness check."""
    mim, url = fake
    mim.cets = True
    mim.status = "NOT_RUNNING"
    snapshot = await collector(url, password_file, source="graphql").collect()
    assert sample(snapshot, "mongooseim_cets_nodes", state=CetsState.UNAVAILABLE.value) == 1
    assert sample(snapshot, "mongooseim_cets_nodes", state="discovered") == 3
    assert sample(snapshot, "mongooseim_cets_discovery_works") == 1
    assert check(snapshot, "cluster_cets")[0] is Status.WARNING
    status, summary = check(snapshot, "cluster_mnesia")
    assert status is Status.CRITICAL and "NOT_RUNNING" in summary


async def test_bad_password_wrong_host_and_timeout(
    fake: tuple[FakeMongooseIM, str], password_file: Path, tmp_path: Path
) -> None:
    """401 names the settings to check (never the password); a wrong Host is an HTTP error;
    a server that does not answer ends at the time limit."""
    mim, url = fake
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    client = GraphqlClient(url, user=USER, password_file=wrong)
    with pytest.raises(GraphqlUnavailable, match="graphql_password_file") as denied:
        await client.membership(2)
    assert "nope" not in str(denied.value)
    other_host = GraphqlClient(url, user=USER, password_file=password_file, host="example")
    with pytest.raises(GraphqlUnavailable, match="HTTP 404"):
        await other_host.membership(2)
    mim.delay = 5
    slow = GraphqlClient(url, user=USER, password_file=password_file)
    start = time.monotonic()
    with pytest.raises((GraphqlUnavailable, TimeoutError)):
        await slow.membership(0.3)
    assert time.monotonic() - start < 2


async def test_auto_skips_a_dead_dist_and_says_which_answered(
    fake: tuple[FakeMongooseIM, str], password_file: Path
) -> None:
    """auto: distribution (no node) fails, GraphQL answers; the check names both."""
    _, url = fake
    snapshot = await collector(url, password_file).collect()
    assert sample(snapshot, "mongooseim_cluster_source_info", source=Source.GRAPHQL.value) == 1
    status, summary = check(snapshot, "cluster_source")
    assert status is Status.OK
    assert "through graphql" in summary and "dist: the node was not found" in summary


@pytest.fixture
def graphql_server(tmp_path: Path) -> Iterator[str]:
    """The fake in its own process, for the real agent and the `check` command."""
    script = tmp_path / "fake_graphql.py"
    script.write_text(
        "import asyncio, sys\n"
        "from aiohttp import web\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from tests.integration.test_cluster_graphql import FakeMongooseIM\n"
        "async def main():\n"
        "    app = web.Application()\n"
        "    app.router.add_post('/api/graphql', FakeMongooseIM().handle)\n"
        "    runner = web.AppRunner(app)\n"
        "    await runner.setup()\n"
        "    site = web.TCPSite(runner, '127.0.0.1', 0)\n"
        "    await site.start()\n"
        "    print(runner.addresses[0][1], flush=True)\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/api/graphql"
    finally:
        proc.kill()
        proc.wait()


def test_source_visible_in_check_and_on_the_landing_page(
    graphql_server: str, password_file: Path, tmp_path: Path
) -> None:
    """The source auto chose is in `check --json` and on `/`; the password is in neither."""
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
        '[node]\nname = "nonexistent_node@localhost"\n'
        "[probes]\nlisteners = {}\n"
        f'[cluster]\ninterval = "1s"\ngraphql_url = "{graphql_server}"\n'
        f'graphql_user = "{USER}"\ngraphql_password_file = "{password_file}"\n'
    )
    done = subprocess.run([sys.executable, "-m", "mongooseim_agent", "--config", str(config),
                           "check", "--json"], capture_output=True, text=True, timeout=60,
                          check=False)
    report = json.loads(done.stdout)
    source = next(c for c in report["checks"] if c["name"] == "cluster_source")
    assert source["status"] == "OK" and "through graphql" in source["summary"]
    assert PASSWORD not in done.stdout + done.stderr
    agent = AgentProcess(config)
    try:
        agent.poll_metrics(lambda s: ("mongooseim_cluster_source_info",
                                      frozenset({("source", "graphql")})) in s)
        status, _, page = agent.get("/")
        assert status == 200 and "membership read through graphql" in page
        _, _, metrics = agent.get("/metrics")
        assert PASSWORD not in page + metrics
    finally:
        agent.stop()
    assert PASSWORD not in json.dumps(agent.all_logs())


async def test_ctl_runner_kills_a_hung_ctl(tmp_path: Path) -> None:
    """A mongooseimctl that never finishes is killed (its whole process group) at the
    limit; one that prints endlessly is cut at the output cap and still bounded in time."""
    hung = tmp_path / "mongooseimctl"
    hung.write_text("#!/bin/sh\nsleep 60 &\nsleep 60\n")
    hung.chmod(0o755)
    client = CtlClient(lambda: hung, run=run_subprocess)
    start = time.monotonic()
    with pytest.raises(CtlTimeout, match="killed"):
        await client.membership(0.5)
    assert time.monotonic() - start < 3
    chatty = tmp_path / "chatty"
    chatty.write_text("#!/bin/sh\nexec yes 'running db nodes   = ['\n")
    chatty.chmod(0o755)
    start = time.monotonic()
    with pytest.raises(CtlTimeout):
        await run_subprocess([str(chatty)], 1.0)
    assert time.monotonic() - start < 4
