"""The real agent against a real beam.smp: exact fd counts, limits, restarts, unprivileged."""

from __future__ import annotations

import resource
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mongooseim_agent import procfs
from tests.support.agentproc import AgentProcess, Series, value
from tests.support.beam import HoldingBeam
from tests.support.public_install import PublicInstall, make_public_install
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, node: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[node]\nname = "{node}"\n[fds]\ninterval = "200ms"\ntimeout = "200ms"\n'
    )
    return path


def _otp_major() -> str:
    """The OTP major release as the installed erl itself reports it."""
    return subprocess.run(
        ["erl", "-noshell", "-eval", "io:put_chars(erlang:system_info(otp_release)), halt()."],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()


def _node_name(beam: HoldingBeam) -> str:
    return f"{beam.sname}@{socket.gethostname().split('.')[0]}"


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    require_binary("erl")
    yield tmp_path


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


@pytest.fixture
def beams() -> Iterator[list[HoldingBeam]]:
    started: list[HoldingBeam] = []
    yield started
    for beam in started:
        beam.stop()


class FdsMatch:
    """Scrape predicate: the agent's open_fds equals the beam's own count, read right after
    the scrape. `seen` keeps the count that matched: the beam's count moves by one whenever
    the agent itself (its dist link, its probes) connects to it, so a second listdir after
    the poll would compare two different instants (219 vs 220 on a loaded machine)."""

    def __init__(self, beam: HoldingBeam) -> None:
        self.beam = beam
        self.seen: int | None = None

    def __call__(self, series: Series) -> bool:
        count = self.beam.open_fds()
        if value(series, "mongooseim_process_open_fds") != count:
            return False
        self.seen = count
        return True


def _poll_fds(agent: AgentProcess, beam: HoldingBeam) -> tuple[Series, int]:
    """The first scrape whose open_fds equals the beam's count then, and that count."""
    match = FdsMatch(beam)
    series = agent.poll_metrics(match, timeout=60)
    assert match.seen is not None, (
        f"open_fds never matched: the agent said "
        f"{value(series, 'mongooseim_process_open_fds')}, the beam has {beam.open_fds()}")
    return series, match.seen


@pytest.mark.parametrize("held", [100, "hard"])
def test_exact_open_fds_and_both_limits(
    workdir: Path, agents: list[AgentProcess], beams: list[HoldingBeam], held: int | str
) -> None:
    """/metrics reports the beam's exact open fd count, up to near its hard limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = soft - 64 if held == "hard" else int(held)
    beam = HoldingBeam(count, workdir)
    beams.append(beam)
    node = _node_name(beam)
    agent = AgentProcess(_config(workdir, node))
    agents.append(agent)
    series, seen = _poll_fds(agent, beam)
    assert value(series, "mongooseim_process_open_fds") == seen >= count
    limits = procfs.parse_nofile(Path(f"/proc/{beam.pid}/limits").read_text())
    assert value(series, "mongooseim_process_max_fds") == limits.soft
    assert value(series, "mongooseim_process_max_fds_hard") == limits.hard
    assert value(series, "mongooseim_node_up") == 1
    assert value(series, "mongooseim_vm_port_limit_configured") == 4096
    (info,) = [labels for (name, labels) in series if name == "mongooseim_node_info"]
    assert dict(info)["erlang_node"] == node
    assert dict(info)["otp_release"].split(".")[0] == _otp_major()
    assert value(series, "mongooseim_agent_collector_success", collector="fds") == 1


def test_node_restart_is_followed(
    workdir: Path, agents: list[AgentProcess], beams: list[HoldingBeam]
) -> None:
    """Killing the node gives node_up 0 and no process series; its restart is picked up."""
    first = HoldingBeam(50, workdir / "a")
    beams.append(first)
    node = _node_name(first)
    agent = AgentProcess(_config(workdir, node))
    agents.append(agent)
    series, _ = _poll_fds(agent, first)
    started = value(series, "mongooseim_node_start_time_seconds")
    first.stop()
    down = agent.poll_metrics(lambda s: value(s, "mongooseim_node_up") == 0)
    assert value(down, "mongooseim_node_up") == 0
    assert value(down, "mongooseim_process_open_fds") is None
    assert value(down, "mongooseim_node_ready") == 0
    second = HoldingBeam(300, workdir / "b", sname=first.sname)
    beams.append(second)
    series, seen = _poll_fds(agent, second)
    assert value(series, "mongooseim_process_open_fds") == seen >= 300
    assert value(series, "mongooseim_node_up") == 1
    assert value(series, "mongooseim_node_start_time_seconds") != started


def test_sighup_reload_refuses_bad_config_and_applies_good_one(
    workdir: Path, agents: list[AgentProcess], beams: list[HoldingBeam]
) -> None:
    """A bad config on SIGHUP is refused and logged; the old one keeps serving; a good one
    re-points the agent."""
    first = HoldingBeam(10, workdir / "a")
    second = HoldingBeam(20, workdir / "b")
    beams.extend([first, second])
    config = _config(workdir, _node_name(first))
    agent = AgentProcess(config)
    agents.append(agent)
    _poll_fds(agent, first)
    config.write_text("[fds]\nintervl = 1\n")
    agent.signal(signal.SIGHUP)
    refused = agent.wait_log("config reload refused; keeping the running config")
    assert "fds.intervl: unknown key; did you mean 'interval'?" in refused["error"]
    series = agent.metrics()
    assert value(series, "mongooseim_agent_config_reload_success") == 0
    assert value(series, "mongooseim_node_up") == 1
    _config(workdir, _node_name(second))
    agent.signal(signal.SIGHUP)
    agent.wait_log("config reloaded")
    series, seen = _poll_fds(agent, second)
    assert value(series, "mongooseim_process_open_fds") == seen >= 20
    assert value(series, "mongooseim_agent_config_reload_success") == 1
    assert agent.stop() == 0


def test_unprivileged_agent_reads_fds_and_limits_of_root_node(
    workdir: Path, agents: list[AgentProcess], beams: list[HoldingBeam]
) -> None:
    """As nobody, stat(/proc/PID/fd) and /proc/PID/limits still work; listing does not."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is required")
    beam = HoldingBeam(200, workdir)
    beams.append(beam)
    node = _node_name(beam)
    # pytest's tmp dirs, the checkout and its venv may all be private to root: nobody gets
    # a world-readable copy of the agent and a readable config.
    install = make_public_install()
    try:
        config = _config(install.root, node)
        config.chmod(0o644)
        _scrape_as_nobody(setpriv, config, beam, node, agents, install=install)
    finally:
        shutil.rmtree(install.root)


def _scrape_as_nobody(
    setpriv: str, config: Path, beam: HoldingBeam, node: str, agents: list[AgentProcess],
    *, install: PublicInstall,
) -> None:
    agent = AgentProcess(
        config, prefix=[setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"],
        python=install.python, env=install.env,
    )
    agents.append(agent)
    series, seen = _poll_fds(agent, beam)
    assert value(series, "mongooseim_process_open_fds") == seen >= 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert value(series, "mongooseim_process_max_fds") == soft
    assert value(series, "mongooseim_process_max_fds_hard") == hard
    # psutil's reads (statm, stat, status) are world-readable too.
    series = agent.poll_metrics(
        lambda s: value(s, "mongooseim_process_threads") is not None)
    assert value(series, "mongooseim_process_threads") > 0  # type: ignore[operator]
    assert value(series, "mongooseim_process_resident_memory_bytes") > 0  # type: ignore[operator]
    assert value(series, "mongooseim_agent_collector_success", collector="process") == 1
