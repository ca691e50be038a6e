"""The HTTP server's defences: header deadline, connection cap, TLS per handshake, accept errors.

Every accepted connection goes through a `GuardedConnection` before aiohttp sees it:

- TLS is started here (`loop.start_tls`), with the web config's *current* context, so a
  rotated certificate or a changed client CA is used from the next handshake on, and the
  handshake itself has the header deadline.
- A request's headers must arrive within `header_timeout` of its first byte (or of the
  connection, for the first request): a client trickling bytes (slowloris) is closed.
- At most `max_connections` are open. A new connection over the cap evicts the oldest one
  still waiting for its headers (an idle keep-alive one after those), since a real scraper
  sends its request at once; only if all are busy is the new one refused. The cap is also
  kept below the nofile limit with `fd_reserve` descriptors left for the collectors.
- `accept()` failing (EMFILE, ENFILE, ENOBUFS) is counted and logged once per episode,
  instead of asyncio's traceback per failure.
"""

from __future__ import annotations

import asyncio
import enum
import resource
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from mongooseim_agent.snapshot import Sample
from mongooseim_agent.webconfig import WebConfigSource, allowed_sans_match

_ACCEPT_ERROR = "socket.accept() out of system resource"


def raise_nofile_limit(
    getrlimit: Callable[[int], tuple[int, int]] = resource.getrlimit,
    setrlimit: Callable[[int, tuple[int, int]], None] = resource.setrlimit,
) -> tuple[int, int]:
    """Soft nofile up to the hard limit, as Go runtimes do at start; returns (before, after)."""
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft, soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    try:
        setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError):
        return soft, soft
    return soft, target


def connection_cap(max_connections: int, fd_reserve: int, nofile: int) -> int:
    """How many HTTP connections may be open with `fd_reserve` fds left for the rest."""
    return max(1, min(max_connections, nofile - fd_reserve))


class Phase(enum.Enum):
    HANDSHAKE = "handshake"  # TLS handshake under way
    HEADERS = "headers"      # waiting for a request's headers
    BUSY = "busy"            # headers in; aiohttp has the request


@dataclass
class GuardStats:
    rejected_cap: int = 0
    evicted: int = 0
    header_timeouts: int = 0
    handshake_failures: int = 0
    accept_errors: int = 0


class ConnectionGuard:
    """Shared state of all guarded connections: the cap, the counters, accept episodes."""

    def __init__(
        self,
        source: WebConfigSource,
        cap: int,
        header_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.cap = cap
        self.header_timeout = header_timeout
        self.stats = GuardStats()
        self._clock = clock
        # Insertion order is age order: the first connection waiting for headers is the oldest.
        self._open: OrderedDict[GuardedConnection, None] = OrderedDict()
        self._accept_failing = False
        self._log = structlog.get_logger("http")

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def admit(self, conn: GuardedConnection) -> bool:
        if self._accept_failing:
            self._accept_failing = False
            self._log.info("accept recovered", accept_errors_total=self.stats.accept_errors)
        if len(self._open) >= self.cap:
            victim = self._victim()
            if victim is None:
                self.stats.rejected_cap += 1
                return False
            self.stats.evicted += 1
            victim.abort()
        self._open[conn] = None
        return True

    def _victim(self) -> GuardedConnection | None:
        idle = None
        for conn in self._open:
            if conn.phase in (Phase.HEADERS, Phase.HANDSHAKE) and conn.waiting:
                return conn
            if idle is None and conn.phase is Phase.HEADERS:
                idle = conn
        return idle

    def forget(self, conn: GuardedConnection) -> None:
        self._open.pop(conn, None)

    def exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's handler, except accept() failures: a counter and one line per episode."""
        if context.get("message") == _ACCEPT_ERROR:
            self.stats.accept_errors += 1
            if not self._accept_failing:
                self._accept_failing = True
                exc = context.get("exception")
                self._log.error(
                    "accept failing; connections wait in the backlog",
                    error=str(exc), open_connections=len(self._open),
                )
            return
        loop.default_exception_handler(context)


class GuardedConnection(asyncio.Protocol):
    """Sits between the transport and aiohttp's protocol; see the module docstring."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""
        self._handshake: asyncio.Task[None] | None = None
        self.phase = Phase.HEADERS
        # True while no request is being served on this connection (evictable first).
        self.waiting = True

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def abort(self) -> None:
        if self._handshake is not None:
            self._handshake.cancel()
        if self._transport is not None:
            self._transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):
            raise TypeError("a stream transport is expected")
        self._transport = transport
        if not self._guard.admit(self):
            transport.abort()
            return
        context = self._guard.source.current().ssl_context
        if context is None:
            self._start_headers()
            self._inner.connection_made(transport)
            return
        self.phase = Phase.HANDSHAKE
        transport.pause_reading()
        self._handshake = asyncio.get_running_loop().create_task(
            self._start_tls(transport, context)
        )

    async def _start_tls(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        tls = None
        try:
            tls = await loop.start_tls(
                raw, self, context, server_side=True,
                ssl_handshake_timeout=self._guard.header_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError):
            self._guard.stats.handshake_failures += 1
        finally:
            if tls is None:
                # Failed, timed out or evicted: aiohttp never saw this connection.
                self._guard.forget(self)
                raw.abort()
        if tls is None:
            return
        allowed = self._guard.source.current().allowed_sans
        if allowed is not None and not allowed_sans_match(
            tls.get_extra_info("peercert"), allowed
        ):
            self._guard.stats.handshake_failures += 1
            self._guard.forget(self)
            tls.abort()
            return
        self._transport = tls
        self._start_headers()
        self._inner.connection_made(tls)

    def _start_headers(self) -> None:
        self.phase = Phase.HEADERS
        self._arm()

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = asyncio.get_running_loop().call_later(
            self._guard.header_timeout, self._expire
        )

    def _expire(self) -> None:
        self._deadline = None
        self._guard.stats.header_timeouts += 1
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._scan(data)
        self._inner.data_received(data)

    def _scan(self, data: bytes) -> None:
        """Track request boundaries by the blank line that ends each request's headers.

        The agent's endpoints take no request bodies, so every byte after a blank line
        starts the next request.
        """
        window = self._tail + data
        start = 0
        while start < len(window):
            if self.phase is Phase.BUSY:
                self.phase = Phase.HEADERS
                self.waiting = False
                self._arm()
            end = _header_end(window, start)
            if end < 0:
                break
            self.phase = Phase.BUSY
            self.waiting = False
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            start = end
        self._tail = window[max(start, len(window) - 3):] if self.phase is Phase.HEADERS else b""

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._guard.forget(self)
        if self._handshake is not None and not self._handshake.done():
            self._handshake.cancel()
        elif self.phase is not Phase.HANDSHAKE:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def _header_end(data: bytes, start: int) -> int:
    """Index just past the first blank line at or after `start`, or -1."""
    ends = [i for i in (data.find(b"\n\r\n", start), data.find(b"\n\n", start)) if i >= 0]
    if not ends:
        return -1
    first = min(ends)
    return first + (3 if data.startswith(b"\n\r\n", first) else 2)


class GuardedSite(web.SockSite):
    """aiohttp's SockSite with each connection wrapped in a GuardedConnection."""

    __slots__ = ("_guard",)

    def __init__(self, runner: web.BaseRunner, sock: Any, guard: ConnectionGuard) -> None:
        super().__init__(runner, sock)
        self._guard = guard

    async def start(self) -> None:
        self._runner._reg_site(self)
        server = self._runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before starting a site")
        guard = self._guard

        def factory() -> GuardedConnection:
            return GuardedConnection(guard, server())

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, sock=self._sock, backlog=self._backlog)


def http_samples(
    guard: ConnectionGuard, auth_failures: int, rate_limited: int
) -> Iterator[Sample]:
    stats = guard.stats
    yield Sample("mongooseim_agent_http_connections", guard.open_connections)
    yield Sample("mongooseim_agent_http_connections_max", guard.cap)
    closed = "mongooseim_agent_http_connections_closed_total"
    yield Sample(closed, stats.header_timeouts, {"reason": "header_timeout"})
    yield Sample(closed, stats.evicted, {"reason": "evicted"})
    yield Sample(closed, stats.rejected_cap, {"reason": "refused"})
    yield Sample(closed, stats.handshake_failures, {"reason": "tls_handshake_failed"})
    yield Sample("mongooseim_agent_http_accept_errors_total", stats.accept_errors)
    refused = "mongooseim_agent_http_requests_refused_total"
    yield Sample(refused, auth_failures, {"reason": "unauthorized"})
    yield Sample(refused, rate_limited, {"reason": "rate_limited"})
    yield Sample(
        "mongooseim_agent_web_config_reload_success", 1 if guard.source.reload_ok else 0
    )
