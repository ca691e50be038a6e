"""An authenticated peer that floods and never reads cannot exhaust the agent's memory or CPU.

The peer is a real process on a real socket (tests/support/flood_peer.py). Before the fix a
tick or io_request flood grew the agent without bound and kept the event loop busy.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from mongooseim_agent.erlang.connection import DistConnection, Query
from mongooseim_agent.erlang.errors import ConnectionLost, DistError

pytestmark = pytest.mark.integration


@pytest.fixture
def peer_process(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.flood_peer", request.param],
                            stdout=subprocess.PIPE, text=True)
    yield proc
    proc.kill()
    proc.wait(10)


async def _loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late a 10 ms timer fires: what a /node/ready request would wait for the loop."""
    while not stop.is_set():
        start = time.monotonic()
        await asyncio.sleep(0.01)
        lags.append(time.monotonic() - start - 0.01)


@pytest.mark.parametrize("peer_process", ["ticks", "frames", "io_requests"], indirect=True)
async def test_flood_is_dropped_with_bounded_memory_and_loop_lag(
    peer_process: subprocess.Popen[str],
) -> None:
    """The connection is dropped within seconds, RSS grows by under 32 MB, and the event
    loop keeps answering timers (p99 lag under 100 ms)."""
    assert peer_process.stdout is not None
    port = int(peer_process.stdout.readline())
    me = psutil.Process()
    rss_before = me.memory_info().rss
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = DistConnection.start(reader, writer, own_name="mongooseim_agent_1@h", creation=9,
                                peer_name="mongooseim@h")
    stop = asyncio.Event()
    lags: list[float] = []
    lag_task = asyncio.create_task(_loop_lag(stop, lags))
    started = time.monotonic()
    try:
        with pytest.raises(DistError):
            # io_requests mode needs a call in flight; the other modes simply flood.
            await conn.call(Query.PORT_COUNT, 20)
        took = time.monotonic() - started
        assert conn.closed
    finally:
        stop.set()
        await lag_task
        await conn.close()
    grown = (me.memory_info().rss - rss_before) / 1e6
    lags.sort()
    p99 = lags[int(len(lags) * 0.99)] if lags else 0.0
    print(f"flood dropped after {took:.2f}s: {conn.close_reason}; RSS +{grown:.1f} MB, "
          f"loop lag p99 {p99 * 1e3:.1f} ms over {len(lags)} timers, fds "
          f"{me.num_fds()}, threads {me.num_threads()}")
    assert took < 10
    assert grown < 32
    assert p99 < 0.1
    assert conn.close_reason is not None
    assert ("flooding" in conn.close_reason) or ("does not read" in conn.close_reason)


def test_connection_lost_is_a_dist_error() -> None:
    """Callers catch the drop as the DistError they already handle."""
    assert issubclass(ConnectionLost, DistError)
