"""systemd's notify protocol over $NOTIFY_SOCKET, without libsystemd.

`Notifier` sends datagrams (`READY=1`, `STATUS=...`, `RELOADING=1` with `MONOTONIC_USEC`,
`STOPPING=1`, `WATCHDOG=1`) to the socket systemd names, a path or an abstract `@name`.
Outside systemd (no variable) every call is a no-op.

`Supervision` is the task that says READY=1 once the first collection is done, keeps
STATUS= current, and pings the watchdog from the event loop only while collectors make
progress: a wedged loop, or collectors that stopped running, get no pings and systemd
restarts the agent after WatchdogSec=.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping

import structlog

NOTIFY_SOCKET = "NOTIFY_SOCKET"


def socket_address(value: str) -> str | None:
    """The sendto() address of $NOTIFY_SOCKET: a path, or "@name" as an abstract socket."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_seconds(env: Mapping[str, str], pid: int) -> float | None:
    """WatchdogSec= as systemd passes it (WATCHDOG_USEC, for WATCHDOG_PID if set)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = env.get("WATCHDOG_PID")
    if usec <= 0 or (owner is not None and owner != str(pid)):
        return None
    return usec / 1_000_000


class Notifier:
    def __init__(
        self,
        address: str | None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._address = socket_address(address) if address else None
        self._monotonic_ns = monotonic_ns
        self._sock: socket.socket | None = None
        self._failing = False
        self._log = structlog.get_logger("sdnotify")
        if address and self._address is None:
            self._log.warning("unsupported NOTIFY_SOCKET; not notifying systemd", value=address)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        return cls(env.get(NOTIFY_SOCKET))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: str | int) -> bool:
        """One datagram of KEY=value lines; False (logged once) when it could not be sent."""
        if self._address is None:
            return False
        text = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._sock.setblocking(False)
            self._sock.sendto(text.encode(), self._address)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                self._log.warning("cannot notify systemd", error=str(exc))
            return False
        if self._failing:
            self._failing = False
            self._log.info("notifying systemd again")
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=_one_line(status))

    def status(self, status: str) -> bool:
        return self.send(STATUS=_one_line(status))

    def reloading(self) -> bool:
        # systemd >= 253 (Type=notify-reload) wants the time the reload began.
        return self.send(RELOADING=1, MONOTONIC_USEC=self._monotonic_ns() // 1000)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:256]


class Supervision:
    """READY=1 after the first collection, STATUS= on change, watchdog pings on progress."""

    def __init__(
        self,
        notifier: Notifier,
        started: Callable[[], bool],
        summary: Callable[[], str],
        progress: Callable[[], Hashable],
        watchdog: float | None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._notifier = notifier
        self._started = started
        self._summary = summary
        self._progress = progress
        self._watchdog = watchdog
        self._sleep = sleep
        self.pings = 0

    @property
    def tick(self) -> float:
        # Three chances per WatchdogSec= for a ping; STATUS= at least every 2 s.
        return min(self._watchdog / 3, 2.0) if self._watchdog else 2.0

    async def run(self) -> None:
        # systemd may arm the watchdog before READY=1: while the first collection runs
        # (bounded by TimeoutStartSec=), a loop that still turns is all there is to vouch for.
        waited = 0.0
        while not self._started():
            await self._sleep(0.05)
            waited += 0.05
            if self._watchdog is not None and waited >= self.tick:
                waited = 0.0
                self._notifier.watchdog()
        status = self._summary()
        self._notifier.ready(status)
        seen = self._progress()
        while True:
            await self._sleep(self.tick)
            current = self._summary()
            if current != status:
                status = current
                self._notifier.status(status)
            if self._watchdog is None:
                continue
            progress = self._progress()
            if progress != seen:
                seen = progress
                self.pings += 1
                self._notifier.watchdog()
