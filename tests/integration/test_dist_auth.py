"""mongooseim_dist_auth_success: the watched node itself accepts or refuses the agent's cookie."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from tests.support.agentproc import AgentProcess, value
from tests.support.mimnode import MimNode, MimNodeSpec, free_port, unique_sname
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

INTERVAL = 2.0


@pytest.mark.parametrize(("cookie_file_holds", "expected"), [("right", 1), ("wrong", 0)])
def test_auth_metric_within_one_interval(
    tmp_path: Path, cookie_file_holds: str, expected: int
) -> None:
    """A real node; the agent's cookie file right or wrong: the metric is 1 or 0 (present, so
    an alert needs no absent()) within one interval of the collectors starting."""
    require_binary("erl")
    cookie = "c" + secrets.token_hex(12)
    node = MimNode(MimNodeSpec(sname=unique_sname("auth"), c2s_port=free_port(), cookie=cookie),
                   tmp_path / "rel")
    node.start()
    agent: AgentProcess | None = None
    try:
        cookie_file = tmp_path / "cookie"
        cookie_file.write_text((cookie if cookie_file_holds == "right" else "w" + cookie) + "\n")
        cookie_file.chmod(0o400)
        config = tmp_path / "agent.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
            f'[node]\nname = "{node.node_name}"\ncookie_file = "{cookie_file}"\n'
            f'[vm]\ninterval = "{INTERVAL}s"\n[probes]\ninterval = "{INTERVAL}s"\n'
            f'listeners = {{ c2s = "127.0.0.1:{node.spec.c2s_port}" }}\n'
        )
        agent = AgentProcess(config)
        agent.wait_log("collectors started", timeout=20)
        started = time.monotonic()
        series = agent.poll_metrics(
            lambda s: value(s, "mongooseim_dist_auth_success") is not None, timeout=INTERVAL
        )
        elapsed = time.monotonic() - started
        assert value(series, "mongooseim_dist_auth_success") == expected
        assert elapsed < INTERVAL
        assert (value(series, "mongooseim_vm_ports") is not None) == (expected == 1)
    finally:
        if agent is not None:
            agent.stop()
        node.stop()
