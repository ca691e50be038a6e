"""sock_diag request building and reply counting, on hand-made netlink datagrams."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mongooseim_agent.loadbalancer.sockdiag import (
    NLMSG_DONE,
    NLMSG_ERROR,
    SOCK_DIAG_BY_FAMILY,
    DumpCount,
    SockDiagError,
    dump_request,
    port_bytecode,
)


def _msg(kind: int, payload: bytes, seq: int = 7) -> bytes:
    length = 16 + len(payload)
    padded = payload + b"\0" * (-length % 4)
    return struct.pack("=IHHII", length, kind, 2, seq, 0) + padded


def _sock(sport: int, state: int = 1) -> bytes:
    # inet_diag_msg: family, state, timer, retrans, sockid (sport, dport big-endian, ...)
    return struct.pack("!BBBBHH", socket.AF_INET, state, 0, 0, sport, 40000) + b"\0" * 64


def test_port_filter_bytecode_rejects_by_jumping_past_the_end() -> None:
    """S_GE then S_LE, each failure jumping to len + 4; ports in the follow-on op."""
    assert port_bytecode(5222) == struct.pack(
        "=BBHBBHBBHBBH", 2, 8, 20, 0, 0, 5222, 3, 8, 12, 0, 0, 5222
    )
    with pytest.raises(ValueError, match="port 0 out of range"):
        port_bytecode(0)


def test_dump_request_layout() -> None:
    """nlmsghdr, inet_diag_req_v2 (TCP, ESTABLISHED only), one bytecode attribute."""
    request = dump_request(socket.AF_INET6, 5222, seq=9)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", request)
    assert (length, kind, flags, seq, pid) == (len(request), 20, 0x301, 9, 0)
    family, protocol, ext, states = struct.unpack_from("=BBBxI", request, 16)
    assert (family, protocol, ext, states) == (socket.AF_INET6, socket.IPPROTO_TCP, 0, 2)
    assert struct.unpack_from("=HH", request, 16 + 56) == (4 + 16, 1)
    assert request[16 + 60 :] == port_bytecode(5222)


def test_counts_matching_sockets_until_done_across_datagrams() -> None:
    """Messages of another sequence number, port or state are not counted."""
    state = DumpCount(5222, 7)
    state.feed(memoryview(_msg(SOCK_DIAG_BY_FAMILY, _sock(5222)) * 3
                          + _msg(SOCK_DIAG_BY_FAMILY, _sock(5222), seq=6)
                          + _msg(SOCK_DIAG_BY_FAMILY, _sock(5269))
                          + _msg(SOCK_DIAG_BY_FAMILY, _sock(5222, state=8))))
    assert (state.count, state.done) == (3, False)
    state.feed(memoryview(_msg(SOCK_DIAG_BY_FAMILY, _sock(5222)) + _msg(NLMSG_DONE, b"\0" * 4)))
    assert (state.count, state.done) == (4, True)


def test_kernel_error_is_raised_with_its_errno() -> None:
    state = DumpCount(5222, 7)
    with pytest.raises(SockDiagError) as caught:
        state.feed(memoryview(_msg(NLMSG_ERROR, struct.pack("=i", -22) + b"\0" * 16)))
    assert caught.value.errno == 22


def test_truncated_message_is_a_value_error() -> None:
    data = _msg(SOCK_DIAG_BY_FAMILY, _sock(5222))
    with pytest.raises(ValueError, match="netlink message of length"):
        DumpCount(5222, 7).feed(memoryview(data[:40]))
    with pytest.raises(ValueError, match="inet_diag_msg of"):
        DumpCount(5222, 7).feed(memoryview(_msg(SOCK_DIAG_BY_FAMILY, b"\0\0")))


@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_crash_or_hang(data: bytes) -> None:
    """Hostile datagrams end in a count, ValueError or SockDiagError, in bounded time."""
    state = DumpCount(5222, 7)
    try:
        state.feed(memoryview(data))
    except (ValueError, SockDiagError):
        return
    assert state.count <= len(data) // 16
