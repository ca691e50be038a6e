"""The daemon's side of state_dir: follow the drain marker, beat and acknowledge in agent.json.

Off the request path: a scrape or /node/ready never touches the disk. One stat() of the
marker per poll; the presence file is rewritten every heartbeat and at once when the drain
state the agent applies changes, which is the acknowledgement `drain` waits for.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from mongooseim_agent import __version__, drain, presence
from mongooseim_agent.snapshot import Sample


class Beacon:
    def __init__(
        self,
        state_dir: Callable[[], Path],
        on_change: Callable[[], None] = lambda: None,
        *,
        wall: Callable[[], float] = time.time,
        poll: float = 0.25,
        heartbeat: float = presence.HEARTBEAT_SECONDS,
        pid: int | None = None,
    ) -> None:
        self._state_dir = state_dir
        self._on_change = on_change
        self._wall = wall
        self._poll = poll
        self._heartbeat = heartbeat
        self._pid = os.getpid() if pid is None else pid
        self._started = wall()
        self._followed: Path | None = None
        self._follower: drain.DrainFollower | None = None
        self._write_failing = False
        self._log = structlog.get_logger("drain")
        self.drain: drain.DrainState | None = None

    def samples(self) -> tuple[Sample, ...]:
        state = self.drain
        return (
            Sample("mongooseim_node_drained", 0 if state is None else 1),
            Sample("mongooseim_node_drained_since_timestamp_seconds",
                   0 if state is None else state.since),
        )

    def poll_once(self) -> bool:
        """Follow the marker; True when the applied drain state changed (logged here)."""
        state_dir = self._state_dir()
        if self._follower is None or self._followed != state_dir:
            self._follower, self._followed = drain.DrainFollower(state_dir), state_dir
        follower = self._follower
        if not follower.poll():
            return False
        before, self.drain = self.drain, follower.state
        now = self._wall()
        if self.drain is not None:
            self._log.info("drained", reason=self.drain.reason, by=self.drain.by,
                           since=self.drain.since, summary=self.drain.describe(now))
        elif before is not None:
            self._log.info("undrained", reason=before.reason, by=before.by,
                           drained_for_seconds=round(now - before.since, 1))
        self._on_change()
        return True

    def presence(self) -> presence.Presence:
        return presence.Presence(self._pid, __version__, self._started, self._wall(), self.drain)

    async def run(self) -> None:
        last_beat = float("-inf")
        while True:
            changed = self.poll_once()
            if changed or time.monotonic() - last_beat >= self._heartbeat:
                last_beat = time.monotonic()
                await self._write()
            await asyncio.sleep(self._poll)

    async def _write(self) -> None:
        state_dir = self._state_dir()
        try:
            await asyncio.to_thread(_mkdir_and_write, state_dir, self.presence())
        except OSError as exc:
            if not self._write_failing:
                self._log.error("cannot write the presence file: drain and check cannot see "
                                "this agent", path=str(presence.path(state_dir)),
                                error=exc.strerror or str(exc))
            self._write_failing = True
            return
        if self._write_failing:
            self._log.info("presence file written again", path=str(presence.path(state_dir)))
        self._write_failing = False

    def remove(self) -> None:
        """On a clean stop: a stopped agent leaves no presence behind to be mistaken."""
        try:
            current = presence.read(self._state_dir())
        except (presence.PresenceError, OSError):
            return
        if current is not None and current.pid == self._pid:
            try:
                presence.path(self._state_dir()).unlink()
            except OSError:
                return


def _mkdir_and_write(state_dir: Path, beat: presence.Presence) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    presence.write(state_dir, beat)
