"""Distribution handshake, version 6 (OTP 23+), from the connecting side, as a hidden node.

Frames are pure functions of their fields (`send_name_frame`, `parse_challenge`, ...) so they
are tested without a socket; `perform_handshake` drives them over a stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass

from mongooseim_agent.erlang.errors import CookieRejected, HandshakeFailed, NameInUse
from mongooseim_agent.erlang.secret import Secret

DFLAG_PUBLISHED = 0x01
DFLAG_ATOM_CACHE = 0x02
DFLAG_EXTENDED_REFERENCES = 0x04
DFLAG_FUN_TAGS = 0x10
DFLAG_NEW_FUN_TAGS = 0x80
DFLAG_EXTENDED_PIDS_PORTS = 0x100
DFLAG_EXPORT_PTR_TAG = 0x200
DFLAG_BIT_BINARIES = 0x400
DFLAG_NEW_FLOATS = 0x800
DFLAG_UNICODE_IO = 0x1000
DFLAG_DIST_HDR_ATOM_CACHE = 0x2000
DFLAG_SMALL_ATOM_TAGS = 0x4000
DFLAG_UTF8_ATOMS = 0x10000
DFLAG_MAP_TAG = 0x20000
DFLAG_BIG_CREATION = 0x40000
DFLAG_FRAGMENTS = 0x800000
DFLAG_HANDSHAKE_23 = 0x1000000
DFLAG_UNLINK_ID = 0x2000000
DFLAG_MANDATORY_25_DIGEST = 0x4000000
DFLAG_V4_NC = 0x04 << 32

MANDATORY_25 = (
    DFLAG_EXTENDED_REFERENCES
    | DFLAG_FUN_TAGS
    | DFLAG_EXTENDED_PIDS_PORTS
    | DFLAG_NEW_FUN_TAGS
    | DFLAG_EXPORT_PTR_TAG
    | DFLAG_BIT_BINARIES
    | DFLAG_NEW_FLOATS
    | DFLAG_UTF8_ATOMS
    | DFLAG_MAP_TAG
    | DFLAG_BIG_CREATION
    | DFLAG_HANDSHAKE_23
)
# OTP 26 adds V4_NC and UNLINK_ID to the mandatory set; OTP 27 also looks for the digest bit.
# PUBLISHED stays unset: that is what makes us hidden (no global name sync, absent from
# nodes()). ATOM_CACHE, DIST_HDR_ATOM_CACHE and FRAGMENTS stay unset so that every frame
# the peer sends is a plain pass-through of two whole terms.
CLIENT_FLAGS = (
    MANDATORY_25 | DFLAG_V4_NC | DFLAG_UNLINK_ID | DFLAG_MANDATORY_25_DIGEST
    | DFLAG_SMALL_ATOM_TAGS | DFLAG_UNICODE_IO
)
# What we need from the peer to understand what it sends us.
REQUIRED_PEER_FLAGS = (
    DFLAG_HANDSHAKE_23 | DFLAG_UTF8_ATOMS | DFLAG_BIG_CREATION | DFLAG_NEW_FLOATS
    | DFLAG_EXTENDED_PIDS_PORTS | DFLAG_EXTENDED_REFERENCES | DFLAG_MAP_TAG
)
DIST_VERSION = 6


@dataclass(frozen=True, slots=True)
class Challenge:
    flags: int
    challenge: int
    creation: int
    name: str


@dataclass(frozen=True, slots=True)
class Established:
    peer_name: str
    peer_flags: int
    peer_creation: int


def digest(cookie: Secret, challenge: int) -> bytes:
    """md5(cookie ++ decimal challenge), what both sides prove cookie knowledge with."""
    return hashlib.md5(cookie.reveal().encode("utf-8") + str(challenge).encode("ascii")).digest()


def send_name_frame(flags: int, creation: int, name: str) -> bytes:
    raw = name.encode("utf-8")
    return b"N" + struct.pack(">QIH", flags, creation, len(raw)) + raw


def parse_status(frame: bytes) -> str:
    if not frame.startswith(b"s"):
        raise HandshakeFailed(f"expected a status frame, got tag {frame[:1]!r}")
    try:
        return frame[1:].decode("ascii")
    except UnicodeDecodeError:
        raise HandshakeFailed("status frame is not ASCII") from None


def parse_challenge(frame: bytes) -> Challenge:
    if frame[:1] == b"n":
        raise HandshakeFailed("peer answered with the pre-OTP-23 handshake (version 5)")
    if not frame.startswith(b"N") or len(frame) < 19:
        raise HandshakeFailed("malformed challenge frame")
    flags, challenge, creation, name_len = struct.unpack(">QIIH", frame[1:19])
    if len(frame) != 19 + name_len:
        raise HandshakeFailed("challenge frame length does not match its name length")
    try:
        name = frame[19:].decode("utf-8")
    except UnicodeDecodeError:
        raise HandshakeFailed("challenge frame node name is not UTF-8") from None
    return Challenge(flags, challenge, creation, name)


def challenge_reply_frame(own_challenge: int, peer_digest: bytes) -> bytes:
    return b"r" + struct.pack(">I", own_challenge) + peer_digest


def check_ack(frame: bytes, cookie: Secret, own_challenge: int) -> None:
    if not frame.startswith(b"a") or len(frame) != 17:
        raise HandshakeFailed("malformed challenge ack frame")
    if not hmac.compare_digest(frame[1:], digest(cookie, own_challenge)):
        raise CookieRejected("the peer's challenge answer does not match our cookie")


async def read_frame16(reader: asyncio.StreamReader, waiting_for: str) -> bytes:
    try:
        header = await reader.readexactly(2)
        (size,) = struct.unpack(">H", header)
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        raise HandshakeFailed(
            f"peer closed the connection while we waited for {waiting_for}"
        ) from None


def write_frame16(writer: asyncio.StreamWriter, frame: bytes) -> None:
    writer.write(struct.pack(">H", len(frame)) + frame)


async def perform_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    own_name: str,
    peer_name: str,
    cookie: Secret,
    creation: int,
    take_over: bool = False,
    flags: int = CLIENT_FLAGS,
    new_challenge: Callable[[], int] = lambda: secrets.randbits(32),
) -> Established:
    """Run the handshake; the caller bounds it with a timeout.

    `take_over`: when the peer says a connection with `own_name` exists already, answer
    `true` (replace it) rather than `false` (give up with NameInUse).
    """
    write_frame16(writer, send_name_frame(flags, creation, own_name))
    await writer.drain()
    status = parse_status(await read_frame16(reader, "the status"))
    if status == "alive":
        write_frame16(writer, b"s" + (b"true" if take_over else b"false"))
        await writer.drain()
        if not take_over:
            raise NameInUse(f"{peer_name} already has a connection from {own_name}")
    elif status not in ("ok", "ok_simultaneous"):
        raise HandshakeFailed(f"{peer_name} refused the connection from {own_name}: {status}")
    peer = parse_challenge(await read_frame16(reader, "the challenge"))
    if peer.name != peer_name:
        raise HandshakeFailed(f"the node on that port is {peer.name}, not {peer_name}")
    missing = REQUIRED_PEER_FLAGS & ~peer.flags
    if missing:
        raise HandshakeFailed(f"{peer_name} lacks distribution capabilities 0x{missing:x}")
    own_challenge = new_challenge()
    write_frame16(writer, challenge_reply_frame(own_challenge, digest(cookie, peer.challenge)))
    await writer.drain()
    try:
        ack = await read_frame16(reader, "the challenge ack")
    except HandshakeFailed:
        # This is how a node answers a wrong digest: it logs "Connection attempt from node
        # ... rejected. Invalid challenge reply." and closes without a word.
        raise CookieRejected(f"{peer_name} closed the connection after our cookie digest: "
                             "the cookie does not match") from None
    check_ack(ack, cookie, own_challenge)
    return Established(peer.name, peer.flags, peer.creation)
