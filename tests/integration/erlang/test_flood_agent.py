"""The real agent watching a real node that floods its hidden connection: /node/ready keeps
answering fast and the agent's memory stays bounded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.erlang.erlnodes import Epmd, ErlNode
from tests.support.agentproc import AgentProcess, value
from tests.support.lbtools import ReadyPoller, footprint

pytestmark = pytest.mark.integration

# Every hidden node connected (the agent is one) gets REG_SEND frames as fast as the node can
# send them, forever.
FLOOD = ("spawn(fun() -> Flood = fun Loop() -> case nodes(hidden) of [] -> timer:sleep(5); "
         "Ns -> [{junk, N} ! {junk, lists:seq(1, 20)} || N <- Ns] end, Loop() end, "
         "Flood() end), ok.")


def _poll_ready(agent: AgentProcess, seconds: float) -> list[float]:
    poller = ReadyPoller(agent.port)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        poller.get()
        time.sleep(0.02)
    return sorted(poller.latencies)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def _ms(values: list[float], q: float) -> str:
    return f"{_pct(values, q) * 1e3:.1f}"


def test_flooding_node_neither_stalls_nor_bloats_the_agent(
    tmp_path: Path, epmd: Epmd, fresh_node: ErlNode
) -> None:
    """While the node floods, /node/ready p99 stays under 100 ms (or twice the quiet p99 on
    a loaded machine), the agent's RSS grows by under 32 MB, and the VM is still read."""
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[node]\nname = "{fresh_node.name}"\n'
        f'[vm]\ninterval = "3s"\n[probes]\nepmd_port = {epmd.port}\nlisteners = {{}}\n'
        '[load_balancer]\nrequired = []\n'
    )
    agent = AgentProcess(config)
    try:
        agent.poll_metrics(lambda s: value(s, "mongooseim_vm_ports") is not None, timeout=30)
        quiet = _poll_ready(agent, 4)
        before = footprint(agent.proc.pid)
        assert fresh_node.eval(FLOOD) == "ok"  # type: ignore[comparison-overlap]
        flooded = _poll_ready(agent, 6)
        after = footprint(agent.proc.pid)
        still_read = agent.poll_metrics(
            lambda s: value(s, "mongooseim_agent_collector_success", collector="vm") == 1)
        print(f"agent before {before}, after {after}; /node/ready p50/p99 quiet "
              f"{_ms(quiet, 0.5)}/{_ms(quiet, 0.99)} ms, flooded {_ms(flooded, 0.5)}/"
              f"{_ms(flooded, 0.99)} ms over {len(flooded)} requests")
        assert _pct(flooded, 0.99) < max(0.1, 2 * _pct(quiet, 0.99))
        assert after["rss_mib"] - before["rss_mib"] < 32
        assert value(still_read, "mongooseim_agent_collector_success", collector="vm") == 1
    finally:
        agent.stop()
