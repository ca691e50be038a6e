"""Node discovery has its own home: refreshed before any collector, the same in daemon and check."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mongooseim_agent.collectors.registry import Assembly
from mongooseim_agent.commands.check import collect_once
from mongooseim_agent.config import Config
from mongooseim_agent.daemon import Daemon
from mongooseim_agent.http import ListenAddress
from mongooseim_agent.metrics import MetricSpec
from mongooseim_agent.mongooseim.discovery import Discovery, NodeLocator, NodeTracker
from mongooseim_agent.mongooseim.nodewatch import NodeWatch
from mongooseim_agent.snapshot import Snapshot
from tests.support.fakeproc import add_otp_install, add_process, beam_argv, make_host


def _watch(root: Path, interval: float = 1.0) -> NodeWatch:
    tracker = NodeTracker(NodeLocator(proc_root=root, hostname=lambda: "h"), "m@h")
    return NodeWatch(tracker, interval)


class Reader:
    """A periodic collector that records what the watch held when it ran."""

    interval = 60.0
    timeout = 5.0
    metrics: tuple[MetricSpec, ...] = ()

    def __init__(self, name: str, watch: NodeWatch) -> None:
        self.name = name
        self._watch = watch
        self.seen: list[str | None] = []
        self.ran = asyncio.Event()

    async def collect(self) -> Snapshot:
        node = self._watch.current
        self.seen.append(node.name if node is not None else None)
        self.ran.set()
        return Snapshot(self.name)


class Background(Reader):
    """A background collector listed first: it must not decide when discovery happens."""

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


async def test_refresh_finds_the_node_and_follows_its_exit(tmp_path: Path) -> None:
    """Nothing is known before the first refresh; a vanished process is noticed on the next."""
    make_host(tmp_path)
    otp = add_otp_install(tmp_path / "otp", "25.3")
    add_process(tmp_path, 7, beam_argv("-sname", "m", root=str(otp)))
    watch = _watch(tmp_path)
    assert watch.current is None
    assert watch.discovery.problem == "node discovery has not run yet"
    found = await watch.refresh()
    assert found.node is not None and watch.current == found.node
    assert found.node.otp_release == "25.3"
    (tmp_path / "7" / "stat").unlink()
    assert (await watch.refresh()).node is None
    assert watch.discovery.problem == "no running beam.smp with node name m@h"


async def test_check_refreshes_discovery_before_any_collector(tmp_path: Path) -> None:
    """`check` with a background collector listed first: every periodic one sees the node."""
    make_host(tmp_path)
    add_process(tmp_path, 7, beam_argv("-sname", "m"))
    watch = _watch(tmp_path)
    first, second = Reader("a", watch), Reader("b", watch)
    await collect_once([Background("logs", watch), first, second], watch)
    assert first.seen == second.seen == ["m@h"]


async def test_daemon_refreshes_discovery_before_any_collector(tmp_path: Path) -> None:
    """The daemon drives the watch the same way, and keeps refreshing it on its interval."""
    make_host(tmp_path)
    add_process(tmp_path, 7, beam_argv("-sname", "m"))
    lost = asyncio.Event()

    class Watch(NodeWatch):
        async def refresh(self) -> Discovery:
            found = await super().refresh()
            if found.node is None:
                lost.set()
            return found

    watch = Watch(NodeTracker(NodeLocator(proc_root=tmp_path, hostname=lambda: "h"), "m@h"),
                  0.05)
    readers = [Reader("a", watch), Reader("b", watch)]
    assembly = Assembly([Background("logs", watch), *readers], watch=watch)
    daemon = Daemon(Config(), None, [ListenAddress("127.0.0.1", 0)],
                    factory=lambda _config: assembly)
    task = asyncio.create_task(daemon.run())
    async with asyncio.timeout(10):
        await asyncio.gather(*(r.ran.wait() for r in readers))
    assert [r.seen[0] for r in readers] == ["m@h", "m@h"]
    (tmp_path / "7" / "stat").unlink()
    async with asyncio.timeout(10):
        await lost.wait()
    assert watch.current is None
    daemon.request_stop()
    await asyncio.wait_for(task, 10)


async def test_run_refreshes_on_a_fixed_schedule(tmp_path: Path) -> None:
    """run() refreshes every interval on an injected clock, and survives a failing lookup."""
    make_host(tmp_path)
    now = [0.0]
    delays: list[float] = []

    class Stop(Exception):
        pass

    async def sleep(delay: float) -> None:
        delays.append(delay)
        now[0] += delay
        if len(delays) == 3:
            raise Stop

    class Broken(NodeTracker):
        def refresh(self):  # type: ignore[no-untyped-def]
            raise OSError("proc unreadable")

    watch = NodeWatch(Broken(NodeLocator(proc_root=tmp_path), None), 2.0,
                      monotonic=lambda: now[0], sleep=sleep)
    with pytest.raises(Stop):
        await watch.run()
    assert delays == [2.0, 2.0, 2.0]
    assert watch.discovery.problem == "node discovery failed: OSError: proc unreadable"
