"""`drain` / `undrain` tell the truth: confirmed by the running agent, or said to be unseen;
the reason, since when and by whom on /node/ready, /, check, the log and the metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agentproc import AgentProcess, value
from tests.support.beam import HoldingBeam
from tests.support.require import in_ci, require_binary

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "mongooseim_agent"]


@pytest.fixture(scope="module")
def beam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HoldingBeam]:
    require_binary("erl")
    holder = HoldingBeam(40, tmp_path_factory.mktemp("beam"))
    yield holder
    holder.stop()


def _config(tmp_path: Path, node: str, state_dir: Path | None = None) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\nstate_dir = "{state_dir or tmp_path / "state"}"\n[node]\nname = "{node}"\n'
        "[probes]\nlisteners = {}\n"
    )
    return path


def _node(beam: HoldingBeam) -> str:
    return f"{beam.sname}@{socket.gethostname().split('.')[0]}"


def _cli(*args: str, env: dict[str, str] | None = None,
         prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *CLI, *args], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, **(env or {})})


def test_drain_is_confirmed_by_the_running_agent_and_shown_everywhere(
    tmp_path: Path, beam: HoldingBeam
) -> None:
    """503 with reason, since and by within a second, confirmed; undrain confirmed too."""
    config = _config(tmp_path, _node(beam))
    agent = AgentProcess(config)
    try:
        agent.poll_metrics(lambda s: value(s, "mongooseim_node_ready") == 1)
        before = time.time()
        result = _cli("--config", str(config), "drain", "--reason", "kernel upgrade",
                      env={"SUDO_USER": "alice"})
        assert result.returncode == 0, result.stderr
        confirmed = re.search(r"confirmed in ([0-9.]+)s that /node/ready now answers 503",
                              result.stdout)
        assert confirmed is not None, result.stdout
        print(f"drain confirmed by the running agent in {confirmed.group(1)}s")
        assert float(confirmed.group(1)) < 1.0
        assert "by alice: kernel upgrade" in result.stdout

        status, _, body = agent.get("/node/ready")
        assert status == 503
        report = json.loads(body)
        assert report["drain"]["reason"] == "kernel upgrade"
        assert report["drain"]["by"] == "alice"
        assert before - 1 <= report["drain"]["since"] <= time.time()
        assert "kernel upgrade" in report["reasons"][0]

        series = agent.metrics()
        assert value(series, "mongooseim_node_drained") == 1
        assert value(series, "mongooseim_node_drained_since_timestamp_seconds") == (
            report["drain"]["since"])
        assert value(series, "mongooseim_node_ready") == 0
        logged = agent.wait_log("drained")
        assert (logged["reason"], logged["by"]) == ("kernel upgrade", "alice")

        check = _cli("--config", str(config), "check", "--only", "drain")
        assert check.returncode == 1
        assert check.stdout.startswith("MONGOOSEIM WARNING - drain: drained ")
        assert "by alice: kernel upgrade" in check.stdout
        assert "no running agent" not in check.stdout

        undone = _cli("--config", str(config), "undrain")
        assert undone.returncode == 0, undone.stderr
        assert "confirmed in" in undone.stdout and "follows the checks again" in undone.stdout
        assert agent.get("/node/ready")[0] == 200
        assert value(agent.metrics(), "mongooseim_node_drained") == 0
        assert value(agent.metrics(), "mongooseim_node_drained_since_timestamp_seconds") == 0
        agent.wait_log("undrained")
    finally:
        assert agent.stop() == 0
    # A clean stop leaves no presence behind: the next drain must not believe in it.
    assert not (tmp_path / "state" / "agent.json").exists()


def test_drain_without_a_running_agent_says_so(tmp_path: Path) -> None:
    """The original lie: an agent on another state_dir; now the output says none was seen."""
    config = _config(tmp_path, "mongooseim@localhost")
    result = _cli("--config", str(config), "drain", "--reason", "kernel upgrade")
    assert result.returncode == 0
    assert "no running agent seen using state_dir" in result.stdout
    assert "confirmed" not in result.stdout
    assert (tmp_path / "state" / "drained").exists()
    check = _cli("--config", str(config), "check", "--only", "drain")
    assert "no running agent applies it" in check.stdout
    undone = _cli("--config", str(config), "undrain")
    assert undone.returncode == 0 and undone.stdout.startswith("undrained (was drained ")


def test_drain_on_a_read_only_state_dir_is_a_one_line_error(tmp_path: Path) -> None:
    """A read-only filesystem (a real ro bind mount): one line on stderr, exit 1."""
    unshare = shutil.which("unshare")
    if unshare is None:
        message = "unshare (util-linux) is not installed"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    state = tmp_path / "state"
    state.mkdir()
    config = _config(tmp_path, "mongooseim@localhost", state)
    command = " ".join([*CLI, "--config", str(config), "drain", "--reason", "x"])
    result = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "sh", "-c",
         f"mount --bind {state} {state} && mount -o remount,bind,ro {state} && exec {command}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("mongooseim-agent: not drained: cannot write ")
    assert "Read-only file system" in result.stderr
    assert not (state / "drained").exists()
