"""`make demo-fault FAULT=...` on real stand-in nodes: each fault turns the agent red within
seconds, and its -off turns it back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.mim_node import faults
from tests.support.agentproc import AgentProcess, Series, value
from tests.support.mimnode import (
    MimNode,
    MimNodeSpec,
    free_port,
    start_nodes,
    stop_nodes,
    unique_sname,
)
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Path, str, MimNode, MimNode]]:
    require_binary("erl")
    sname = unique_sname("demo")
    nodes_dir = tmp_path / "nodes"
    spec = {"cookie": "mongooseim"}
    first = MimNode(MimNodeSpec(sname=sname, c2s_port=free_port(), **spec), nodes_dir / sname)
    second = MimNode(MimNodeSpec(sname=f"{sname}2", c2s_port=free_port(), **spec),
                     nodes_dir / f"{sname}2")
    start_nodes([first, second])
    yield nodes_dir, sname, first, second
    faults.main(["recover", "--state-dir", str(nodes_dir), "--sname", sname])
    stop_nodes([first, second])


def _until(agent: AgentProcess, what: str, predicate: Callable[[Series], bool],
           within: float = 20) -> float:
    started = time.monotonic()
    series = agent.poll_metrics(predicate, timeout=within)
    assert predicate(series), f"{what} not seen within {within}s"
    return time.monotonic() - started


def _ready(agent: AgentProcess) -> tuple[int, list[str]]:
    status, _, body = agent.get("/node/ready")
    return status, json.loads(body)["reasons"]


def test_each_demo_fault_turns_red_and_recovers(
    tmp_path: Path, demo: tuple[Path, str, MimNode, MimNode]
) -> None:
    """emfile, listener, peer, cookie: red within seconds; their -off: green again."""
    nodes_dir, sname, first, second = demo
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[node]\nname = "{first.node_name}"\n'
        '[fds]\ninterval = "500ms"\n[vm]\ninterval = "1s"\n'
        f'[probes]\ninterval = "500ms"\ntimeout = "300ms"\npeers = ["{second.node_name}"]\n'
        f'listeners = {{ c2s = "127.0.0.1:{first.spec.c2s_port}" }}\n'
    )

    def fault(name: str) -> None:
        assert faults.main([name, "--state-dir", str(nodes_dir), "--sname", sname]) == 0

    agent = AgentProcess(config)
    try:
        _until(agent, "ready", lambda s: value(s, "mongooseim_node_ready") == 1
               and value(s, "mongooseim_dist_auth_success") == 1)
        timings = {}

        fault("emfile")
        timings["emfile"] = _until(
            agent, "fds exhausted",
            lambda s: (value(s, "mongooseim_process_open_fds") or 0) >= 0.9 * (value(
                s, "mongooseim_process_max_fds") or 1e9)
            and (value(s, "mongooseim_log_matches_total", pattern="emfile") or 0) >= 50)
        status, reasons = _ready(agent)
        assert status == 503 and any(r.startswith("node_fds") for r in reasons), reasons
        fault("emfile-off")
        _until(agent, "fds back", lambda s: value(s, "mongooseim_node_ready") == 1)

        fault("listener")
        timings["listener"] = _until(
            agent, "listener down",
            lambda s: s.get(("mongooseim_probe_success", frozenset(
                {"name": "c2s", "target": f"127.0.0.1:{first.spec.c2s_port}"}.items()))) == 0)
        assert _ready(agent)[0] == 503
        fault("listener-off")
        _until(agent, "listener back", lambda s: value(s, "mongooseim_node_ready") == 1)

        fault("peer")
        timings["peer"] = _until(
            agent, "peer down",
            lambda s: value(s, "mongooseim_cluster_peer_up", peer=second.node_name,
                            check="auth") == 0)
        fault("peer-off")
        _until(agent, "peer back",
               lambda s: value(s, "mongooseim_cluster_peer_up", peer=second.node_name,
                               check="auth") == 1)

        fault("cookie")
        timings["cookie"] = _until(
            agent, "cookie refused", lambda s: value(s, "mongooseim_dist_auth_success") == 0)
        fault("cookie-off")
        _until(agent, "cookie back", lambda s: value(s, "mongooseim_dist_auth_success") == 1)
        print("red after:", {k: f"{v:.1f}s" for k, v in timings.items()})
        assert all(v < 15 for v in timings.values()), timings
    finally:
        agent.stop()


def test_guide_names_every_fault_and_the_cli() -> None:
    """What `make demo` prints: check, drain, and a make line per fault and its recovery."""
    text = faults.guide("127.0.0.1:9925")
    for fault in faults.FAULTS:
        assert f"make demo-fault FAULT={fault}" in text
    assert "check --only node_fds" in text and 'drain --reason' in text
    assert "make demo-recover" in text and "http://127.0.0.1:9925/" in text


def test_demo_needs_no_test_tools() -> None:
    """`make demo` installs the agent alone: its scripts import no test-only package."""
    import subprocess
    import sys

    probe = ("import sys, tests.mim_node.demo, tests.mim_node.faults, tests.support.mimnode; "
             "print(sorted(m for m in ('pytest', 'hypothesis', 'yaml') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True, cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]"


def test_demo_config_lets_log_faults_recover_within_a_minute(tmp_path: Path) -> None:
    """The agent config make demo writes loads, with the one-minute match window."""
    from mongooseim_agent.config import load_config
    from tests.mim_node import demo as demo_script

    members = ["mongooseim@localhost", "mongooseim2@localhost"]
    demo_script._write_agent_config(tmp_path, "mongooseim@localhost", {"c2s": 5222}, members)
    config = load_config(tmp_path / "agent.toml")
    assert config.logs.match_window == 60
    assert config.node.name == "mongooseim@localhost"
    assert config.cluster.expected_members == tuple(members)
