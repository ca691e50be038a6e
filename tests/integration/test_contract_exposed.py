"""Everything declared is exposed and everything exposed is declared, on real nodes.

Two real stand-in nodes share a cookie (one watched, with a dist port range; the other a
peer), and the watched node's log gets a line for every default pattern, so every
conditional series has its condition met.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mongooseim_agent.collectors.registry import contract
from mongooseim_agent.mongooseim.log_patterns import default_names
from tests.support.agentproc import AgentProcess, Series, value
from tests.support.mimnode import (
    MimNode,
    MimNodeSpec,
    form_cluster,
    free_port,
    start_nodes,
    stop_nodes,
    unique_sname,
)
from tests.support.promtool import naming_problems, promtool_problems
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

FAULT_LINES = {
    "emfile": 'level=warning unstructured_log="Ranch acceptor reducing accept rate: out of '
              'file descriptors"',
    "enfile": "level=error what=accept_failed reason=enfile",
    "system_limit": "level=error what=port_open_failed reason=system_limit",
    "partition": "level=error unstructured_log=\"Mnesia(a@h): ** ERROR ** mnesia_event got "
                 "{inconsistent_database, running_partitioned_network, b@h}\"",
    "nodedown": "level=warning what=nodedown node=b@h reason=net_tick_timeout",
    "cookie_rejected": 'level=error unstructured_log="** Connection attempt from node '
                       "'x@h' rejected. Invalid challenge reply. **\"",
    "eaddrinuse": "level=error what=listener_failed reason=eaddrinuse",
}


def _free_range() -> tuple[int, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port, port


def _names(series: Series) -> set[str]:
    names = set()
    for name, _ in series:
        base = name.removesuffix("_created")
        if base.startswith("mongooseim_"):
            names.add(base)
    return names


def test_exposed_equals_declared(tmp_path: Path) -> None:
    """The union of series names equals the declared contract, no more, no less."""
    require_binary("erl")
    assert set(FAULT_LINES) == default_names()
    cookie = "contract_cookie"
    watched = MimNode(MimNodeSpec(sname=unique_sname("contract"), c2s_port=free_port(),
                                  cookie=cookie, dist_range=_free_range(),
                                  erl_max_ports=70000, max_processes=300000, cets=True),
                   tmp_path / "a")
    peer = MimNode(MimNodeSpec(sname=unique_sname("peer"), c2s_port=free_port(),
                               cookie=cookie), tmp_path / "b")
    log = tmp_path / "faults.log"
    log.touch()
    start_nodes([watched, peer])
    agent: AgentProcess | None = None
    try:
        # One mnesia cluster, so the per-member cluster series have a member besides itself.
        form_cluster([watched, peer])
        config = tmp_path / "agent.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
            f'[node]\nname = "{watched.node_name}"\n'
            f'[vm]\ninterval = "500ms"\ntimeout = "400ms"\n'
            f'[probes]\ninterval = "500ms"\ntimeout = "200ms"\n'
            f'listeners = {{ c2s = "127.0.0.1:{watched.spec.c2s_port}" }}\n'
            f'peers = ["{peer.node_name}"]\n'
            f'[cluster]\ninterval = "500ms"\ntimeout = "400ms"\n'
            f'[logs]\npaths = ["{log}"]\n'
        )
        agent = AgentProcess(config)
        agent.poll_metrics(lambda s: value(s, "mongooseim_agent_collector_success",
                                           collector="logs") == 1)
        with log.open("a") as out:
            for line in FAULT_LINES.values():
                out.write(f"when=2026-11-23T10:15:02.123456+00:00 {line}\n")
        declared = set(contract())
        series = agent.poll_metrics(
            lambda s: _names(s) >= declared
            and value(s, "mongooseim_log_matches_total", pattern="eaddrinuse") == 1
        )
        exposed = _names(series)
        assert declared - exposed == set(), "declared but never exposed"
        assert exposed - declared == set(), "exposed but not declared"
        for pattern in FAULT_LINES:
            assert value(series, "mongooseim_log_matches_total", pattern=pattern) == 1, pattern
        assert value(series, "mongooseim_dist_port_in_range") == 1
        assert value(series, "mongooseim_cluster_peer_up", peer=peer.node_name,
                     check="auth") == 1
        # The same live scrape, every collector active, lints clean (issue 8 item 4).
        status, _, text = agent.get("/metrics")
        assert status == 200
        assert promtool_problems(text) == []
        assert naming_problems(text) == []
    finally:
        if agent is not None:
            agent.stop()
        stop_nodes([watched, peer])
