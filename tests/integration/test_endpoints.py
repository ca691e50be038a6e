"""HTTP endpoints, drain/undrain and the Nagios-style check command, on the real agent."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agentproc import AgentProcess, value
from tests.support.beam import HoldingBeam
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def beam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HoldingBeam]:
    require_binary("erl")
    holder = HoldingBeam(40, tmp_path_factory.mktemp("beam"))
    yield holder
    holder.stop()


def _node(beam: HoldingBeam) -> str:
    return f"{beam.sname}@{socket.gethostname().split('.')[0]}"


def _config(tmp_path: Path, node: str, fds: str = "") -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[node]\nname = "{node}"\n'
        "[probes]\nlisteners = {}\n"
        f'[fds]\ninterval = "200ms"\ntimeout = "200ms"\n{fds}'
    )
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mongooseim_agent", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_endpoints_landing_openmetrics_and_readiness(tmp_path: Path, beam: HoldingBeam) -> None:
    """/, /metrics in both formats, /-/healthy, /-/ready and /node/ready with drain."""
    config = _config(tmp_path, _node(beam))
    agent = AgentProcess(config)
    try:
        agent.poll_metrics(lambda s: value(s, "mongooseim_node_ready") == 1)
        assert agent.get("/-/healthy")[0] == 200
        assert agent.get("/-/ready")[0] == 200
        status, ctype, body = agent.get("/node/ready")
        assert (status, ctype.split(";")[0]) == (200, "application/json")
        verdict = json.loads(body)
        assert (verdict["ready"], verdict["reasons"], verdict["drained"]) == (True, [], False)
        conditions = {c["name"]: c for c in verdict["conditions"]}
        assert conditions["node_process"]["ok"] is True
        assert conditions["node_fds"]["value"].endswith("of the process's nofile limit)")
        status, ctype, body = agent.get("/")
        assert status == 200 and ctype.startswith("text/html")
        assert "node_fds" in body and _node(beam) in body and "<script" not in body
        status, ctype, body = agent.get("/metrics", accept="application/openmetrics-text")
        assert ctype.startswith("application/openmetrics-text")
        assert body.rstrip().endswith("# EOF")
        status, ctype, body = agent.get("/metrics")
        assert ctype.startswith("text/plain") and "process_resident_memory_bytes" in body
        assert 'mongooseim_agent_build_info{version="' in body

        drained = _cli("--config", str(config), "drain", "--reason", "kernel upgrade")
        assert drained.returncode == 0, drained.stdout
        agent.wait_log("drained")
        status, _, body = agent.get("/node/ready")
        assert status == 503
        assert json.loads(body)["reasons"][0].startswith("drained")
        assert value(agent.metrics(), "mongooseim_node_ready") == 0
        assert _cli("--config", str(config), "undrain").returncode == 0
        agent.wait_log("undrained")
        assert agent.get("/node/ready")[0] == 200
    finally:
        assert agent.stop() == 0


def test_check_exit_codes_follow_nagios(tmp_path: Path, beam: HoldingBeam) -> None:
    """0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, with perfdata on the first line."""
    config = _config(tmp_path, _node(beam))
    # The log checks come from the running agent's saved counts: OK needs an agent.
    agent = AgentProcess(config)
    try:
        agent.poll_metrics(lambda s: value(s, "mongooseim_node_ready") == 1)
        ok = _cli("--config", str(config), "check")
        # Counted while the agent's own distribution connection is still open, as check saw.
        open_fds = beam.open_fds()
    finally:
        agent.stop()
    assert ok.returncode == 0, ok.stdout
    first = ok.stdout.splitlines()[0]
    assert first.startswith("MONGOOSEIM OK - ") and f"open_fds={open_fds};" in first

    warn = _cli("--config", str(_config(tmp_path, _node(beam),
                                        "warning_ratio = 0.0001\ncritical_ratio = 1\n")),
                "check")
    assert warn.returncode == 1
    assert warn.stdout.startswith("MONGOOSEIM WARNING - node_fds: ")

    crit = _cli("--config", str(_config(tmp_path, "absent@nowhere")), "check", "--json")
    assert crit.returncode == 2
    report = json.loads(crit.stdout)
    assert report["status"] == "CRITICAL"
    node_check = next(c for c in report["checks"] if c["name"] == "node_process")
    assert node_check["summary"] == "no running beam.smp with node name absent@nowhere"

    bad = tmp_path / "bad.toml"
    bad.write_text("[fds]\ninterval = 'never'\n")
    unknown = _cli("--config", str(bad), "check")
    assert unknown.returncode == 3
    assert "fds.interval" in unknown.stdout


def test_bad_config_exits_before_serving(tmp_path: Path) -> None:
    """`run` with a bad config exits 2 with the key path on stderr and never listens."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[node]\nname = 'two words'\n")
    result = _cli("--config", str(bad), "--web.listen-address", "127.0.0.1:0")
    assert result.returncode == 2
    assert "node.name" in result.stderr and "'two words'" in result.stderr
    assert "listening" not in result.stderr
