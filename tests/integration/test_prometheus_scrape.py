"""A real Prometheus scrapes the real agent: the exposition is accepted and queryable."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support.agentproc import AgentProcess
from tests.support.beam import HoldingBeam
from tests.support.mimnode import free_port
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


def _query(port: int, expr: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, object]] = json.load(response)["data"]["result"]
        return result


def test_prometheus_scrapes_and_stores_agent_series(tmp_path: Path) -> None:
    """Prometheus reports the target up, and the fd gauge it stored equals the node's count."""
    prometheus = require_binary("prometheus")
    require_binary("erl")
    beam = HoldingBeam(77, tmp_path)
    node = f"{beam.sname}@{socket.gethostname().split('.')[0]}"
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[node]\nname = "{node}"\n'
                      "[probes]\nlisteners = {}\n")
    agent = AgentProcess(config)
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: mongooseim-agent\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{agent.port}']\n"
    )
    server = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        fds: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            try:
                fds = _query(prom_port, "mongooseim_process_open_fds")
            except OSError:
                fds = []
            if fds:
                break
            time.sleep(0.5)
        assert fds, "Prometheus never stored mongooseim_process_open_fds"
        assert float(fds[0]["value"][1]) == beam.open_fds()  # type: ignore[index]
        up = _query(prom_port, 'up{job="mongooseim-agent"}')
        assert float(up[0]["value"][1]) == 1  # type: ignore[index]
        errors = _query(prom_port, "scrape_samples_post_metric_relabeling")
        assert float(errors[0]["value"][1]) > 20  # type: ignore[index]
    finally:
        server.terminate()
        server.wait(20)
        agent.stop()
        beam.stop()
