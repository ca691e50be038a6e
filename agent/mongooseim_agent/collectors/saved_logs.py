"""The log checks for `check`, judged from the counts the running agent saved under state_dir.

`check` cannot follow the logs itself in the second it runs: the log watcher's counts live in
the running agent. The watcher saves them with its positions (logwatch/state.py) and the
agent beats in its presence file (presence.py); this collector reads both. Saved counts
that no running agent keeps up to date are not evidence that the logs are quiet, so the log
checks are then UNKNOWN, with the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent import drain, presence
from mongooseim_agent.collectors.logs import METRICS, configured_patterns, pattern_checks
from mongooseim_agent.config import LogsSection
from mongooseim_agent.logwatch.state import Counters, StateError, StateStore, WatchState
from mongooseim_agent.metrics import MetricSpec
from mongooseim_agent.mongooseim.log_patterns import catalogue
from mongooseim_agent.snapshot import Check, Snapshot, Status

_HINT = ("start the agent (systemctl start mongooseim-agent) with this config's state_dir: "
         "`check` reads the log counts the running agent saves there")


@dataclass(frozen=True, slots=True)
class _Saved:
    state: WatchState | None
    state_error: str | None
    agent: presence.Presence | None
    agent_error: str | None


class SavedLogsCollector:
    """Reads logs-state.json and agent.json once; never follows a log file itself."""

    name = "logs"
    interval = 60.0
    timeout = 5.0
    metrics: tuple[MetricSpec, ...] = METRICS

    def __init__(
        self,
        settings: LogsSection,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        running: Callable[[presence.Presence | None, float], bool] = presence.running,
        stale_after: float = presence.STALE_AFTER,
    ) -> None:
        self._settings = settings
        self._state_dir = state_dir
        self._clock = clock
        self._running = running
        self._stale_after = stale_after
        self._patterns = catalogue(configured_patterns(settings))

    async def collect(self) -> Snapshot:
        saved = await asyncio.to_thread(self._read)
        return Snapshot(self.name, checks=self.checks(saved, self._clock()))

    def _read(self) -> _Saved:
        state: WatchState | None = None
        state_error = agent_error = None
        try:
            state = StateStore(self._state_dir).load()
        except StateError as exc:
            state_error = str(exc)
        agent: presence.Presence | None = None
        try:
            agent = presence.read(self._state_dir)
        except presence.PresenceError as exc:
            agent_error = str(exc)
        return _Saved(state, state_error, agent, agent_error)

    def checks(self, saved: _Saved, now: float) -> tuple[Check, ...]:
        problem = self._problem(saved, now)
        if problem is not None:
            unknown = [Check("log_watch", Status.UNKNOWN, problem, hint=_HINT)]
            unknown.extend(
                Check(f"log_{p.name}", Status.UNKNOWN, problem, hint=_HINT)
                for p in self._patterns if p.severity is not None
            )
            return tuple(unknown)
        by = f"agent pid {saved.agent.pid}" if saved.agent is not None else "the agent"
        if saved.state is None:
            # The watcher saves once it has read something: a running agent on quiet logs.
            counters = Counters()
            summary = f"{by} runs and has counted no log lines since it started"
        else:
            counters = saved.state.counters
            summary = (f"{len(saved.state.follower.files)} log files followed by {by}; "
                       f"counts saved {drain.age(now - saved.state.saved_at)} ago")
        watch = Check("log_watch", Status.OK, summary)
        return (watch, *pattern_checks(self._patterns, counters.matches, counters.last_match,
                                       now, self._settings.match_window))

    def _problem(self, saved: _Saved, now: float) -> str | None:
        path = StateStore(self._state_dir).path
        if saved.state_error is not None:
            return saved.state_error
        alive = self._running(saved.agent, now)
        if saved.state is None:
            if alive:
                return None
            return (f"no log counts saved at {path}: "
                    + presence.describe_absence(self._state_dir, saved.agent, now))
        fresh = abs(now - saved.state.saved_at) <= self._stale_after
        if alive or fresh:
            return None
        absence = (saved.agent_error if saved.agent_error is not None
                   else presence.describe_absence(self._state_dir, saved.agent, now))
        return (f"log counts at {path} are stale (saved "
                f"{drain.age(now - saved.state.saved_at)} ago): {absence}")
