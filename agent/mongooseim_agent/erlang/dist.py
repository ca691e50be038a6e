"""Hidden-node distribution client: connect (epmd, TCP, handshake), keep it open, call.

Every distinct node name that connects becomes a permanent atom on the peer, so the client
only ever uses the names of a small fixed pool (`mongooseim_agent_1@HOST` .. `_N`): however
often it reconnects, a node gains at most N atoms from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from mongooseim_agent.erlang.connection import (
    DEFAULT_MAX_FRAME,
    DEFAULT_TICK_TIMEOUT,
    DistConnection,
    Query,
)
from mongooseim_agent.erlang.epmd import DEFAULT_PORT, EpmdClient, OpenConnection, close_quietly
from mongooseim_agent.erlang.errors import (
    ConnectionLost,
    DistTimeout,
    DistUnreachable,
    EpmdUnreachable,
    HandshakeFailed,
    NameInUse,
    WireError,
)
from mongooseim_agent.erlang.etf import Term
from mongooseim_agent.erlang.handshake import DIST_VERSION, perform_handshake
from mongooseim_agent.erlang.secret import Secret

CLIENT_NAME_PREFIX = "mongooseim_agent_"
DEFAULT_POOL_SIZE = 4


@dataclass(frozen=True, slots=True)
class DistSettings:
    epmd_port: int = DEFAULT_PORT
    pool_size: int = DEFAULT_POOL_SIZE
    # Bounds the epmd lookup, the TCP connect and the handshake together.
    connect_timeout: float = 2.0
    max_frame: int = DEFAULT_MAX_FRAME
    tick_timeout: float = DEFAULT_TICK_TIMEOUT
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


DEFAULT_SETTINGS = DistSettings()


def split_node_name(node: str) -> tuple[str, str]:
    """`alive@host` into its parts; ValueError for anything else."""
    alive, sep, host = node.partition("@")
    if not sep or not alive or not host or "@" in host or any(c.isspace() for c in node):
        raise ValueError(f"{node!r} is not a node name of the form name@host")
    return alive, host


def client_names(host: str, size: int) -> tuple[str, ...]:
    """The pool of names the agent connects as, on `host` (the watched node's host part)."""
    if size < 1:
        raise ValueError("the client name pool needs at least one name")
    return tuple(f"{CLIENT_NAME_PREFIX}{index}@{host}" for index in range(1, size + 1))


def _creation() -> int:
    # Creations 0..3 are what pre-OTP-23 nodes used; a random larger one is never confused
    # with them.
    return 4 + secrets.randbelow(0xFFFFFFFF - 4)


async def resolve(host: str) -> str:
    """One address for `host`, IPv4 first as Erlang's inet_tcp_dist does, resolved once for
    both the epmd and the distribution connection (saves a getaddrinfo per connection)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return host
    loop = asyncio.get_running_loop()
    for family in (socket.AF_INET, socket.AF_UNSPEC):
        with contextlib.suppress(OSError):
            infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)
            if infos:
                return str(infos[0][4][0])
    raise EpmdUnreachable(f"cannot resolve host {host!r}")


async def connect(
    node: str,
    cookie: Secret,
    *,
    client_host: str | None = None,
    address: str | None = None,
    settings: DistSettings = DEFAULT_SETTINGS,
    preferred_name: int = 0,
    open_connection: OpenConnection = asyncio.open_connection,
) -> tuple[DistConnection, int]:
    """A handshaken connection to `node` and the pool index of the name it uses.

    `client_host` is the host part of our names (default: the node's own host part, right for
    the node on this host); `address` is where to reach the node and its epmd (default: its
    host part, as Erlang itself does). Walks the name pool from `preferred_name`, skipping
    names the node reports connected already; when all are, takes over the preferred one.
    """
    alive, host = split_node_name(node)
    names = client_names(client_host or host, settings.pool_size)
    order = [(preferred_name + step) % len(names) for step in range(len(names))]
    phase = f"resolving {address or host}"
    try:
        async with asyncio.timeout(settings.connect_timeout):
            target = await resolve(address or host)
            phase = "looking the node up in epmd"
            epmd = EpmdClient(target, settings.epmd_port, settings.connect_timeout,
                              open_connection)
            info = await epmd.port_please2(alive)
            if not info.lowest_version <= DIST_VERSION <= info.highest_version:
                raise HandshakeFailed(
                    f"{node} speaks distribution versions {info.lowest_version}.."
                    f"{info.highest_version}, this client only {DIST_VERSION} (OTP 23+)"
                )
            creation = _creation()
            for attempt, index in enumerate([*order, order[0]]):
                phase = f"connecting to {node}'s distribution port {target}:{info.port}"
                try:
                    reader, writer = await open_connection(target, info.port)
                except OSError as exc:
                    raise DistUnreachable(
                        f"{node} at {target}:{info.port}: {exc.strerror or type(exc).__name__}"
                    ) from None
                phase = f"handshaking with {node}"
                try:
                    established = await perform_handshake(
                        reader, writer, own_name=names[index], peer_name=node, cookie=cookie,
                        creation=creation, take_over=attempt == len(order),
                    )
                except NameInUse:
                    await close_quietly(writer)
                    continue
                except OSError as exc:
                    await close_quietly(writer)
                    raise HandshakeFailed(f"{node}: connection failed during the handshake: "
                                          f"{exc.strerror or type(exc).__name__}") from None
                except BaseException:
                    await close_quietly(writer)
                    raise
                conn = DistConnection.start(
                    reader, writer, own_name=names[index], creation=creation,
                    peer_name=established.peer_name, max_frame=settings.max_frame,
                    tick_timeout=settings.tick_timeout,
                )
                return conn, index
    except TimeoutError:
        raise DistTimeout(
            f"{node}: timed out {phase} after {settings.connect_timeout:g}s"
        ) from None
    raise NameInUse(f"{node}: every client name is in use")  # pragma: no cover


async def check_auth(
    node: str,
    cookie: Secret,
    *,
    client_host: str | None = None,
    address: str | None = None,
    settings: DistSettings = DEFAULT_SETTINGS,
    open_connection: OpenConnection = asyncio.open_connection,
) -> None:
    """Handshake with `node` and hang up: proves it is reachable and accepts our cookie.

    Raises CookieRejected when it does not, another WireError when it cannot be reached.
    """
    conn, _ = await connect(node, cookie, client_host=client_host, address=address,
                            settings=settings, open_connection=open_connection)
    await conn.close()


class DistClient:
    """One long-lived connection to one node, reopened on demand with exponential backoff.

    While backing off, calls fail at once with the error of the last attempt (same type, so
    a wrong cookie stays a CookieRejected), which keeps a node with a wrong cookie from
    being hammered with handshakes it logs as rejected.
    """

    def __init__(
        self,
        node: str,
        cookie: Secret,
        *,
        client_host: str | None = None,
        address: str | None = None,
        settings: DistSettings = DEFAULT_SETTINGS,
        open_connection: OpenConnection = asyncio.open_connection,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        split_node_name(node)
        self.node = node
        self.cookie = cookie
        self._client_host = client_host
        self._address = address
        self._settings = settings
        self._open = open_connection
        self._clock = clock
        self._conn: DistConnection | None = None
        self._name_index = 0
        self._lock = asyncio.Lock()
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_error: WireError | None = None
        # Successful connections made so far: more than one means it reconnected.
        self.connects = 0

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    @property
    def own_name(self) -> str | None:
        return self._conn.own_name if self._conn is not None else None

    async def call(self, query: Query, time_limit: float) -> Term:
        """One allow-listed call; connects first when needed (bounded by connect_timeout).

        A call on a connection the node dropped a moment ago (before we read the close) is
        retried once on a new connection: the calls are read-only, so that is safe.
        """
        connects = self.connects
        conn = await self._connection()
        try:
            return await conn.call(query, time_limit)
        except ConnectionLost:
            if self.connects != connects:
                raise
        conn = await self._connection()
        return await conn.call(query, time_limit)

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()

    async def _connection(self) -> DistConnection:
        async with self._lock:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            now = self._clock()
            if self._last_error is not None and now < self._retry_at:
                error = self._last_error
                raise type(error)(f"{error} (next attempt in {self._retry_at - now:.1f}s)")
            try:
                conn, index = await connect(
                    self.node, self.cookie, client_host=self._client_host,
                    address=self._address, settings=self._settings,
                    preferred_name=self._name_index, open_connection=self._open,
                )
            except WireError as exc:
                s = self._settings
                self._backoff = min(s.backoff_max, max(s.backoff_initial, self._backoff * 2))
                self._retry_at = self._clock() + self._backoff
                self._last_error = exc
                raise
            self._conn, self._name_index = conn, index
            self._backoff, self._last_error = 0.0, None
            self.connects += 1
            return conn
