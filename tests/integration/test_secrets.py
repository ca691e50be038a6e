"""The cookie never appears in the agent's logs, pages, metrics or check output.

Assertions compare through booleans so a failure cannot print the cookie either.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agentproc import AgentProcess, value
from tests.support.mimnode import MimNode, MimNodeSpec, free_port, unique_sname
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


def _outputs(agent: AgentProcess, config: Path) -> dict[str, str]:
    pages = {path: agent.get(path)[2] for path in ("/", "/metrics", "/node/ready")}
    check = subprocess.run(
        [sys.executable, "-m", "mongooseim_agent", "--config", str(config), "check", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    pages["check stdout"] = check.stdout
    pages["check stderr"] = check.stderr
    return pages


@pytest.mark.parametrize("cookie_source", ["setcookie", "wrong_cookie_file"])
def test_cookie_never_leaks(tmp_path: Path, cookie_source: str) -> None:
    """With the right cookie (from -setcookie) and a wrong one (from cookie_file), no output
    of the agent holds either cookie."""
    require_binary("erl")
    cookie = "c" + secrets.token_hex(12)
    wrong = "w" + secrets.token_hex(12)
    node = MimNode(MimNodeSpec(sname=unique_sname("secret"), c2s_port=free_port(),
                               cookie=cookie), tmp_path / "rel")
    node.start()
    agent: AgentProcess | None = None
    try:
        extra = ""
        if cookie_source == "wrong_cookie_file":
            cookie_file = tmp_path / "cookie"
            cookie_file.write_text(wrong + "\n")
            cookie_file.chmod(0o400)
            extra = f'cookie_file = "{cookie_file}"\n'
        config = tmp_path / "agent.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
            f'[node]\nname = "{node.node_name}"\n{extra}'
            f'[vm]\ninterval = "500ms"\ntimeout = "400ms"\n'
            f'[probes]\ninterval = "500ms"\ntimeout = "100ms"\n'
            f'listeners = {{ c2s = "127.0.0.1:{node.spec.c2s_port}" }}\n'
            f'peers = ["{node.node_name}x"]\n'
        )
        agent = AgentProcess(config, extra_args=["--log.level", "debug"])
        # dist_auth_success: a handshake got its answer (a first run that timed out under
        # load has none), so vm_ports is there exactly when the cookie is right.
        series = agent.poll_metrics(
            lambda s: value(s, "mongooseim_agent_collector_success", collector="vm") == 1
            and value(s, "mongooseim_agent_collector_success", collector="probes") == 1
            and value(s, "mongooseim_dist_auth_success") is not None
        )
        got = value(series, "mongooseim_vm_ports")
        assert (got is not None) == (cookie_source == "setcookie")
        outputs = _outputs(agent, config)
        if cookie_source == "wrong_cookie_file":
            assert "cookie does not match" in outputs["check stdout"]
        logs = agent.all_logs()
        assert any(line.get("event") == "collectors started" for line in logs)
        outputs["agent log"] = "\n".join(str(line) for line in logs)
        for where, text in outputs.items():
            leaked = cookie in text or wrong in text
            assert not leaked, f"a cookie appeared in {where}"
    finally:
        if agent is not None:
            agent.stop()
        node.stop()
