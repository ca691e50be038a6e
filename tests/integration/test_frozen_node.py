"""Issue 13 item 9: a frozen node leaves the load balancer.

A real stand-in node is stopped with SIGSTOP: the kernel keeps accepting on its c2s port,
so a TCP probe still says "up", but /proc/PID/stat says T and the VM answers nothing over
distribution. /node/ready must turn 503 within a couple of lb intervals, name both, and
come back after SIGCONT. /node/ready's p99 stays under 50 ms throughout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.agentproc import AgentProcess
from tests.support.lbtools import ReadyPoller, footprint
from tests.support.mimnode import MimNode, MimNodeSpec, free_port, stop_nodes, unique_sname
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


@pytest.fixture
def node(tmp_path: Path) -> Iterator[MimNode]:
    require_binary("erl")
    mim = MimNode(MimNodeSpec(sname=unique_sname("frozen"), c2s_port=free_port(),
                              cookie="frozen_cookie"), tmp_path / "node")
    mim.start()
    yield mim
    if mim.is_alive():
        os.kill(mim.pid, signal.SIGCONT)
    stop_nodes([mim])


def _config(tmp_path: Path, node: MimNode) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[node]\nname = "{node.node_name}"\n'
        f'[probes]\ninterval = "1s"\ntimeout = "300ms"\n'
        f'listeners = {{ c2s = "127.0.0.1:{node.spec.c2s_port}" }}\n'
        '[load_balancer]\ninterval = "500ms"\ntimeout = "400ms"\nsilent_after = "2s"\n'
        # The fds and vm collectors are not what this test watches: slow them so the
        # ready/not-ready edges come from the lb collector alone.
        '[fds]\ninterval = "1s"\ntimeout = "500ms"\n[vm]\ninterval = "30s"\ntimeout = "1s"\n'
    )
    return config


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_sigstopped_node_is_not_ready_until_sigcont(tmp_path: Path, node: MimNode) -> None:
    agent = AgentProcess(_config(tmp_path, node))
    try:
        poller = ReadyPoller(agent.port)
        body = poller.until(200, within=30)
        before = footprint(agent.proc.pid)
        print("agent before:", before)

        os.kill(node.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        # Delivery is asynchronous: the process is stopped once the kernel says T.
        deadline = time.monotonic() + 5
        while psutil.Process(node.pid).status() != psutil.STATUS_STOPPED:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # The kernel still completes handshakes on c2s: the reason TCP checks are fooled.
        with socket.create_connection(("127.0.0.1", node.spec.c2s_port), timeout=2):
            pass
        body = poller.until(503, within=10)
        took = time.monotonic() - stopped_at
        conditions = {c["name"]: c for c in body["conditions"]}
        assert conditions["node_state"]["ok"] is False
        assert conditions["node_state"]["value"].startswith(f"pid {node.pid} is stopped (state T)")
        # lb interval 0.5 s: the T state is seen on the next run.
        assert took < 3.0, took
        # silent_after = 2 s: the distribution silence is named a little later.
        body = poller.until_condition("node_responsive", ok=False, within=10)
        responsive = next(c for c in body["conditions"] if c["name"] == "node_responsive")
        assert "silent over distribution for" in responsive["value"]
        assert _state(node.pid) == "T"
        poller.sample(seconds=2.0, expect=503)
        assert poller.get("HEAD") == (503, None)

        os.kill(node.pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        body = poller.until(200, within=20)
        print(f"not ready {took:.2f}s after SIGSTOP; ready {time.monotonic() - resumed_at:.2f}s "
              "after SIGCONT")
        assert all(c["ok"] for c in body["conditions"] if c["name"].startswith("node_")), (
            json.dumps(body)
        )
        assert poller.get("HEAD") == (200, None)
        after = footprint(agent.proc.pid)
        print("agent after:", after)
        print("/node/ready latency:", poller.summary())
        assert poller.p99() < 0.050, poller.summary()
        assert after["fds"] <= before["fds"] + 5
    finally:
        agent.stop()
