"""SIGHUP reloads run in tasks the daemon keeps; a burst of signals coalesces."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from pathlib import Path

from structlog.testing import capture_logs

from mongooseim_agent.collectors.registry import Assembly
from mongooseim_agent.config import Config
from mongooseim_agent.daemon import Daemon
from mongooseim_agent.http import ListenAddress


async def test_sighup_burst_reloads_at_most_twice_and_stop_waits(tmp_path: Path) -> None:
    """Ten SIGHUPs at once: the reload tasks survive a gc and run to completion (one plus
    one queued, which reads the newest file); stopping then finishes cleanly."""
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path}"\n')
    built: list[Config] = []
    started, reloaded_twice = asyncio.Event(), asyncio.Event()

    def factory(cfg: Config) -> Assembly:
        built.append(cfg)
        started.set()
        if len(built) == 3:
            reloaded_twice.set()
        return Assembly([])

    daemon = Daemon(Config(), config, [ListenAddress("127.0.0.1", 0)], factory=factory)
    with capture_logs() as logs:
        task = asyncio.create_task(daemon.run())
        async with asyncio.timeout(10):
            await started.wait()
        for _ in range(10):
            os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0)
        gc.collect()
        async with asyncio.timeout(10):
            await reloaded_twice.wait()
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
    assert [e["event"] for e in logs].count("config reloaded") == 2
    assert len(built) == 3
