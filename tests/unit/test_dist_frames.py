"""Distribution frames and the rpc allow-list, without a socket."""

from __future__ import annotations

import struct

import pytest

from mongooseim_agent.erlang import etf
from mongooseim_agent.erlang.connection import (
    Delivery,
    Query,
    frame,
    parse_frame,
    reply_int,
    reply_nodes,
)
from mongooseim_agent.erlang.dist import client_names, split_node_name
from mongooseim_agent.erlang.errors import ConnectionLost, RpcError
from mongooseim_agent.erlang.etf import Atom, Pid

SELF = Pid(Atom("mongooseim_agent_1@h"), 1, 0, 5)


def test_allow_list_is_closed_and_read_only() -> None:
    """Only these calls exist; each is a system_info or nodes read a collector makes."""
    mfas = {(q.module, q.function, tuple(q.args)) for q in Query}
    assert mfas == {
        ("mnesia", "system_info", ("db_nodes",)),
        ("mnesia", "system_info", ("running_db_nodes",)),
        ("mnesia", "system_info", ("is_running",)),
        ("erlang", "system_info", ("port_count",)),
        ("erlang", "system_info", ("port_limit",)),
        ("erlang", "system_info", ("process_count",)),
        ("erlang", "system_info", ("process_limit",)),
        ("erlang", "nodes", ()),
        ("cets_status", "status", ("mongoose_cets_discovery",)),
    }
    assert str(Query.NODES) == "erlang:nodes()"
    assert str(Query.PORT_LIMIT) == "erlang:system_info(port_limit)"


def test_frame_round_trip() -> None:
    """A SEND frame we build parses back to its destination and message."""
    data = frame((2, Atom(""), SELF), (Atom("hello"), 1))
    (size,) = struct.unpack(">I", data[:4])
    assert size == len(data) - 4
    assert parse_frame(data[4:]) == Delivery(SELF, (Atom("hello"), 1))


def test_other_control_messages_are_ignored() -> None:
    """LINK, EXIT, REG_SEND and undecodable frames are not deliveries."""
    assert parse_frame(frame((1, SELF, SELF), Atom("x"))[4:]) is None
    assert parse_frame(frame((6, SELF, Atom(""), Atom("rex")), Atom("x"))[4:]) is None
    assert parse_frame(b"p\x83q") is None
    assert parse_frame(frame((2, Atom(""), SELF), 1)[4:] + b"junk") is None


def test_non_pass_through_frame_is_a_protocol_error() -> None:
    """Atom-cache headers mean the peer ignored our flags: the connection is dropped."""
    with pytest.raises(ConnectionLost, match="pass-through"):
        parse_frame(b"\x83D\x00")


def test_reply_shapes() -> None:
    """Replies are checked before use."""
    assert reply_int(Query.PORT_COUNT, 12) == 12
    assert reply_nodes(Query.NODES, [Atom("a@b")]) == ("a@b",)
    with pytest.raises(RpcError, match="expected an integer"):
        reply_int(Query.PORT_COUNT, Atom("undefined"))
    with pytest.raises(RpcError, match="list of nodes"):
        reply_nodes(Query.NODES, [b"a@b"])
    with pytest.raises(RpcError):
        reply_int(Query.PORT_COUNT, True)


def test_name_pool() -> None:
    """A fixed pool of names on the watched node's host."""
    assert client_names("h", 3) == (
        "mongooseim_agent_1@h", "mongooseim_agent_2@h", "mongooseim_agent_3@h")
    with pytest.raises(ValueError, match="at least one"):
        client_names("h", 0)


@pytest.mark.parametrize("bad", ["", "a", "@h", "a@", "a@b@c", "a b@h"])
def test_node_names(bad: str) -> None:
    """Node names must be alive@host."""
    assert split_node_name("mongooseim@localhost") == ("mongooseim", "localhost")
    with pytest.raises(ValueError, match="name@host"):
        split_node_name(bad)


def test_frame_refuses_str() -> None:
    """Frames are built from terms only."""
    with pytest.raises(etf.TermEncodeError):
        frame("x", 1)  # type: ignore[arg-type]
