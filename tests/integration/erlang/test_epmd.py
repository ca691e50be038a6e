"""The epmd client against a real epmd with real nodes, and against epmd's failure modes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mongooseim_agent.erlang.epmd import EpmdClient
from mongooseim_agent.erlang.errors import (
    EpmdProtocolError,
    EpmdTimeout,
    EpmdUnreachable,
    NodeNotRegistered,
)
from tests.integration.erlang.erlnodes import Epmd, ErlNode, free_port
from tests.integration.erlang.erlnodes import frozen as frozen_process

pytestmark = pytest.mark.integration

TIMEOUT = 1.0


def alive(node: ErlNode) -> str:
    return node.name.split("@")[0]


async def test_names_lists_registered_nodes(epmd: Epmd, node_a: ErlNode, node_b: ErlNode) -> None:
    """NAMES gives every node with the port epmd itself reports."""
    reply = await EpmdClient("127.0.0.1", epmd.port, TIMEOUT).names()
    assert reply.epmd_port == epmd.port
    oracle = epmd.names()
    assert reply.nodes[alive(node_a)] == oracle[alive(node_a)]
    assert reply.nodes[alive(node_b)] == oracle[alive(node_b)]


async def test_port_please2_short_and_long_names(
    epmd: Epmd, node_a: ErlNode, node_b: ErlNode
) -> None:
    """PORT_PLEASE2 finds -sname and -name nodes: port, normal node type, version 6."""
    client = EpmdClient("127.0.0.1", epmd.port, TIMEOUT)
    for node in (node_a, node_b):
        info = await client.port_please2(alive(node))
        assert info.port == epmd.names()[alive(node)]
        assert info.node_type == 77
        assert info.lowest_version <= 6 <= info.highest_version
    # node_a was started with a one-port inet_dist range: epmd reports that port.
    assert node_a.spec.dist_range is not None
    assert (await client.port_please2(alive(node_a))).port == node_a.spec.dist_range[0]


async def test_epmd_not_running() -> None:
    """Nothing listening: EpmdUnreachable, at once."""
    start = time.monotonic()
    with pytest.raises(EpmdUnreachable, match=r"127\.0\.0\.1"):
        await EpmdClient("127.0.0.1", free_port(), TIMEOUT).names()
    assert time.monotonic() - start < TIMEOUT


async def test_node_down_while_epmd_up(epmd: Epmd, fresh_node: ErlNode) -> None:
    """A node that stopped is NodeNotRegistered (epmd up, answering)."""
    name = alive(fresh_node)
    client = EpmdClient("127.0.0.1", epmd.port, TIMEOUT)
    assert (await client.port_please2(name)).port > 0
    fresh_node.stop()
    deadline = time.monotonic() + 5
    while name in epmd.names():
        assert time.monotonic() < deadline, "epmd kept the stopped node registered"
        await asyncio.sleep(0.02)
    with pytest.raises(NodeNotRegistered, match=name):
        await client.port_please2(name)
    assert name not in (await client.names()).nodes


async def test_frozen_epmd_times_out(erl_workdir: Path) -> None:
    """A real epmd that accepts (the kernel does) but never answers: EpmdTimeout in time."""
    frozen = Epmd(erl_workdir)
    try:
        with frozen_process(frozen.pid):
            start = time.monotonic()
            with pytest.raises(EpmdTimeout, match="waiting for the NAMES reply"):
                await EpmdClient("127.0.0.1", frozen.port, TIMEOUT).names()
            assert time.monotonic() - start < TIMEOUT + 0.5
    finally:
        frozen.stop()


async def _fake_epmd(reply: bytes, *, hold: bool = False) -> tuple[asyncio.Server, int]:
    """A FAKE epmd, used only for the garbage case: no real epmd sends these bytes.

    It reads the request, writes `reply`, then closes (or, with `hold`, keeps the
    connection open without sending more, like a half reply that never finishes).
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(reply)
        await writer.drain()
        if hold:
            await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    return server, port


@pytest.fixture
async def servers() -> AsyncIterator[list[asyncio.Server]]:
    started: list[asyncio.Server] = []
    yield started
    for server in started:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"\x00\x00", "cut short"),
        (b"\x00\x00\x11\x11name broken line", "no newline"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "impossible epmd port"),
        (bytes(range(256)), "UTF-8|impossible"),
        (b"\x00\x00\x11\x11" + b"name a at port 1\n" * 20000, "exceeds"),
    ],
)
async def test_garbage_names_reply(
    servers: list[asyncio.Server], reply: bytes, message: str
) -> None:
    """Garbage or a half NAMES reply is EpmdProtocolError, within the timeout."""
    server, port = await _fake_epmd(reply)
    servers.append(server)
    with pytest.raises(EpmdProtocolError, match=message):
        await EpmdClient("127.0.0.1", port, TIMEOUT).names()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"w", "cut short"),
        (b"w\x00\x12\x34M\x00\x00\x06", "cut short"),
        (b"\x00\x00\x00\x00", "starts with 0"),
        (b"w\x01garbage", "trailing"),
    ],
)
async def test_garbage_port2_reply(
    servers: list[asyncio.Server], reply: bytes, message: str
) -> None:
    """Garbage or a half PORT2 reply is EpmdProtocolError."""
    server, port = await _fake_epmd(reply)
    servers.append(server)
    with pytest.raises(EpmdProtocolError, match=message):
        await EpmdClient("127.0.0.1", port, TIMEOUT).port_please2("mongooseim")


async def test_half_reply_that_never_ends(servers: list[asyncio.Server]) -> None:
    """Part of a reply and then silence: EpmdTimeout, not a partial answer."""
    server, port = await _fake_epmd(b"w\x00\x12", hold=True)
    servers.append(server)
    start = time.monotonic()
    with pytest.raises(EpmdTimeout):
        await EpmdClient("127.0.0.1", port, TIMEOUT).port_please2("mongooseim")
    assert time.monotonic() - start < TIMEOUT + 0.5
