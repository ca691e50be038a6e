"""Log watcher collector: fault patterns counted exactly once through rotations and restarts.

`run()` drives the follow loop (a step every poll_interval, on its own thread); `collect()`
only turns the last saved totals into samples and checks. Totals are published after
they were saved with their positions, so /metrics never shows a count a restart could lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import structlog

from mongooseim_agent.config import LogsSection
from mongooseim_agent.logwatch.follower import Follower
from mongooseim_agent.logwatch.journal import JournalSource, Spawn
from mongooseim_agent.logwatch.safeopen import open_regular
from mongooseim_agent.logwatch.scanner import ScanPlan
from mongooseim_agent.logwatch.sources import default_globs
from mongooseim_agent.logwatch.state import StateStore
from mongooseim_agent.logwatch.watcher import LogWatcher, WatchTotals
from mongooseim_agent.metrics import MetricSpec, counter, gauge
from mongooseim_agent.mongooseim.log_patterns import LogPattern, catalogue, user_pattern
from mongooseim_agent.snapshot import Check, Perf, Sample, Snapshot, Status

METRICS: tuple[MetricSpec, ...] = (
    counter("mongooseim_log_matches_total", "Log lines matching a named pattern.", "pattern"),
    gauge(
        "mongooseim_log_last_match_timestamp_seconds",
        "When a line matching the pattern was last read (Unix seconds; 0: never).",
        "pattern",
    ),
    counter("mongooseim_log_lines_total", "Log lines read."),
    counter("mongooseim_log_bytes_total", "Log bytes read."),
    counter(
        "mongooseim_log_long_lines_total",
        "Lines longer than max_line_bytes: matched on their first max_line_bytes only.",
    ),
    counter(
        "mongooseim_log_rotations_total",
        "New log files that replaced or followed a watched one (rename, recreate, symlink "
        "swap).",
    ),
    counter(
        "mongooseim_log_truncations_total",
        "Watched files truncated or rewritten in place (copytruncate, disk_log wrap reuse).",
    ),
    counter(
        "mongooseim_log_read_errors_total",
        "Times a log file (or the journal) became unreadable; retried every poll.",
    ),
    counter(
        "mongooseim_log_lost_bytes_total",
        "Log bytes known to have been written and never read: gone before they could be.",
    ),
    counter(
        "mongooseim_log_losses_total",
        "Times log content that was not confirmed fully read disappeared (rotated and "
        "deleted, or overwritten, while not being read); its lines may be missing.",
    ),
    counter(
        "mongooseim_log_state_write_errors_total",
        "Failed saves of log positions; counts may repeat or reset after a restart.",
    ),
    gauge("mongooseim_log_files_watched", "Log files being followed."),
)

# collect() only reads memory, so it runs often; the follow thread's poll is the costly part.
COLLECT_INTERVAL = 0.25
# A step that fails (a bug, not an unreadable file) is retried after this long.
RETRY_DELAY = 5.0
# A step still running after this long is stuck in a file operation (a hung filesystem):
# the collector reports failure until it returns. A legitimate step reads at most the poll
# budget (64 MiB), or one archive, in well under this.
STUCK_AFTER = 30.0
# close() waits this long for the follow thread; a stuck one is abandoned (it is a daemon
# thread, and its watcher no longer saves), so stop and reload finish regardless.
CLOSE_TIMEOUT = 5.0


def configured_patterns(settings: LogsSection) -> list[LogPattern]:
    """The user-defined patterns of [logs] patterns (already validated by the config)."""
    return [user_pattern(name, literal=spec.literal, regex=spec.regex)
            for name, spec in settings.patterns.items()]


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def pattern_checks(
    patterns: Sequence[LogPattern], matches: Mapping[str, int],
    last_match: Mapping[str, float], now: float, window: float,
) -> list[Check]:
    """One log_<pattern> check per pattern with a severity: failing while a match is recent.

    Pure, so `check` judges the running agent's saved counts exactly as the agent does.
    """
    checks = []
    for pattern in patterns:
        if pattern.severity is None:
            continue
        total = matches.get(pattern.name, 0)
        last = last_match.get(pattern.name, 0.0)
        name = f"log_{pattern.name}"
        perf = {pattern.name: Perf(total, "c", min=0)}
        if last and now - last < window:
            checks.append(Check(
                name, pattern.severity,
                f"{pattern.meaning}; last seen {_age(now - last)} ago ({total} lines "
                "in total)",
                hint=pattern.hint, perfdata=perf,
            ))
        else:
            checks.append(Check(
                name, Status.OK,
                f"no {pattern.name} lines in the last {_age(window)} ({total} in total)",
                perfdata=perf,
            ))
    return checks


REUSE_SECONDS = 1.0


class LogsCollector:
    """Follows the node's logs (and optionally its journal) and reports fault patterns."""

    name = "logs"
    metrics = METRICS

    def __init__(
        self,
        settings: LogsSection,
        state_dir: Path,
        release_root: Callable[[], Path | None] = lambda: None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        open_fd: Callable[[str], int] = open_regular,
        journal_command: Sequence[str] = ("journalctl",),
        journal_spawn: Spawn = asyncio.create_subprocess_exec,
        drain_grace: float = 5.0,
        stuck_after: float = STUCK_AFTER,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self.interval = COLLECT_INTERVAL
        self.timeout = COLLECT_INTERVAL
        self._settings = settings
        self._release_root = release_root
        self._clock = clock
        self._monotonic = monotonic
        self._stuck_after = stuck_after
        self._close_timeout = close_timeout
        # Set by the follow thread while a step runs (monotonic seconds), None between steps.
        self._step_started: float | None = None
        self._stuck_reported = False
        self._patterns = catalogue(configured_patterns(settings))
        plan = ScanPlan(self._patterns, settings.max_line_bytes)

        def follower() -> Follower:
            # Its wall clock stays the real one: it is compared with files' ctimes.
            return Follower(plan, start_at=settings.start_at, drain_grace=drain_grace,
                            monotonic=monotonic, open_fd=open_fd)

        self._watcher = LogWatcher(plan, follower, StateStore(state_dir), wall=clock)
        self._journal = (
            JournalSource(settings.journal_unit, command=journal_command,
                          start_at=settings.start_at, spawn=journal_spawn)
            if settings.journal_unit else None
        )
        self._totals = WatchTotals()
        self._globs: tuple[str, ...] = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._restored = asyncio.Event()
        self._error: str | None = None
        # The last snapshot and what it was built from: collect() runs 4 times a second and
        # mostly finds nothing new.
        self._built: tuple[WatchTotals, float, Snapshot] | None = None
        self._log = structlog.get_logger("logwatch").bind(collector=self.name)

    def _current_globs(self) -> tuple[str, ...]:
        if self._settings.paths:
            return self._settings.paths
        return default_globs(self._release_root())

    async def run(self) -> None:
        self._totals = await asyncio.to_thread(self._watcher.restore)
        self._globs = self._current_globs()
        self._restored.set()
        if self._journal is not None:
            self._journal.start(self._watcher.journal_cursor)
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def finished() -> None:
            if not ended.done():
                ended.set_result(None)

        def follow() -> None:
            try:
                self._follow()
            finally:
                if self._watcher.abandoned:
                    # Given up on by close(): let go of the files, save nothing.
                    self._watcher.close()
                with contextlib.suppress(RuntimeError):  # the loop may be gone by now
                    loop.call_soon_threadsafe(finished)

        # One long-lived thread rather than asyncio.to_thread per poll: handing each poll to
        # the executor and back cost 0.2% of a core here on its own, a tenth of the budget.
        self._thread = threading.Thread(target=follow, name="logs-follow", daemon=True)
        self._thread.start()
        try:
            await ended
        finally:
            self._stop.set()

    def _follow(self) -> None:
        while not self._stop.is_set():
            batch = self._journal.drain() if self._journal is not None else None
            self._step_started = self._monotonic()
            try:
                result = self._watcher.step(self._globs, batch)
            except Exception as exc:  # noqa: BLE001 - the watcher rolled back; report, retry
                if self._error is None:
                    self._log.exception("log watcher step failed")
                self._error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(RETRY_DELAY)
                continue
            finally:
                self._step_started = None
            if self._error is not None:
                self._error = None
                self._log.info("log watcher recovered")
            # A plain attribute swap: collect() on the event loop reads whole snapshots.
            self._totals = result.totals
            if not result.more:
                self._stop.wait(self._settings.poll_interval)

    async def close(self) -> None:
        self._stop.set()
        if self._journal is not None:
            await self._journal.stop()
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join, self._close_timeout)
            if thread.is_alive():
                self._watcher.abandon()
                self._log.error("log follower stuck in a file operation; abandoned",
                                waited_seconds=self._close_timeout)
                return
        await asyncio.to_thread(self._watcher.close)

    def _stuck_for(self) -> float | None:
        started = self._step_started
        if started is None:
            return None
        running = self._monotonic() - started
        return running if running >= self._stuck_after else None

    async def collect(self) -> Snapshot:
        # Before the saved counters are loaded, zeros would read as a counter reset.
        await self._restored.wait()
        # Discovery is asked here, on the event loop, never from the follow thread.
        self._globs = self._current_globs()
        stuck = self._stuck_for()
        if stuck is not None:
            if not self._stuck_reported:
                self._stuck_reported = True
                self._log.error("log follower stuck in a file operation", seconds=round(stuck))
            raise RuntimeError(f"log follower stuck for {stuck:.0f}s in a file operation; "
                               "no log line is being counted")
        if self._stuck_reported:
            self._stuck_reported = False
            self._log.info("log follower no longer stuck")
        if self._error is not None:
            raise RuntimeError(self._error)
        totals = self._totals
        now = self._clock()
        built = self._built
        # Checks age with the clock (match_window), so a reused snapshot is at most 1 s old.
        if built is not None and built[0] is totals and now - built[1] < REUSE_SECONDS:
            return built[2]
        snapshot = Snapshot(self.name, self._samples(totals), self._checks(totals))
        self._built = (totals, now, snapshot)
        return snapshot

    def _samples(self, t: WatchTotals) -> tuple[Sample, ...]:
        samples: list[Sample] = []
        for pattern in self._patterns:
            label = {"pattern": pattern.name}
            samples.append(Sample("mongooseim_log_matches_total", t.matches.get(pattern.name, 0),
                                  label))
            samples.append(Sample("mongooseim_log_last_match_timestamp_seconds",
                                  t.last_match.get(pattern.name, 0.0), label))
        for metric, value in (
            ("mongooseim_log_lines_total", t.lines),
            ("mongooseim_log_bytes_total", t.bytes),
            ("mongooseim_log_long_lines_total", t.long_lines),
            ("mongooseim_log_rotations_total", t.rotations),
            ("mongooseim_log_truncations_total", t.truncations),
            ("mongooseim_log_read_errors_total", t.read_errors),
            ("mongooseim_log_lost_bytes_total", t.lost_bytes),
            ("mongooseim_log_losses_total", t.losses),
            ("mongooseim_log_state_write_errors_total", t.state_write_errors),
            ("mongooseim_log_files_watched", len(t.files)),
        ):
            samples.append(Sample(metric, value))
        return tuple(samples)

    def _checks(self, t: WatchTotals) -> tuple[Check, ...]:
        now = self._clock()
        return (self._sources_check(t, now),
                *pattern_checks(self._patterns, t.matches, t.last_match, now,
                                self._settings.match_window))

    def _sources_check(self, t: WatchTotals, now: float) -> Check:
        problems: list[str] = []
        journal = self._journal
        # With only the journal configured, MongooseIM may well log to stdout alone.
        if not t.files and (self._settings.paths or journal is None):
            if self._settings.paths:
                problems.append(f"no file matches {', '.join(self._settings.paths)}")
            else:
                root = self._release_root()
                problems.append(
                    f"no log files under {root}/log" if root is not None
                    else "MongooseIM's release root is not known yet; set [logs] paths"
                )
        if t.unreadable:
            problems.append(f"cannot read {', '.join(t.unreadable)}")
        problems.extend(f"cannot examine {e}" for e in t.listing_errors)
        if journal is not None and not journal.running:
            problems.append(f"journal of {journal.unit} not being read")
        if not t.persisted:
            problems.append("positions are not being saved (see the agent's log)")
        if t.last_loss and now - t.last_loss < self._settings.match_window:
            problems.append(f"log content was lost before it could be read "
                            f"({t.losses} times in total)")
        following = f"following {len(t.files)} files"
        if journal is not None:
            following += f" and the journal of {journal.unit}"
        if problems:
            return Check("log_watch", Status.WARNING, f"{following}; " + "; ".join(problems),
                         hint="check [logs] paths and that the agent's user can read the logs "
                         "and write its state_dir")
        return Check("log_watch", Status.OK, following)
