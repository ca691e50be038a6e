"""HAProxy's agent-check protocol: on each connection, one line saying how the node is doing.

- ready:     `up ready 100%` (the weight, as a percentage of the server's configured one;
             with `weight_by_fd_headroom` it falls as fd use nears the soft nofile limit)
- drained:   `drain` (weight 0: HAProxy sends no new connections, existing ones stay)
- not ready: `down #reason`
HAProxy 2.6 (Debian 12) knows only the percentage form; `weight:N` needs 3.1. Only the agent
can undo what it set, so the ready answer always says `up ready` besides the weight.

The answer comes from the store, like /node/ready: no IO per connection. Connections are
bounded: at most `agent_check_max_connections` at once (more are closed unanswered) and
each lives at most `agent_check_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Callable

import structlog

from mongooseim_agent.config import LoadBalancerSection
from mongooseim_agent.loadbalancer.readiness import Verdict
from mongooseim_agent.store import Store

_UNSAFE = re.compile(r"[^\x20-\x7e]+")
_MAX_REASON = 200
# HAProxy may send `agent-send` text first; more than this is not an agent-check client.
_MAX_INPUT = 4096


def fd_headroom_weight(open_fds: float, soft_limit: float, start_ratio: float) -> int:
    """100 up to `start_ratio` of the soft limit, then falling linearly to 1 at the limit.

    Never 0: HAProxy reads 0% as DRAIN, which is the drain's job, not the weight's.
    """
    if soft_limit <= 0:
        return 100
    ratio = open_fds / soft_limit
    if ratio <= start_ratio:
        return 100
    share = (1.0 - ratio) / (1.0 - start_ratio)
    return max(1, min(100, round(100 * share)))


def store_weight(store: Store, settings: LoadBalancerSection) -> int:
    """The weight to announce: 100, or the fd headroom's when enabled and known."""
    if not settings.weight_by_fd_headroom:
        return 100
    snap = store.get("fds")
    if snap is None or not snap.ok:
        return 100
    values = {s.metric: s.value for s in snap.samples}
    open_fds = values.get("mongooseim_process_open_fds")
    soft = values.get("mongooseim_process_max_fds")
    if open_fds is None or soft is None:
        return 100
    return fd_headroom_weight(open_fds, soft, settings.weight_fd_start_ratio)


def agent_reply(verdict: Verdict, weight: int) -> str:
    """The line HAProxy reads. `down` wins over `drain`: a drained node that also fails a
    check is down, so HAProxy shows why."""
    if verdict.ready:
        return f"up ready {weight}%\n"
    others = [c for c in verdict.blocking if c.name != "drained"]
    if verdict.drained and not others:
        return "drain\n"
    reason = "; ".join(c.describe() for c in others) or "not ready"
    reason = _UNSAFE.sub(" ", reason)
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 3] + "..."
    return f"down #{reason}\n"


class AgentCheckServer:
    """The TCP listener; `apply` (re)binds it to the configured address, or closes it."""

    def __init__(self, reply: Callable[[], str]) -> None:
        self._reply = reply
        self._server: asyncio.Server | None = None
        self._address: str | None = None
        self._active = 0
        self._max_connections = 64
        self._timeout = 2.0
        self.refused = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self.bound: tuple[str, int] | None = None
        self._log = structlog.get_logger("agent_check")

    async def apply(self, settings: LoadBalancerSection) -> None:
        """Serve on settings.agent_check_address; OSError when it cannot be bound."""
        self._max_connections = settings.agent_check_max_connections
        self._timeout = settings.agent_check_timeout
        address = settings.agent_check_address
        if address == self._address and self._server is not None:
            return
        await self.close()
        if address is None:
            return
        # Validated by the config; port 0 picks a free port.
        host, _, port_text = address.rpartition(":")
        host, port = host.removeprefix("[").removesuffix("]"), int(port_text)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._server = await asyncio.start_server(
                self._serve, host, port, family=family, reuse_address=True,
                backlog=min(1024, self._max_connections * 2),
            )
        except OSError as exc:
            raise OSError(
                exc.errno, f"load_balancer.agent_check_address {address}: "
                f"{exc.strerror or exc}"
            ) from None
        self._address = address
        sock = self._server.sockets[0]
        self.bound = sock.getsockname()[:2]
        bound_host, bound_port = self.bound
        shown = f"[{bound_host}]:{bound_port}" if ":" in host else f"{bound_host}:{bound_port}"
        self._log.info("agent-check listening", address=shown)

    async def close(self) -> None:
        """Stop accepting; connections in progress end by themselves within their deadline."""
        server, self._server, self._address, self.bound = self._server, None, None, None
        if server is not None:
            server.close()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=self._timeout + 1)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._active >= self._max_connections:
            self.refused += 1
            writer.transport.abort()
            return
        self._active += 1
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            async with asyncio.timeout(self._timeout):
                writer.write(self._reply().encode())
                if writer.can_write_eof():
                    writer.write_eof()
                await writer.drain()
                # Read what HAProxy may send (agent-send) until it hangs up: closing with
                # unread input would reset the connection under the reply.
                received = 0
                while received <= _MAX_INPUT and (chunk := await reader.read(1024)):
                    received += len(chunk)
        except (TimeoutError, OSError):
            pass
        finally:
            self._active -= 1
            writer.close()
