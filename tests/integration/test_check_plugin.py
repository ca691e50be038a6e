"""`check` as an Icinga plugin on a real node and a real running agent: log checks from the
agent's saved counts, strict perfdata, --only, and a closed pipe that keeps the verdict."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mongooseim_agent.logwatch.state import Counters, StateStore, WatchState
from mongooseim_agent.presence import Presence
from mongooseim_agent.presence import write as write_presence
from tests.support.agentproc import AgentProcess, value
from tests.support.beam import HoldingBeam
from tests.support.perfparse import parse_perfdata, range_alerts, split_output
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "mongooseim_agent"]
LOG_NAMES = {"log_watch", "log_emfile", "log_enfile", "log_system_limit", "log_partition",
             "log_nodedown", "log_cookie_rejected", "log_eaddrinuse"}


@pytest.fixture(scope="module")
def beam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HoldingBeam]:
    require_binary("erl")
    holder = HoldingBeam(40, tmp_path_factory.mktemp("beam"))
    yield holder
    holder.stop()


def _config(tmp_path: Path, beam: HoldingBeam) -> Path:
    node = f"{beam.sname}@{socket.gethostname().split('.')[0]}"
    log = tmp_path / "mongooseim.log"
    log.touch()
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[node]\nname = "{node}"\n'
        "[probes]\nlisteners = {}\n"
        f'[logs]\npaths = ["{log}"]\npoll_interval = "100ms"\n'
    )
    return path


def _check(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--config", str(config), "check", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def running(tmp_path: Path, beam: HoldingBeam) -> Iterator[tuple[Path, AgentProcess]]:
    config = _config(tmp_path, beam)
    agent = AgentProcess(config)
    agent.poll_metrics(lambda s: value(s, "mongooseim_node_ready") == 1)
    yield config, agent
    assert agent.stop() == 0


def test_check_reports_log_checks_from_the_running_agent(
    running: tuple[Path, AgentProcess], tmp_path: Path
) -> None:
    """An emfile line the agent read turns `check` CRITICAL (it said OK before this fix)."""
    config, agent = running
    before = _check(config, "--json")
    assert before.returncode == 0, before.stdout
    names = {c["name"] for c in json.loads(before.stdout)["checks"]}
    assert names >= LOG_NAMES
    with (tmp_path / "mongooseim.log").open("a") as log:
        log.write("2026-11-30T10:00:00Z level=error what=pool_reconnect reason=emfile\n")
    agent.poll_metrics(
        lambda s: value(s, "mongooseim_log_matches_total", pattern="emfile") == 1)
    after = _check(config)
    assert after.returncode == 2, after.stdout
    text, perf = split_output(after.stdout.splitlines()[0])
    assert text.startswith("MONGOOSEIM CRITICAL - log_emfile: ")
    assert parse_perfdata(perf)["emfile"].value == 1
    assert parse_perfdata(perf)["emfile"].uom == "c"
    only = _check(config, "--only", "node_fds")
    assert only.returncode == 0, only.stdout
    assert only.stdout.startswith("MONGOOSEIM OK - 1 checks OK | open_fds=")


def test_full_perfdata_parses_strictly_with_the_checks_thresholds(
    running: tuple[Path, AgentProcess], beam: HoldingBeam
) -> None:
    """Every perfdata item parses; open_fds carries warn/crit/min/max of the node_fds check."""
    config, _ = running
    result = _check(config)
    assert result.returncode == 0, result.stdout
    _, perf = split_output(result.stdout.splitlines()[0])
    parsed = parse_perfdata(perf)
    fds = parsed["open_fds"]
    assert fds.value == beam.open_fds() and fds.min == 0 and fds.max is not None
    assert fds.warn and fds.crit
    # The default ratios 0.8 / 0.9 of the soft limit, as Icinga would compare them.
    assert not range_alerts(fds.warn, int(fds.max * 0.8) - 1)
    assert range_alerts(fds.crit, int(fds.max * 0.9) + 1)
    assert parsed["process_limit"].value == parsed["processes"].max
    assert "e+" not in perf and "e-" not in perf


def test_only_selects_and_rejects_unknown_names(running: tuple[Path, AgentProcess]) -> None:
    """--only is repeatable; a name that matches no check is UNKNOWN listing valid ones."""
    config, _ = running
    two = _check(config, "--only", "node_fds", "--only", "log_emfile", "--json")
    assert two.returncode == 0
    assert [c["name"] for c in json.loads(two.stdout)["checks"]] == ["node_fds", "log_emfile"]
    typo = _check(config, "--only", "node_fd")
    assert typo.returncode == 3
    assert typo.stdout.startswith("MONGOOSEIM UNKNOWN - no check named node_fd;")
    assert "node_fds" in typo.stdout and "log_emfile" in typo.stdout


def test_closed_pipe_keeps_the_verdict_and_prints_no_traceback(tmp_path: Path,
                                                               beam: HoldingBeam) -> None:
    """`check | head -1`: the exit code is the verdict (here UNKNOWN: no agent runs)."""
    config = _config(tmp_path, beam)
    proc = subprocess.Popen([*CLI, "--config", str(config), "check"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before check writes a byte
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 3, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    shell = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {' '.join(CLI)} --config {config} check | head -1"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert shell.returncode == 3 and len(shell.stdout.splitlines()) == 1
    assert "Traceback" not in shell.stderr


def test_log_checks_are_unknown_with_the_reason_when_state_is_missing_or_stale(
    tmp_path: Path, beam: HoldingBeam
) -> None:
    """No saved state: UNKNOWN naming the file. Old state of a dead agent: UNKNOWN, stale."""
    config = _config(tmp_path, beam)
    missing = json.loads(_check(config, "--json").stdout)
    watch = next(c for c in missing["checks"] if c["name"] == "log_watch")
    assert watch["status"] == "UNKNOWN" and "logs-state.json" in watch["summary"]
    assert missing["status"] == "UNKNOWN"

    state_dir = tmp_path / "state"
    now = time.time()
    StateStore(state_dir).save(WatchState(saved_at=now - 3600, counters=Counters(
        matches={"emfile": 2}, last_match={"emfile": now - 3600})))
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_presence(state_dir, Presence(dead.pid, "0", now - 7200, now - 3600))
    stale = json.loads(_check(config, "--json").stdout)
    emfile = next(c for c in stale["checks"] if c["name"] == "log_emfile")
    assert emfile["status"] == "UNKNOWN"
    assert "stale" in emfile["summary"] and f"pid {dead.pid}" in emfile["summary"]
    assert os.path.exists(state_dir / "agent.json")
