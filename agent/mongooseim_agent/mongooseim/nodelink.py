"""The agent's distribution link to the watched node, shared by the collectors that use it.

It follows discovery: when the node restarts (new PID) or another node is watched, the old
connection is dropped and a new one made. The cookie is re-read whenever there is no open
connection, so fixing a cookie file takes effect on the next poll without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from mongooseim_agent.erlang.connection import Query
from mongooseim_agent.erlang.dist import (
    DEFAULT_SETTINGS,
    DistClient,
    DistSettings,
    check_auth,
    split_node_name,
)
from mongooseim_agent.erlang.epmd import OpenConnection
from mongooseim_agent.erlang.errors import WireError
from mongooseim_agent.erlang.etf import Term
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.cookie import resolve_cookie
from mongooseim_agent.mongooseim.node import NodeProcess


class NodeNotFound(WireError):
    """There is no discovered node to talk to."""


class NodeLink:
    """One DistClient for whichever node `node()` currently returns; shared by collectors."""

    def __init__(
        self,
        node: Callable[[], NodeProcess | None],
        cookie_file: Path | None = None,
        *,
        settings: DistSettings = DEFAULT_SETTINGS,
        address: str | None = None,
        cookie: Callable[[NodeProcess | None, Path | None], Secret] = resolve_cookie,
        open_connection: OpenConnection = asyncio.open_connection,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.settings = settings
        self._cookie_file = cookie_file
        self._address = address
        self._resolve = cookie
        self._open = open_connection
        self._clock = clock
        self._client: DistClient | None = None
        self._identity: tuple[str, int, int] | None = None
        self._lock = asyncio.Lock()
        # Per peer: the lock that orders our handshakes with it, and how many hold or wait.
        self._peer_turns: dict[str, tuple[asyncio.Lock, int]] = {}

    async def call(self, query: Query, time_limit: float) -> Term:
        """One allow-listed call on the current node.

        Raises NodeNotFound, CookieUnavailable, or a WireError (CookieRejected among them).
        """
        client = await self._client_for(self.node())
        return await client.call(query, time_limit)

    async def cookie(self) -> Secret:
        """The cookie for the current node (for handshakes with its peers)."""
        return await asyncio.to_thread(self._resolve, self.node(), self._cookie_file)

    async def check_peer(self, peer: str, *, address: str | None = None) -> None:
        """Handshake with a cluster peer using our cookie, then hang up.

        One handshake per peer at a time: the probes and the audit both check peers, and a
        node that is mid-handshake with one of our names drops a second attempt from it
        before the challenge ("peer closed the connection"), which would hide its verdict
        on our cookie (a rejection read as unreachable).
        """
        node = self.node()
        client_host = split_node_name(node.name)[1] if node is not None else None
        cookie = await self.cookie()
        async with self._peer_turn(peer):
            await check_auth(peer, cookie, client_host=client_host, address=address,
                             settings=self.settings, open_connection=self._open)

    @contextlib.asynccontextmanager
    async def _peer_turn(self, peer: str) -> AsyncIterator[None]:
        lock, users = self._peer_turns.get(peer, (asyncio.Lock(), 0))
        self._peer_turns[peer] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._peer_turns[peer]
            if users == 1:
                del self._peer_turns[peer]  # no entry left behind for a peer gone for good
            else:
                self._peer_turns[peer] = (lock, users - 1)

    async def close(self) -> None:
        async with self._lock:
            client, self._client, self._identity = self._client, None, None
        if client is not None:
            await client.close()

    async def _client_for(self, node: NodeProcess | None) -> DistClient:
        if node is None:
            raise NodeNotFound("the node was not found, so there is nothing to connect to")
        identity = (node.name, node.pid, node.start_ticks)
        async with self._lock:
            client = self._client
            if client is not None and self._identity == identity and client.connected:
                return client
            cookie = await asyncio.to_thread(self._resolve, node, self._cookie_file)
            if client is not None and self._identity == identity and client.cookie == cookie:
                return client
            if client is not None:
                await client.close()
            client = DistClient(node.name, cookie, address=self._address,
                                settings=self.settings, open_connection=self._open,
                                clock=self._clock)
            self._client, self._identity = client, identity
            return client
