"""sd_notify against a real AF_UNIX datagram socket the test owns, as systemd's would be.

READY=1 comes after the first collection; WATCHDOG=1 pings stop while the event loop is
blocked or while collectors make no progress, and come back when they do; SIGHUP gives
RELOADING=1 (with MONOTONIC_USEC) then READY=1; SIGTERM gives STOPPING=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mongooseim_agent.collectors.registry import Assembly
from mongooseim_agent.config import Config, parse_config
from mongooseim_agent.daemon import Daemon
from mongooseim_agent.http import ListenAddress
from mongooseim_agent.metrics import MetricSpec
from mongooseim_agent.sdnotify import Notifier, watchdog_seconds
from mongooseim_agent.snapshot import Snapshot
from tests.support.agentproc import AgentProcess

pytestmark = pytest.mark.integration


class NotifySocket:
    """A bound AF_UNIX datagram socket; a thread stamps each message with its arrival time."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self._sock.settimeout(0.1)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._done.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, value: str | None = None, after: float = 0.0,
                 timeout: float = 20) -> tuple[float, dict[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for stamp, fields in list(self.messages):
                if stamp >= after and key in fields and value in (None, fields[key]):
                    return stamp, fields
            time.sleep(0.01)
        raise AssertionError(f"no {key}={value} after {after}: {self.messages}")

    def pings(self, start: float, end: float) -> list[float]:
        return [t for t, f in list(self.messages) if "WATCHDOG" in f and start <= t <= end]

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        self._sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket(f"@mongooseim-agent-test-{os.getpid()}-{time.monotonic_ns()}")
    yield sock
    sock.close()


def test_notifier_speaks_to_path_and_abstract_sockets(tmp_path: Path) -> None:
    """Both $NOTIFY_SOCKET forms; RELOADING carries MONOTONIC_USEC; no socket: a no-op."""
    for address in (str(tmp_path / "notify"), f"@agent-test-{os.getpid()}"):
        sock = NotifySocket(address)
        try:
            notifier = Notifier(address, monotonic_ns=lambda: 5_000_000_123)
            assert notifier.reloading() and notifier.ready("ok  now\nfine")
            _, reloading = sock.wait_for("RELOADING")
            assert reloading == {"RELOADING": "1", "MONOTONIC_USEC": "5000000"}
            _, ready = sock.wait_for("READY")
            assert ready["STATUS"] == "ok now fine"
            notifier.close()
        finally:
            sock.close()
    assert not Notifier(None).ready("x")
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}, 7) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, 7) is None


class Ticks:
    """A collector that can block the event loop (time.sleep) or stall (never return)."""

    name = "fds"
    interval = 0.05
    timeout = 30.0
    metrics: tuple[MetricSpec, ...] = ()

    def __init__(self) -> None:
        self.block_loop_for = 0.0
        self.stall = asyncio.Event()
        self.unstall = asyncio.Event()

    async def collect(self) -> Snapshot:
        if self.block_loop_for:
            seconds, self.block_loop_for = self.block_loop_for, 0.0
            time.sleep(seconds)  # noqa: ASYNC251 - the point: a wedged event loop
        if self.stall.is_set():
            await self.unstall.wait()
        return Snapshot(self.name)


@contextlib.asynccontextmanager
async def _daemon(tmp_path: Path, sock: NotifySocket, ticks: Ticks) -> AsyncIterator[Daemon]:
    config: Config = parse_config({"agent": {"state_dir": str(tmp_path)}})
    daemon = Daemon(config, None, [ListenAddress("127.0.0.1", 0)],
                    factory=lambda _: Assembly([ticks]),
                    notifier=Notifier(sock.address), watchdog=0.6)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        ticks.unstall.set()
        daemon.request_stop()
        await asyncio.wait_for(task, 10)


async def test_watchdog_pings_stop_while_the_loop_is_blocked(
    tmp_path: Path, abstract_socket: NotifySocket
) -> None:
    """WatchdogSec=0.6: pings every 0.2 s; none during a 1.5 s block of the loop, then again."""
    ticks = Ticks()
    async with _daemon(tmp_path, abstract_socket, ticks):
        await asyncio.to_thread(abstract_socket.wait_for, "READY", "1")
        first, _ = await asyncio.to_thread(abstract_socket.wait_for, "WATCHDOG")
        await asyncio.to_thread(abstract_socket.wait_for, "WATCHDOG", after=first + 0.01)
        blocked_at = time.monotonic()
        ticks.block_loop_for = 1.5
        await asyncio.sleep(0.3)  # the collector runs every 50 ms: this yields to it
        resumed = time.monotonic()
        assert resumed - blocked_at >= 1.5
        after, _ = await asyncio.to_thread(abstract_socket.wait_for, "WATCHDOG", after=resumed)
        during = abstract_socket.pings(blocked_at + 0.25, resumed - 0.05)
        assert during == [], during
        print(f"watchdog: no ping for {after - blocked_at:.2f} s around a 1.5 s block")

        stalled_at = time.monotonic()
        ticks.stall.set()
        await asyncio.sleep(1.5)
        stalled = abstract_socket.pings(stalled_at + 0.5, time.monotonic())
        assert stalled == [], "pinged although no collector made progress"
        ticks.unstall.set()
        ticks.stall.clear()
        await asyncio.to_thread(abstract_socket.wait_for, "WATCHDOG", after=time.monotonic())


def _agent_config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
                    '[node]\nname = "absent@nowhere"\n[probes]\nlisteners = {}\n')
    return path


def test_agent_process_notifies_ready_reloading_and_stopping(
    tmp_path: Path, abstract_socket: NotifySocket
) -> None:
    """The real agent: READY=1 only once /-/ready answers 200; SIGHUP; SIGTERM."""
    agent = AgentProcess(_agent_config(tmp_path), env={"NOTIFY_SOCKET": abstract_socket.address})
    try:
        _, ready = abstract_socket.wait_for("READY", "1")
        url = f"http://127.0.0.1:{agent.port}/-/ready"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
        assert "collectors" in ready["STATUS"]
        sent = time.monotonic()
        agent.signal(signal.SIGHUP)
        reloaded_at, reloading = abstract_socket.wait_for("RELOADING", "1", after=sent)
        usec = int(reloading["MONOTONIC_USEC"])
        assert abs(usec / 1e6 - reloaded_at) < 5  # CLOCK_MONOTONIC, as systemd reads it
        abstract_socket.wait_for("READY", "1", after=reloaded_at)
        agent.signal(signal.SIGTERM)
        abstract_socket.wait_for("STOPPING", "1", after=reloaded_at)
        assert agent.proc.wait(20) == 0
    finally:
        agent.stop()
