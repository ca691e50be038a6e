"""A misbehaving distribution peer, as its own process: it floods and never reads.

    python -m tests.support.flood_peer MODE

Prints its port, accepts one connection (the handshake is assumed done: the agent side is a
DistConnection started on the socket), then, by MODE:
  ticks        sends tick frames as fast as the socket takes them
  frames       sends SEND frames to a pid that is not ours, as fast as possible
  io_requests  reads the agent's first rpc call, then floods io_requests to its caller (what
               a printing function does), never reading the replies
"""

from __future__ import annotations

import socket
import struct
import sys

from mongooseim_agent.erlang import etf
from mongooseim_agent.erlang.connection import frame
from mongooseim_agent.erlang.etf import Atom, Pid, Reference

PEER = Pid(Atom("mongooseim@h"), 77, 0, 1)


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise SystemExit(0)
        data += chunk
    return data


def _first_caller(conn: socket.socket) -> Pid:
    while True:
        (size,) = struct.unpack(">I", _read_exactly(conn, 4))
        if size == 0:
            continue
        body = _read_exactly(conn, size)
        _, offset = etf.decode_from(body, 1)
        message, _ = etf.decode_from(body, offset)
        caller = message[1][0]  # type: ignore[index]
        assert isinstance(caller, Pid)
        return caller


def main() -> None:
    mode = sys.argv[1]
    server = socket.create_server(("127.0.0.1", 0))
    print(server.getsockname()[1], flush=True)
    conn, _ = server.accept()
    if mode == "ticks":
        chunk = b"\0\0\0\0" * 4096
    elif mode == "frames":
        bogus = Pid(Atom("mongooseim_agent_1@h"), 1, 0, 1)
        chunk = frame((2, Atom(""), bogus), (Atom("junk"), 1)) * 256
    else:
        caller = _first_caller(conn)
        ref = Reference(Atom("mongooseim@h"), 1, (1, 2, 3))
        request = (Atom("io_request"), PEER, ref, (Atom("put_chars"), Atom("unicode"),
                                                   b"x" * 200))
        chunk = frame((2, Atom(""), caller), request) * 64
    try:
        while True:
            conn.sendall(chunk)
    except OSError:
        pass


if __name__ == "__main__":
    main()
