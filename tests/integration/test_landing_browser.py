"""The landing page in a real headless Chromium: healthy, critical and drained, on a real node
and a real agent, with screenshots and DOM assertions (problem row first, host and node in
the heading)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agentproc import AgentProcess, value
from tests.support.beam import HoldingBeam
from tests.support.browser import Chromium, PageDom
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

# Screenshots are kept here (CI artifacts, or a look with an image viewer) when set.
SHOTS = os.environ.get("LANDING_SCREENSHOTS")


@pytest.fixture(scope="module")
def beam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HoldingBeam]:
    require_binary("erl")
    holder = HoldingBeam(40, tmp_path_factory.mktemp("beam"))
    yield holder
    holder.stop()


def _shot(browser: Chromium, url: str, tmp_path: Path, name: str) -> Path:
    path = browser.screenshot(url, tmp_path / f"landing-{name}.png")
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SHOTS) / path.name)
    # A real PNG of the page, not an error page: big enough to hold the drawn page.
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    return path


def test_landing_page_healthy_critical_and_drained_in_chromium(
    tmp_path: Path, beam: HoldingBeam
) -> None:
    """Host and node in title and heading; the critical row first; the drain coloured."""
    browser = Chromium()
    node = f"{beam.sname}@{socket.gethostname().split('.')[0]}"
    log = tmp_path / "mongooseim.log"
    log.touch()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[node]\nname = "{node}"\n'
        f'[probes]\nlisteners = {{}}\n[logs]\npaths = ["{log}"]\npoll_interval = "100ms"\n'
    )
    agent = AgentProcess(config)
    try:
        agent.poll_metrics(lambda s: value(s, "mongooseim_node_ready") == 1)
        url = f"http://127.0.0.1:{agent.port}/"
        host = socket.gethostname()

        healthy = PageDom(browser.dump_dom(url))
        assert node in healthy.heading and host in healthy.heading
        assert node in healthy.title and host in healthy.title
        assert healthy.banner_class == "banner ok" and healthy.banner.startswith("OK")
        assert all(cls == "ok" for _, cls in healthy.rows), healthy.rows
        assert healthy.svgs == 3 and not healthy.drain
        _shot(browser, url, tmp_path, "healthy")

        with log.open("a") as out:
            out.write("2026-11-30T03:00:00Z level=error what=pool_reconnect reason=emfile\n")
        agent.poll_metrics(
            lambda s: value(s, "mongooseim_log_matches_total", pattern="emfile") == 1)
        critical = PageDom(browser.dump_dom(url))
        assert critical.rows[0] == ("log_emfile", "critical"), critical.rows[:3]
        assert critical.banner_class == "banner critical"
        assert critical.banner.startswith("CRITICAL") and "1 critical" in critical.banner
        assert critical.title.startswith("CRITICAL")
        _shot(browser, url, tmp_path, "critical")

        subprocess.run(
            [sys.executable, "-m", "mongooseim_agent", "--config", str(config), "drain",
             "--reason", "kernel upgrade"],
            check=True, capture_output=True, timeout=60, env={**os.environ, "SUDO_USER": "bob"},
        )
        drained = PageDom(browser.dump_dom(url))
        assert "kernel upgrade" in drained.drain and "bob" in drained.drain
        assert drained.drain.startswith("DRAINED")
        _shot(browser, url, tmp_path, "drained")
    finally:
        assert agent.stop() == 0
