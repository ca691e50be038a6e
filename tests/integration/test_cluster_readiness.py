"""/node/ready knows the cluster (issue 9 item 3), on a real two-node mnesia cluster.

The agent watches node a with `[cluster] min_running_members = 2`: b stopping takes a out
of load balancing (cluster_members), and so does mnesia stopping on a itself
(cluster_mnesia); each comes back when the cluster does. The body names the condition and
its value each time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agentproc import AgentProcess
from tests.support.lbtools import ReadyPoller
from tests.support.mimnode import (
    MimNode,
    MimNodeSpec,
    form_cluster,
    free_port,
    start_nodes,
    stop_nodes,
    unique_sname,
)
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[MimNode]]:
    require_binary("erl")
    nodes = [
        MimNode(MimNodeSpec(sname=unique_sname(f"ready{name}"), c2s_port=free_port(),
                            cookie="ready_cookie"), tmp_path / name)
        for name in ("a", "b")
    ]
    start_nodes(nodes)
    try:
        form_cluster(nodes)
        yield nodes
    finally:
        stop_nodes(nodes)


def _condition(body: dict[str, object], name: str) -> dict[str, object]:
    conditions = body["conditions"]
    assert isinstance(conditions, list)
    return next(c for c in conditions if c["name"] == name)


def test_cluster_conditions_take_the_node_out_and_back(
    tmp_path: Path, cluster: list[MimNode]
) -> None:
    a, b = cluster
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[node]\nname = "{a.node_name}"\n'
        f'[probes]\ninterval = "1s"\ntimeout = "300ms"\n'
        f'listeners = {{ c2s = "127.0.0.1:{a.spec.c2s_port}" }}\n'
        '[cluster]\ninterval = "500ms"\nsource = "dist"\nmin_running_members = 2\n'
    )
    agent = AgentProcess(config)
    try:
        poller = ReadyPoller(agent.port)
        body = poller.until(200, within=30)
        assert _condition(body, "cluster_members")["ok"] is True
        assert _condition(body, "cluster_mnesia")["ok"] is True

        b.stop()
        body = poller.until(503, within=20)
        members = _condition(body, "cluster_members")
        assert (members["ok"], members["reason"]) == (False, "critical")
        assert any(r.startswith("cluster_members: ") for r in body["reasons"])  # type: ignore[attr-defined]
        print("b stopped:", members["value"])

        b.start()
        poller.until(200, within=30)

        assert a.call("mnesia:stop()") == "stopped"
        body = poller.until(503, within=20)
        mnesia = _condition(body, "cluster_mnesia")
        assert (mnesia["ok"], mnesia["reason"]) == (False, "critical")
        print("mnesia stopped on a:", mnesia["value"])
        assert a.call("mnesia:start()") == "ok"
        poller.until(200, within=30)
    finally:
        agent.stop()
