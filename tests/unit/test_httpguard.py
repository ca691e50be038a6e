"""The HTTP guard's pure parts: nofile raising, the cap, header boundaries, accept episodes."""

from __future__ import annotations

import asyncio
import errno
import resource

from structlog.testing import capture_logs

from mongooseim_agent.httpguard import (
    ConnectionGuard,
    GuardedConnection,
    Phase,
    _header_end,
    connection_cap,
    raise_nofile_limit,
)
from mongooseim_agent.webconfig import WebConfigSource


def test_soft_nofile_is_raised_to_the_hard_limit() -> None:
    """As Go runtimes do: soft 1024, hard 524288 -> 524288; already equal -> unchanged."""
    limits = {resource.RLIMIT_NOFILE: (1024, 524288)}
    calls: list[tuple[int, int]] = []

    def setrlimit(which: int, value: tuple[int, int]) -> None:
        calls.append(value)
        limits[which] = value

    assert raise_nofile_limit(limits.__getitem__, setrlimit) == (1024, 524288)
    assert calls == [(524288, 524288)]
    assert raise_nofile_limit(limits.__getitem__, setrlimit) == (524288, 524288)
    assert len(calls) == 1


def test_refused_raise_keeps_the_soft_limit() -> None:
    """A setrlimit error is not fatal: the agent runs with what it has."""
    def refuse(which: int, value: tuple[int, int]) -> None:
        raise OSError(errno.EPERM, "no")

    assert raise_nofile_limit(lambda _: (1024, 4096), refuse) == (1024, 1024)


def test_connection_cap_keeps_fds_in_reserve() -> None:
    """min(max_connections, nofile - reserve), at least one."""
    assert connection_cap(512, 256, 1024) == 512
    assert connection_cap(512, 256, 600) == 344
    assert connection_cap(512, 256, 100) == 1


def test_header_end_finds_crlf_and_lf_blank_lines() -> None:
    """The end of a request's headers, either line ending."""
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _header_end(request, 0) == len(request)
    assert _header_end(b"GET / HTTP/1.1\nHost: x\n\nGET", 0) == 24
    assert _header_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0) == -1


class _Inner(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data += data


async def test_request_boundaries_arm_and_clear_the_header_deadline() -> None:
    """Trickled headers keep the deadline armed; the blank line clears it; the next request's
    first byte re-arms it."""
    guard = ConnectionGuard(WebConfigSource(None), cap=4, header_timeout=60)
    conn = GuardedConnection(guard, _Inner())
    conn._start_headers()
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\n\r":
        conn.data_received(bytes([byte]))
        assert conn.phase is Phase.HEADERS and conn._deadline is not None
    conn.data_received(b"\n")
    assert conn.phase is Phase.BUSY and conn._deadline is None
    conn.data_received(b"G")
    assert conn.phase is Phase.HEADERS and conn._deadline is not None
    conn._deadline.cancel()


def test_accept_errors_are_counted_and_logged_once_per_episode() -> None:
    """100 EMFILE accept failures: one line, a counter of 100; recovery logged once."""
    guard = ConnectionGuard(WebConfigSource(None), cap=4, header_timeout=1)
    loop = asyncio.new_event_loop()
    try:
        with capture_logs() as logs:
            for _ in range(100):
                guard.exception_handler(loop, {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, "Too many open files"),
                })
            guard.admit(GuardedConnection(guard, _Inner()))
    finally:
        loop.close()
    assert guard.stats.accept_errors == 100
    assert [e["event"] for e in logs] == [
        "accept failing; connections wait in the backlog", "accept recovered"
    ]
