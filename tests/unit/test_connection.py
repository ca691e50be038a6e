"""The established-connection layer against a scripted peer on a socketpair.

Real nodes are in the integration tests; this covers what a node only does when something
goes wrong: an io_request from a called function, a late reply, an oversized frame.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mongooseim_agent.erlang import etf
from mongooseim_agent.erlang.connection import DistConnection, Query, frame
from mongooseim_agent.erlang.errors import ConnectionLost, DistTimeout, RpcError
from mongooseim_agent.erlang.etf import Atom, Pid

PEER_PID = Pid(Atom("mongooseim@h"), 77, 0, 1)


@dataclass
class Peer:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def read_frame(self) -> tuple[etf.Term, etf.Term] | None:
        (size,) = struct.unpack(">I", await self.reader.readexactly(4))
        if size == 0:
            return None
        body = await self.reader.readexactly(size)
        assert body[0] == 112
        control, offset = etf.decode_from(body, 1)
        message, _ = etf.decode_from(body, offset)
        return control, message

    def send(self, to: etf.Term, message: etf.Term) -> None:
        self.writer.write(frame((2, Atom(""), to), message))


@pytest.fixture
async def pair() -> AsyncIterator[tuple[DistConnection, Peer]]:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    peer_reader, peer_writer = await asyncio.open_connection(sock=theirs)
    conn = DistConnection.start(reader, writer, own_name="mongooseim_agent_1@h", creation=9,
                                peer_name="mongooseim@h", max_frame=4096)
    yield conn, Peer(peer_reader, peer_writer)
    await conn.close()
    peer_writer.close()


async def rpc_request(peer: Peer) -> tuple[Pid, etf.Reference, etf.Term]:
    received = await peer.read_frame()
    assert received is not None
    control, message = received
    assert isinstance(control, tuple)
    assert control[0] == 6
    assert control[2:] == (Atom(""), Atom("rex"))
    assert isinstance(message, tuple)
    assert message[0] == Atom("$gen_call")
    (caller, ref), request = message[1], message[2]  # type: ignore[misc]
    return caller, ref, request


async def test_call_shape_and_reply(pair: tuple[DistConnection, Peer]) -> None:
    """REG_SEND to rex with a $gen_call; {Ref, Reply} to our pid completes the call."""
    conn, peer = pair
    call = asyncio.create_task(conn.call(Query.PORT_LIMIT, 2))
    caller, ref, request = await rpc_request(peer)
    assert request == (Atom("call"), Atom("erlang"), Atom("system_info"),
                       [Atom("port_limit")], caller)
    assert caller.creation == 9  # the creation sent in the handshake
    peer.send(caller, (ref, 65536))
    assert await call == 65536


async def test_badrpc_and_late_reply(pair: tuple[DistConnection, Peer]) -> None:
    """{badrpc, R} is RpcError; a reply after the timeout is dropped, not misdelivered."""
    conn, peer = pair
    with pytest.raises(DistTimeout, match=r"no reply in 0\.05s"):
        await conn.call(Query.PORT_COUNT, 0.05)
    caller, late_ref, _ = await rpc_request(peer)
    call = asyncio.create_task(conn.call(Query.PORT_COUNT, 2))
    _, ref, _ = await rpc_request(peer)
    peer.send(caller, (late_ref, 1))
    peer.send(caller, (ref, (Atom("badrpc"), (Atom("EXIT"), Atom("undef")))))
    with pytest.raises(RpcError, match=r"badrpc \{'EXIT',undef\}"):
        await call


async def test_io_request_is_answered(pair: tuple[DistConnection, Peer]) -> None:
    """A function that prints would wait on its group leader (us): we answer with an error."""
    conn, peer = pair
    call = asyncio.create_task(conn.call(Query.PORT_COUNT, 2))
    caller, ref, _ = await rpc_request(peer)
    reply_as = etf.Reference(Atom("mongooseim@h"), 1, (5, 6, 7))
    peer.send(caller, (Atom("io_request"), PEER_PID, reply_as,
                       (Atom("put_chars"), Atom("unicode"), b"hi")))
    answer = await peer.read_frame()
    assert answer == ((2, Atom(""), PEER_PID),
                      (Atom("io_reply"), reply_as, (Atom("error"), Atom("enotsup"))))
    peer.send(caller, (ref, 3))
    assert await call == 3


async def test_ticks_are_answered(pair: tuple[DistConnection, Peer]) -> None:
    """An empty frame from the peer gets an empty frame back."""
    _, peer = pair
    peer.writer.write(b"\0\0\0\0")
    assert await asyncio.wait_for(peer.read_frame(), 1) is None


async def test_oversized_frame_drops_the_connection(pair: tuple[DistConnection, Peer]) -> None:
    """A length over max_frame fails pending calls and closes, without reading the body."""
    conn, peer = pair
    call = asyncio.create_task(conn.call(Query.PORT_COUNT, 2))
    await rpc_request(peer)
    peer.writer.write(struct.pack(">I", 1 << 30))
    with pytest.raises(ConnectionLost, match="limit 4096"):
        await call
    assert conn.closed
    with pytest.raises(ConnectionLost, match="is closed"):
        await conn.call(Query.PORT_COUNT, 1)


async def test_peer_close_fails_pending_calls(pair: tuple[DistConnection, Peer]) -> None:
    """EOF from the peer: the pending call gets ConnectionLost at once."""
    conn, peer = pair
    call = asyncio.create_task(conn.call(Query.PORT_COUNT, 5))
    await rpc_request(peer)
    peer.writer.close()
    with pytest.raises(ConnectionLost, match="closed the connection"):
        await asyncio.wait_for(call, 1)


def test_documented_allow_list_is_the_query_enum() -> None:
    """docs/configuration.md lists exactly the calls `Query` allows: no more, no fewer."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    block = doc.split("<!-- allow-list -->")[1].split("<!-- /allow-list -->")[0]
    listed = re.findall(r"^- `([^`]+)`$", block, flags=re.MULTILINE)
    assert sorted(listed) == listed, "keep the documented list sorted"
    assert set(listed) == {str(query) for query in Query}
    assert len(listed) == len(Query)
