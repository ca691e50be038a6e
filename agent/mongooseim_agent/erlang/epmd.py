"""epmd client: NAMES (who is registered here) and PORT_PLEASE2 (where is node X).

epmd answers each request on its own TCP connection and then closes it, so a reply is read
to EOF (capped) and parsed whole: a reply cut short or followed by extra bytes is an
`EpmdProtocolError`, never a partial answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from mongooseim_agent.erlang.errors import (
    EpmdProtocolError,
    EpmdTimeout,
    EpmdUnreachable,
    NodeNotRegistered,
)

DEFAULT_PORT = 4369
NAMES_REQ = 110
PORT_PLEASE2_REQ = 122
PORT2_RESP = 119
# A NAMES line is ~40 bytes: this holds thousands of nodes, and bounds a hostile peer.
MAX_REPLY_BYTES = 256 * 1024
MAX_ALIVE_BYTES = 255

_NAMES_LINE = re.compile(r"name (\S+) at port ([0-9]{1,5})")

OpenConnection = Callable[..., Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@dataclass(frozen=True, slots=True)
class NamesReply:
    epmd_port: int
    nodes: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    port: int
    # 77 normal node, 72 hidden node.
    node_type: int
    protocol: int
    highest_version: int
    lowest_version: int
    extra: bytes = b""


def parse_names_reply(data: bytes) -> NamesReply:
    """NAMES reply: a 4-byte epmd port, then one `name N at port P` line per node."""
    if len(data) < 4:
        raise EpmdProtocolError(f"NAMES reply cut short: {len(data)} bytes, expected at least 4")
    (epmd_port,) = struct.unpack(">I", data[:4])
    if not 0 < epmd_port <= 0xFFFF:
        raise EpmdProtocolError(f"NAMES reply carries an impossible epmd port {epmd_port}")
    try:
        text = data[4:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EpmdProtocolError(f"NAMES reply is not UTF-8 text at byte {4 + exc.start}") from None
    if text and not text.endswith("\n"):
        raise EpmdProtocolError("NAMES reply cut short: last line has no newline")
    nodes: dict[str, int] = {}
    # split("\n"), not splitlines(): epmd ends lines with \n only, and a \r or any other
    # line break Python knows is garbage here.
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        match = _NAMES_LINE.fullmatch(line)
        if match is None:
            raise EpmdProtocolError(f"NAMES reply line {number} is not 'name N at port P'")
        name, port = match.group(1), int(match.group(2))
        if not 0 < port <= 0xFFFF:
            raise EpmdProtocolError(f"NAMES reply line {number} has an impossible port {port}")
        if name in nodes:
            raise EpmdProtocolError(f"NAMES reply lists {name} twice")
        nodes[name] = port
    return NamesReply(epmd_port, nodes)


def parse_port2_reply(data: bytes, alive: str) -> NodeInfo:
    """PORT2_RESP for `alive`; NodeNotRegistered when epmd reports a non-zero result."""
    if len(data) < 2:
        raise EpmdProtocolError(f"PORT2 reply cut short: {len(data)} bytes")
    if data[0] != PORT2_RESP:
        raise EpmdProtocolError(f"PORT2 reply starts with {data[0]}, expected {PORT2_RESP}")
    result = data[1]
    if result != 0:
        if len(data) != 2:
            raise EpmdProtocolError("PORT2 error reply has trailing bytes")
        raise NodeNotRegistered(f"no node named {alive!r} is registered (epmd result {result})")
    fixed = 2 + 2 + 1 + 1 + 2 + 2 + 2
    if len(data) < fixed:
        raise EpmdProtocolError(f"PORT2 reply cut short: {len(data)} bytes, expected {fixed}+")
    port, node_type, protocol, high, low, name_len = struct.unpack(">HBBHHH", data[2:fixed])
    end_name = fixed + name_len
    if len(data) < end_name + 2:
        raise EpmdProtocolError("PORT2 reply cut short inside the node name")
    (extra_len,) = struct.unpack(">H", data[end_name : end_name + 2])
    if len(data) != end_name + 2 + extra_len:
        raise EpmdProtocolError(
            f"PORT2 reply is {len(data)} bytes, its length fields say {end_name + 2 + extra_len}"
        )
    try:
        name = data[fixed:end_name].decode("utf-8")
    except UnicodeDecodeError:
        raise EpmdProtocolError("PORT2 reply node name is not UTF-8") from None
    if name != alive:
        raise EpmdProtocolError(f"PORT2 reply is for {name!r}, asked for {alive!r}")
    if port == 0:
        raise EpmdProtocolError("PORT2 reply gives port 0")
    if low > high:
        raise EpmdProtocolError(f"PORT2 reply has version range {low}..{high}")
    return NodeInfo(name, port, node_type, protocol, high, low, data[end_name + 2 :])


def encode_request(payload: bytes) -> bytes:
    return struct.pack(">H", len(payload)) + payload


def names_request() -> bytes:
    return encode_request(bytes([NAMES_REQ]))


def port_please2_request(alive: str) -> bytes:
    raw = alive.encode("utf-8")
    if not raw or len(raw) > MAX_ALIVE_BYTES or "@" in alive:
        raise ValueError(f"{alive!r} is not a node's alive name (the part before @)")
    return encode_request(bytes([PORT_PLEASE2_REQ]) + raw)


class EpmdClient:
    """Talks to one epmd. Every call opens its own connection and ends within `timeout`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        timeout: float = 2.0,
        open_connection: OpenConnection = asyncio.open_connection,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._open = open_connection

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def names(self) -> NamesReply:
        return parse_names_reply(await self._exchange(names_request(), "NAMES"))

    async def port_please2(self, alive: str) -> NodeInfo:
        """Where `alive` (the part of a node name before @) listens for distribution."""
        request = port_please2_request(alive)
        return parse_port2_reply(await self._exchange(request, "PORT_PLEASE2"), alive)

    async def _exchange(self, request: bytes, what: str) -> bytes:
        phase = "connecting"
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    reader, writer = await self._open(self.host, self.port)
                except OSError as exc:
                    raise EpmdUnreachable(
                        f"epmd at {self.address}: {exc.strerror or type(exc).__name__}"
                    ) from None
                phase = f"waiting for the {what} reply"
                writer.write(request)
                await writer.drain()
                return await _read_to_eof(reader, f"{what} reply from {self.address}")
        except TimeoutError:
            raise EpmdTimeout(f"epmd at {self.address}: timed out {phase} "
                              f"after {self.timeout:g}s") from None
        except OSError as exc:
            raise EpmdUnreachable(
                f"epmd at {self.address}: connection failed while {phase}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        finally:
            if writer is not None:
                await close_quietly(writer)


async def _read_to_eof(reader: asyncio.StreamReader, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await reader.read(65536):
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise EpmdProtocolError(f"{what} exceeds {MAX_REPLY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close without letting a peer that stopped reading hold us: the outcome is decided."""
    writer.transport.abort()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
