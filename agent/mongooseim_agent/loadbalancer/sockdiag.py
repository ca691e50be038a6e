"""Established TCP connections on a local port, counted by the kernel's socket diagnostics.

One NETLINK_SOCK_DIAG dump per address family (inet_diag_req_v2, TCP, state ESTABLISHED)
with a bytecode filter `sport >= P && sport <= P`: the kernel walks its socket hash and
sends only the matching sockets, so the cost follows the connections on that port, not every
socket on the host as reading /proc/net/tcp does (whose text the kernel formats line by line
for every socket). No privilege is needed: sock_diag shows every user's sockets, as `ss` does.

The request builders and the reply parser are pure; `SockDiag` does the IO.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_DUMP = 0x300
TCP_ESTABLISHED = 1
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_BC_S_GE = 2
INET_DIAG_BC_S_LE = 3

_NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_req_v2 without its 48-byte inet_diag_sockid (left zero: no socket named).
_REQ_V2 = struct.Struct("=BBBxI48x")
_NLATTR = struct.Struct("=HH")
_BC_OP = struct.Struct("=BBH")
# inet_diag_msg starts: family, state, timer, retrans, then sockid.sport (network order).
_MSG_HEAD = struct.Struct("!BBBBH")
_MAX_REPLY_BYTES = 1 << 31


class SockDiagError(OSError):
    """The kernel refused or broke the dump; str() says which request and why."""


def port_bytecode(port: int) -> bytes:
    """sport >= port && sport <= port. A failed test jumps past the end (len + 4), which the
    kernel reads as "reject"; the port of a comparison sits in the following op's `no`."""
    if not 0 < port <= 65535:
        raise ValueError(f"port {port} out of range")
    return b"".join((
        _BC_OP.pack(INET_DIAG_BC_S_GE, 8, 20), _BC_OP.pack(0, 0, port),
        _BC_OP.pack(INET_DIAG_BC_S_LE, 8, 12), _BC_OP.pack(0, 0, port),
    ))


def dump_request(family: int, port: int, seq: int) -> bytes:
    """A SOCK_DIAG_BY_FAMILY dump of established TCP sockets whose local port is `port`."""
    bytecode = port_bytecode(port)
    payload = (
        _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, 1 << TCP_ESTABLISHED)
        + _NLATTR.pack(_NLATTR.size + len(bytecode), INET_DIAG_REQ_BYTECODE)
        + bytecode
    )
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(payload), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
    )
    return header + payload


@dataclass
class DumpCount:
    """Running state of one dump's replies, fed chunk by chunk."""

    port: int
    seq: int
    count: int = 0
    done: bool = False

    def feed(self, data: memoryview) -> None:
        """Count the sockets in one datagram; ValueError on a malformed one, SockDiagError
        when the kernel answered with an error."""
        offset = 0
        end = len(data)
        while offset + _NLMSGHDR.size <= end:
            length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size or offset + length > end:
                raise ValueError(f"netlink message of length {length} at {offset} of {end}")
            if seq == self.seq:
                if kind == SOCK_DIAG_BY_FAMILY:
                    if length < _NLMSGHDR.size + _MSG_HEAD.size:
                        raise ValueError(f"inet_diag_msg of {length} bytes")
                    _fam, state, _t, _r, sport = _MSG_HEAD.unpack_from(
                        data, offset + _NLMSGHDR.size
                    )
                    # The filter did this already; checking is cheap and keeps a count
                    # honest on a kernel that ignored it.
                    if sport == self.port and state == TCP_ESTABLISHED:
                        self.count += 1
                elif kind == NLMSG_DONE:
                    self.done = True
                    return
                elif kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0]
                    if code == 0:  # an acknowledgement: the dump is over
                        self.done = True
                        return
                    raise SockDiagError(code, os.strerror(code))
            offset += (length + 3) & ~3


def _netlink_socket() -> socket.socket:
    return socket.socket(
        socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
    )


class SockDiag:
    """Counts established connections per local port. Blocking: call it off the event loop."""

    def __init__(
        self,
        open_socket: Callable[[], socket.socket] = _netlink_socket,
        timeout: float = 1.0,
        families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6),
        buffer_bytes: int = 256 * 1024,
    ) -> None:
        self._open = open_socket
        self._timeout = timeout
        self._families = families
        self._buffer = bytearray(buffer_bytes)
        self._seq = 0

    def established(self, ports: Iterable[int]) -> dict[int, int]:
        """Established connections whose local port is each of `ports` (IPv4 + IPv6)."""
        counts: dict[int, int] = {}
        with self._open() as sock:
            sock.settimeout(self._timeout)
            for port in sorted(set(ports)):
                counts[port] = sum(self._dump(sock, family, port) for family in self._families)
        return counts

    def _dump(self, sock: socket.socket, family: int, port: int) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        state = DumpCount(port, self._seq)
        name = "IPv6" if family == socket.AF_INET6 else "IPv4"
        try:
            sock.sendto(dump_request(family, port, state.seq), (0, 0))
            self._receive(sock, state)
        except TimeoutError:
            raise SockDiagError(
                errno.ETIMEDOUT, f"sock_diag {name} dump for port {port}: no answer in "
                f"{self._timeout:g}s"
            ) from None
        except SockDiagError as exc:
            if family == socket.AF_INET6 and exc.errno in (errno.ENOENT, errno.EAFNOSUPPORT):
                return 0  # IPv6 disabled in this kernel: nothing listens there.
            raise SockDiagError(
                exc.errno, f"sock_diag {name} dump for port {port}: {exc.strerror}"
            ) from None
        except (OSError, ValueError) as exc:
            raise SockDiagError(
                errno.EIO, f"sock_diag {name} dump for port {port}: {exc}"
            ) from None
        return state.count

    def _receive(self, sock: socket.socket, state: DumpCount) -> None:
        view = memoryview(self._buffer)
        received = 0
        while not state.done:
            size = sock.recv_into(view)
            received += size
            if received > _MAX_REPLY_BYTES:
                raise SockDiagError(errno.EMSGSIZE, "reply too large")
            state.feed(view[:size])
