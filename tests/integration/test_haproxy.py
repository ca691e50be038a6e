"""A real HAProxy in front of two stand-in nodes' c2s ports, acting on two agents.

HAProxy health-checks each agent's /node/ready (option httpchk) and asks its agent-check
port; its view is read from its stats socket (`show stat`). Shown here: `drain` on one agent
takes that node out of new traffic and `undrain` brings it back, fd pressure lowers its
weight (weight_by_fd_headroom), and a stopped node goes DOWN.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.agentproc import AgentProcess
from tests.support.lbtools import HAProxy, ReadyPoller, agent_check
from tests.support.mimnode import MimNode, MimNodeSpec, free_port, stop_nodes, unique_sname
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

NOFILE = 400


@dataclass
class Member:
    name: str
    node: MimNode
    config: Path
    agent_check_port: int
    agent: AgentProcess | None = None


def _config(workdir: Path, node: MimNode, agent_check_port: int) -> Path:
    config = workdir / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{workdir / "state"}"\n'
        f'[node]\nname = "{node.node_name}"\n'
        f'[fds]\ninterval = "300ms"\n'
        f'[probes]\ninterval = "1s"\ntimeout = "300ms"\n'
        f'listeners = {{ c2s = "127.0.0.1:{node.spec.c2s_port}" }}\n'
        '[vm]\ninterval = "5s"\n'
        '[load_balancer]\ninterval = "500ms"\n'
        f'agent_check_address = "127.0.0.1:{agent_check_port}"\n'
        'weight_by_fd_headroom = true\nweight_fd_start_ratio = 0.2\n'
    )
    return config


@pytest.fixture
def members(tmp_path: Path) -> Iterator[list[Member]]:
    require_binary("erl")
    made: list[Member] = []
    try:
        for name in ("a", "b"):
            node = MimNode(
                MimNodeSpec(sname=unique_sname(f"lb{name}"), c2s_port=free_port(),
                            cookie="haproxy_cookie", nofile=(NOFILE, NOFILE)),
                tmp_path / name / "node",
            )
            node.start()
            port = free_port()
            made.append(Member(name, node, _config(tmp_path / name, node, port), port))
        for member in made:
            member.agent = AgentProcess(member.config)
            member.agent.wait_log("agent-check listening")
        yield made
    finally:
        for member in made:
            if member.agent is not None:
                member.agent.stop()
        stop_nodes([m.node for m in made])


def _haproxy_config(front: int, members: list[Member]) -> str:
    servers = "\n".join(
        f"    server {m.name} 127.0.0.1:{m.node.spec.c2s_port} check port "
        f"{m.agent.port} agent-check agent-port {m.agent_check_port} weight 100"
        for m in members if m.agent is not None
    )
    return f"""
global
    stats socket @STATS@ mode 600 level admin
    maxconn 500
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend xmpp
    bind 127.0.0.1:{front}
    default_backend c2s
backend c2s
    balance roundrobin
    option httpchk GET /node/ready?ignore=drained
    http-check expect status 200
    default-server inter 300ms fastinter 300ms downinter 300ms fall 2 rise 1 agent-inter 300ms
{servers}
"""


def _cli(member: Member, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mongooseim_agent", "--config", str(member.config), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _through(front: int, n: int, stack: ExitStack) -> None:
    """n client connections through HAProxy's frontend, kept open."""
    for _ in range(n):
        stack.enter_context(socket.create_connection(("127.0.0.1", front), timeout=5))


def _sessions(haproxy: HAProxy) -> dict[str, int]:
    return {name: int(row["stot"]) for name, row in haproxy.servers("c2s").items()}


def _spread(haproxy: HAProxy, front: int, n: int) -> dict[str, int]:
    """Where n new connections went, by HAProxy's own per-server session totals."""
    before = _sessions(haproxy)
    with ExitStack() as stack:
        _through(front, n, stack)
        deadline = time.monotonic() + 10
        while sum(_sessions(haproxy).values()) - sum(before.values()) < n:
            assert time.monotonic() < deadline, _sessions(haproxy)
            time.sleep(0.02)
    after = _sessions(haproxy)
    return {name: after[name] - before[name] for name in after}


def test_haproxy_follows_drain_fd_pressure_and_a_stopped_node(
    tmp_path: Path, members: list[Member]
) -> None:
    binary = require_binary("haproxy")
    a, b = members
    assert a.agent is not None and b.agent is not None
    front = free_port()
    haproxy = HAProxy(binary, tmp_path / "haproxy", _haproxy_config(front, members))
    try:
        for m in members:
            haproxy.wait_server("c2s", m.name, within=20, status="UP", weight="100")
        assert agent_check(a.agent_check_port) == "up ready 100%\n"
        assert _spread(haproxy, front, 10) == {"a": 5, "b": 5}

        # drain: a leaves new traffic (weight 0, DRAIN), and says so to HAProxy itself.
        _cli(a, "drain", "--reason", "kernel upgrade")
        a.agent.wait_log("drained")
        assert agent_check(a.agent_check_port) == "drain\n"
        haproxy.wait_server("c2s", "a", within=10, status="DRAIN (agent)")
        assert _spread(haproxy, front, 10) == {"a": 0, "b": 10}

        # undrain: back in, at full weight.
        _cli(a, "undrain")
        a.agent.wait_log("undrained")
        haproxy.wait_server("c2s", "a", within=10, status="UP", weight="100")
        assert _spread(haproxy, front, 10) == {"a": 5, "b": 5}

        # fd pressure on a: 60% of its soft limit with the fall starting at 20% -> 50%.
        a.node.open_fds(int(NOFILE * 0.6) - _open_fds(a.node.pid))
        answer = _wait_answer(a.agent_check_port, lambda line: line != "up ready 100%\n")
        weight = int(answer.removeprefix("up ready ").removesuffix("%\n"))
        assert 40 <= weight <= 60, answer
        haproxy.wait_server("c2s", "a", within=10, status="UP", weight=str(weight))
        a.node.close_fds()
        haproxy.wait_server("c2s", "a", within=10, status="UP", weight="100")

        # A stopped node: /node/ready 503 and `down #...` from the agent: HAProxy DOWN.
        a.node.stop()
        answer = _wait_answer(a.agent_check_port, lambda line: "node_process" in line)
        assert answer.startswith("down #"), answer
        row = haproxy.wait_server("c2s", "a", within=10, status="DOWN*")
        print("a when stopped:", row["check_status"], row["last_chk"], "|", row["last_agt"])
        haproxy.wait_server("c2s", "b", within=1, status="UP", weight="100")
        assert _spread(haproxy, front, 6) == {"a": 0, "b": 6}
        # While HAProxy checks it every 300 ms and its collectors run, b answers fast.
        poller = ReadyPoller(b.agent.port)
        poller.sample(seconds=3.0, expect=200)
        print("/node/ready of b:", poller.summary())
        assert poller.p99() < 0.050, poller.summary()
    finally:
        print(haproxy.output())
        haproxy.stop()


def _open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _wait_answer(port: int, accept: object, within: float = 10) -> str:
    deadline = time.monotonic() + within
    while True:
        line = agent_check(port)
        if accept(line):  # type: ignore[operator]
            return line
        assert time.monotonic() < deadline, line
        time.sleep(0.05)
