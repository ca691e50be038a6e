"""An established hidden-node connection: answers ticks, routes rpc replies, nothing else.

The peer may send only what our flags allow: without atom cache and fragments every frame is
`p` + control term + message term. The only control message we act on is SEND to our pid;
everything else a node might send a hidden node (links, monitors, exits) is ignored.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from mongooseim_agent.erlang import etf
from mongooseim_agent.erlang.epmd import close_quietly
from mongooseim_agent.erlang.errors import ConnectionLost, DistTimeout, RpcError
from mongooseim_agent.erlang.etf import Atom, Pid, Reference, Term

PASS_THROUGH = 112
SEND = 2
REG_SEND = 6
TICK = b"\0\0\0\0"
DEFAULT_MAX_FRAME = 1024 * 1024
# A node ticks an idle connection every net_ticktime/4 (15 s by default): a minute and a
# quarter of silence means the peer or the path is gone even if TCP has not noticed.
DEFAULT_TICK_TIMEOUT = 75.0
# What an authenticated peer may cost us. A node talking to a hidden client that only makes
# rpc calls sends a reply per call and a tick every 15 s: a thousand frames in a second, or
# replies piling up unread, mean a broken or hostile peer, and the connection is dropped.
DEFAULT_MAX_FRAMES_PER_SECOND = 1000
DEFAULT_MAX_WRITE_BUFFER = 256 * 1024
# A tick needs an answer within net_ticktime (60 s): one a second is plenty, however many come.
TICK_ANSWER_INTERVAL = 1.0
# Buffered frames are read without suspending: give the loop a turn every this many.
YIELD_EVERY_FRAMES = 16


class Query(enum.Enum):
    """The closed set of calls the agent makes: read-only, print nothing, take no input.

    The cookie gives whoever holds it arbitrary code execution on the node, so no MFA is
    ever built from anything but these members. Only what a collector calls is here;
    docs/configuration.md lists the same set (a test compares them).
    """

    DB_NODES = ("mnesia", "system_info", "db_nodes")
    RUNNING_DB_NODES = ("mnesia", "system_info", "running_db_nodes")
    MNESIA_IS_RUNNING = ("mnesia", "system_info", "is_running")
    PORT_COUNT = ("erlang", "system_info", "port_count")
    PORT_LIMIT = ("erlang", "system_info", "port_limit")
    PROCESS_COUNT = ("erlang", "system_info", "process_count")
    PROCESS_LIMIT = ("erlang", "system_info", "process_limit")
    NODES = ("erlang", "nodes", "")
    # What MongooseIM's own `cets systemInfo` (GraphQL and CLI) calls: a gen_server status
    # read of the CETS discovery process. `undef` on a node without CETS.
    CETS_STATUS = ("cets_status", "status", "mongoose_cets_discovery")

    @property
    def module(self) -> Atom:
        return Atom(self.value[0])

    @property
    def function(self) -> Atom:
        return Atom(self.value[1])

    @property
    def args(self) -> list[Term]:
        return [Atom(self.value[2])] if self.value[2] else []

    def __str__(self) -> str:
        arg = self.value[2]
        return f"{self.value[0]}:{self.value[1]}({arg})"


def reply_int(query: Query, reply: Term) -> int:
    if type(reply) is not int:
        raise RpcError(f"{query} returned {etf.format_term(reply)}, expected an integer")
    return reply


def reply_nodes(query: Query, reply: Term) -> tuple[str, ...]:
    if not isinstance(reply, list) or not all(isinstance(item, Atom) for item in reply):
        raise RpcError(f"{query} returned {etf.format_term(reply)}, expected a list of nodes")
    return tuple(str(item) for item in reply)


def frame(control: Term, message: Term) -> bytes:
    body = bytes([PASS_THROUGH]) + etf.encode(control) + etf.encode(message)
    return struct.pack(">I", len(body)) + body


@dataclass(frozen=True, slots=True)
class Delivery:
    """A SEND to one of our pids: the only frame content acted on."""

    to: Term
    message: Term


def parse_frame(body: bytes) -> Delivery | None:
    """The SEND a frame carries, None for any other control message.

    Raises ConnectionLost when the frame is not a pass-through (the peer ignored our flags);
    a term this codec cannot represent is also None: it cannot be a reply to our calls.
    """
    if not body or body[0] != PASS_THROUGH:
        raise ConnectionLost(f"frame tag {body[:1]!r} is not a pass-through: protocol mismatch")
    try:
        control, offset = etf.decode_from(body, 1)
        if not isinstance(control, tuple) or not control or control[0] != SEND:
            return None
        message, end = etf.decode_from(body, offset)
    except etf.TermDecodeError:
        return None
    if len(control) != 3 or end != len(body):
        return None
    return Delivery(control[2], message)


class DistConnection:
    """One handshaken connection. Create with `DistConnection.start` inside the event loop."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        own_name: str,
        creation: int,
        peer_name: str,
        max_frame: int = DEFAULT_MAX_FRAME,
        tick_timeout: float = DEFAULT_TICK_TIMEOUT,
        max_frames_per_second: int = DEFAULT_MAX_FRAMES_PER_SECOND,
        max_write_buffer: int = DEFAULT_MAX_WRITE_BUFFER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.own_name = own_name
        self.peer_name = peer_name
        self._creation = creation
        # The pid's creation must equal the one sent in the handshake, or the node takes it
        # for a pid of an earlier incarnation and drops every message sent to it.
        self._self = Pid(Atom(own_name), secrets.randbelow(0x7FFF) + 1, 0, creation)
        self._max_frame = max_frame
        self._tick_timeout = tick_timeout
        self._max_frames_per_second = max_frames_per_second
        self._max_write_buffer = max_write_buffer
        self._clock = clock
        self._window_start = float("-inf")
        self._window_frames = 0
        self._pending: dict[Reference, asyncio.Future[Term]] = {}
        self._ref_counter = itertools.count(1)
        self._ref_salt = (secrets.randbits(32), secrets.randbits(32))
        self._lost: str | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        own_name: str,
        creation: int,
        peer_name: str,
        max_frame: int = DEFAULT_MAX_FRAME,
        tick_timeout: float = DEFAULT_TICK_TIMEOUT,
        max_frames_per_second: int = DEFAULT_MAX_FRAMES_PER_SECOND,
        max_write_buffer: int = DEFAULT_MAX_WRITE_BUFFER,
    ) -> DistConnection:
        conn = cls(reader, writer, own_name=own_name, creation=creation, peer_name=peer_name,
                   max_frame=max_frame, tick_timeout=tick_timeout,
                   max_frames_per_second=max_frames_per_second,
                   max_write_buffer=max_write_buffer)
        conn._task = asyncio.create_task(conn._read_loop(), name=f"dist-{peer_name}")
        return conn

    @property
    def closed(self) -> bool:
        return self._lost is not None

    @property
    def close_reason(self) -> str | None:
        return self._lost

    async def call(self, query: Query, time_limit: float) -> Term:
        """`rpc:call` of one allow-listed query through the node's `rex` server."""
        if self._lost is not None:
            raise ConnectionLost(f"connection to {self.peer_name} is closed: {self._lost}")
        ref = self._new_ref()
        reply: asyncio.Future[Term] = asyncio.get_running_loop().create_future()
        self._pending[ref] = reply
        # The group leader of the call is our pid: a function that printed would send us an
        # io_request, which _deliver answers with an error rather than leave the call hanging.
        request = (Atom("call"), query.module, query.function, query.args, self._self)
        message = (Atom("$gen_call"), (self._self, ref), request)
        try:
            self._writer.write(frame((REG_SEND, self._self, Atom(""), Atom("rex")), message))
            async with asyncio.timeout(time_limit):
                await self._writer.drain()
                result = await reply
        except TimeoutError:
            raise DistTimeout(f"{query} on {self.peer_name}: no reply in {time_limit:g}s") from None
        except ConnectionError as exc:
            raise ConnectionLost(f"connection to {self.peer_name} failed: {exc}") from None
        finally:
            self._pending.pop(ref, None)
        if isinstance(result, tuple) and len(result) == 2 and result[0] == Atom("badrpc"):
            raise RpcError(f"{query} on {self.peer_name}: badrpc {etf.format_term(result[1])}")
        return result

    async def close(self) -> None:
        self._mark_lost("closed by the agent")
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            # wait() rather than await: the reader's cancellation is expected, ours is not.
            await asyncio.wait([task])
        await close_quietly(self._writer)

    def _new_ref(self) -> Reference:
        counter = next(self._ref_counter) & 0x3FFFF
        return Reference(Atom(self.own_name), self._creation, (counter, *self._ref_salt))

    async def _read_loop(self) -> None:
        reason = "closed"
        frames = 0
        last_tick_answer = float("-inf")
        try:
            while True:
                async with asyncio.timeout(self._tick_timeout):
                    (size,) = struct.unpack(">I", await self._reader.readexactly(4))
                    body = b""
                    if size > 0:
                        self._check_size(size)
                        body = await self._reader.readexactly(size)
                now = self._clock()
                self._count_frame(now)
                if size == 0:
                    if now - last_tick_answer >= TICK_ANSWER_INTERVAL:
                        last_tick_answer = now
                        self._writer.write(TICK)
                else:
                    delivery = parse_frame(body)
                    if delivery is not None:
                        self._deliver(delivery)
                self._check_write_buffer()
                frames += 1
                if frames % YIELD_EVERY_FRAMES == 0:
                    await asyncio.sleep(0)
        except asyncio.IncompleteReadError:
            reason = f"{self.peer_name} closed the connection"
        except ConnectionError as exc:
            reason = f"connection to {self.peer_name} failed: {exc}"
        except TimeoutError:
            reason = f"no tick from {self.peer_name} in {self._tick_timeout:g}s"
        except ConnectionLost as exc:
            reason = str(exc)
        finally:
            self._mark_lost(reason)
            self._writer.transport.abort()

    def _count_frame(self, now: float) -> None:
        if now - self._window_start >= 1.0:
            self._window_start, self._window_frames = now, 0
        self._window_frames += 1
        if self._window_frames > self._max_frames_per_second:
            raise ConnectionLost(
                f"{self.peer_name} sent over {self._max_frames_per_second} frames in a "
                "second: dropped as flooding"
            )

    def _check_write_buffer(self) -> None:
        unsent = self._writer.transport.get_write_buffer_size()
        if unsent > self._max_write_buffer:
            raise ConnectionLost(
                f"{self.peer_name} does not read what we send ({unsent} bytes unsent): dropped"
            )

    def _check_size(self, size: int) -> None:
        if size > self._max_frame:
            raise ConnectionLost(
                f"{self.peer_name} sent a {size}-byte frame, limit {self._max_frame}"
            )

    def _deliver(self, delivery: Delivery) -> None:
        if delivery.to != self._self or not isinstance(delivery.message, tuple):
            return
        message = delivery.message
        if len(message) == 2 and isinstance(message[0], Reference):
            waiter = self._pending.get(message[0])
            if waiter is not None and not waiter.done():
                waiter.set_result(message[1])
        elif self._pending and len(message) == 4 and message[0] == Atom("io_request") and (
            isinstance(message[1], Pid)
        ):
            # Only a function we called can print to us, and only while our call runs.
            answer = (Atom("io_reply"), message[2], (Atom("error"), Atom("enotsup")))
            self._writer.write(frame((SEND, Atom(""), message[1]), answer))

    def _mark_lost(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionLost(reason))
        self._pending.clear()
