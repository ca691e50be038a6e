"""epmd replies: strict parsing of NAMES and PORT2, garbage and half replies refused."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mongooseim_agent.erlang.epmd import (
    NodeInfo,
    names_request,
    parse_names_reply,
    parse_port2_reply,
    port_please2_request,
)
from mongooseim_agent.erlang.errors import EpmdProtocolError, NodeNotRegistered

NAMES = struct.pack(">I", 4369) + b"name mongooseim at port 41234\nname a_1 at port 9100\n"


def port2(name: bytes = b"mongooseim", port: int = 41234, extra: bytes = b"") -> bytes:
    return (bytes([119, 0]) + struct.pack(">HBBHHH", port, 77, 0, 6, 5, len(name)) + name
            + struct.pack(">H", len(extra)) + extra)


def test_names_reply() -> None:
    """Every registered node with its port."""
    reply = parse_names_reply(NAMES)
    assert reply.epmd_port == 4369
    assert dict(reply.nodes) == {"mongooseim": 41234, "a_1": 9100}


def test_names_reply_with_no_nodes() -> None:
    """epmd with nothing registered sends just its port."""
    assert dict(parse_names_reply(struct.pack(">I", 4369)).nodes) == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "cut short"),
        (b"\x00\x00\x11", "cut short"),
        (struct.pack(">I", 0), "impossible epmd port"),
        (NAMES[:-1], "no newline"),
        (NAMES + b"garbage\n", "line 3"),
        (struct.pack(">I", 4369) + b"name a at port 70000\n", "impossible port"),
        (struct.pack(">I", 4369) + b"name a at port 1\nname a at port 2\n", "twice"),
        (struct.pack(">I", 4369) + b"name \xff at port 1\n", "UTF-8"),
        (struct.pack(">I", 4369) + b"name a at port 1\r\n", "line 1"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "impossible epmd port"),
    ],
)
def test_bad_names_replies(data: bytes, message: str) -> None:
    """Anything epmd would not send is an EpmdProtocolError saying what is wrong."""
    with pytest.raises(EpmdProtocolError, match=message):
        parse_names_reply(data)


def test_port2_reply() -> None:
    """Port, type and version range of a registered node."""
    assert parse_port2_reply(port2(extra=b"x"), "mongooseim") == NodeInfo(
        "mongooseim", 41234, 77, 0, 6, 5, b"x"
    )


def test_port2_not_registered() -> None:
    """A non-zero result is its own outcome: epmd is up, the node is not there."""
    with pytest.raises(NodeNotRegistered, match="'gone'"):
        parse_port2_reply(bytes([119, 1]), "gone")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "cut short"),
        (b"w", "cut short"),
        (bytes([120, 0]), "starts with 120"),
        (bytes([119, 1, 0]), "trailing"),
        (port2()[:10], "cut short"),
        (port2()[:-3], "cut short inside the node name|length fields"),
        (port2() + b"\x00", "length fields"),
        (port2(name=b"other"), "is for 'other'"),
        (port2(port=0), "port 0"),
        (port2(name=b"\xff"), "UTF-8"),
    ],
)
def test_bad_port2_replies(data: bytes, message: str) -> None:
    """Half or malformed PORT2 replies are refused."""
    with pytest.raises(EpmdProtocolError, match=message):
        parse_port2_reply(data, "mongooseim")


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_arbitrary_bytes_are_a_clear_error(data: bytes) -> None:
    """Garbage gives an epmd error type, never another exception."""
    for parse in (parse_names_reply, lambda d: parse_port2_reply(d, "x")):
        with contextlib.suppress(EpmdProtocolError, NodeNotRegistered):
            parse(data)


def test_requests() -> None:
    """Requests are length-prefixed; PORT_PLEASE2 takes the alive part only."""
    assert names_request() == b"\x00\x01n"
    assert port_please2_request("mongooseim") == b"\x00\x0bzmongooseim"
    for bad in ("", "a@b", "x" * 256):
        with pytest.raises(ValueError, match="alive name"):
            port_please2_request(bad)
