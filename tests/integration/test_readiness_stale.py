"""Stored verdicts expire: a collector that hangs takes the node out of /node/ready.

The real daemon and HTTP server, with two stand-in collectors (the node itself is not what
is tested here): `fds` says the node is up; `probes` answers once, then hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mongooseim_agent.collectors.registry import Assembly
from mongooseim_agent.config import Config, parse_config
from mongooseim_agent.daemon import Daemon
from mongooseim_agent.http import ListenAddress
from mongooseim_agent.metrics import MetricSpec
from mongooseim_agent.snapshot import Check, Snapshot, Status

pytestmark = pytest.mark.integration


class NodeUp:
    name = "fds"
    interval = 0.2
    timeout = 0.1
    metrics: tuple[MetricSpec, ...] = ()

    async def collect(self) -> Snapshot:
        return Snapshot(self.name, checks=(
            Check("node_process", Status.OK, "up", affects_readiness=True),
        ))


class Hangs:
    """Answers once, then hangs; `stubborn` also ignores the runner's cancellation, as a
    collector stuck in code that swallows CancelledError would."""

    name = "probes"
    interval = 0.2
    timeout = 0.1
    metrics: tuple[MetricSpec, ...] = ()

    def __init__(self, stubborn: bool) -> None:
        self.stubborn = stubborn
        self.calls = 0
        self.release = asyncio.Event()

    async def collect(self) -> Snapshot:
        self.calls += 1
        if self.calls > 1:
            while not self.release.is_set():
                try:
                    await self.release.wait()
                except asyncio.CancelledError:
                    if not self.stubborn:
                        raise
        return Snapshot(self.name, checks=(
            Check("listener_c2s", Status.OK, "c2s accepts connections", affects_readiness=True),
        ))


@contextlib.asynccontextmanager
async def _daemon(tmp_path: Path, hangs: Hangs) -> AsyncIterator[str]:
    config: Config = parse_config({"agent": {"state_dir": str(tmp_path)}})
    daemon = Daemon(config, None, [ListenAddress("127.0.0.1", 0)],
                    factory=lambda _: Assembly([NodeUp(), hangs]))
    task = asyncio.create_task(daemon.run())
    deadline = time.monotonic() + 10
    while not daemon.bound:
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{daemon.bound[0][1]}/node/ready"
    finally:
        hangs.release.set()
        daemon.request_stop()
        await asyncio.wait_for(task, 10)


async def _poll(url: str, want: int, within: float = 10) -> tuple[dict[str, Any], float]:
    """GET until the status is `want`; the body and when it turned."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(url) as response:
                body = await response.json()
                if response.status == want:
                    return body, time.monotonic()
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.02)


def _blocking(body: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["reason"] for c in body["conditions"] if not c["ok"]}


async def test_hanging_collector_fails_its_conditions(tmp_path: Path) -> None:
    """Cut at its timeout, the collector stores no checks; its listener check fails closed."""
    hangs = Hangs(stubborn=False)
    async with _daemon(tmp_path, hangs) as url:
        body, _ = await _poll(url, 200)
        assert _blocking(body) == {}
        body, _ = await _poll(url, 503)
        assert _blocking(body) == {"listener_c2s": "collector failed"}
        c2s = next(c for c in body["conditions"] if c["name"] == "listener_c2s")
        assert c2s["value"] == (
            "collector probes failed: timed out after 0.1s; "
            "last verdict: c2s accepts connections"
        )
        async with aiohttp.ClientSession() as session:
            async with session.head(url) as response:
                assert response.status == 503 and await response.read() == b""
            # One caller may exempt conditions for itself (HAProxy: ?ignore=drained).
            async with session.get(url, params={"ignore": "drained,listener_c2s"}) as response:
                assert response.status == 200
                ignored = await response.json()
            c2s = next(c for c in ignored["conditions"] if c["name"] == "listener_c2s")
            assert (c2s["ok"], c2s["exempt"], ignored["reasons"]) == (False, True, [])


async def test_collector_ignoring_its_timeout_is_stale_then_stuck(tmp_path: Path) -> None:
    """A run that never returns leaves the old verdict in the store: it turns "stale" after
    3 intervals plus the timeout (0.7 s), then "stuck" a second past the timeout, instead of
    answering 200 for ever."""
    hangs = Hangs(stubborn=True)
    async with _daemon(tmp_path, hangs) as url:
        await _poll(url, 200)
        hung_at = time.monotonic()
        body, turned = await _poll(url, 503)
        assert _blocking(body) == {"listener_c2s": "stale"}
        assert 0.5 <= turned - hung_at <= 5.0
        deadline = time.monotonic() + 10
        while _blocking(body) != {"listener_c2s": "stuck"}:
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)
            body, _ = await _poll(url, 503)
        c2s = next(c for c in body["conditions"] if c["name"] == "listener_c2s")
        assert c2s["value"].startswith("collector probes stuck: running for ")
        assert c2s["value"].endswith("timeout 0.1s; last verdict: c2s accepts connections")
        # Its last stored run succeeded, yet the collector shows as failing while stuck.
        metrics = url.replace("/node/ready", "/metrics")
        success = 'mongooseim_agent_collector_success{collector="probes"}'
        deadline = time.monotonic() + 10
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(metrics) as response:
                    lines = (await response.text()).splitlines()
                if f"{success} 0.0" in lines:
                    break
                assert f"{success} 1.0" in lines and time.monotonic() < deadline
                await asyncio.sleep(0.1)
            assert 'mongooseim_agent_collector_success{collector="fds"} 1.0' in lines
