"""The log watcher's counters, kept consistent with the positions they were counted up to.

One `step` reads files (and journal entries), adds what it counted to the counters and
saves positions and counters in one atomic write before anyone sees the new values, so
whatever /metrics showed survives a SIGKILL and no counter ever goes backwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from mongooseim_agent.logwatch.follower import POLL_BUDGET, Bookkeeping, Follower
from mongooseim_agent.logwatch.journal import JournalBatch, messages_block
from mongooseim_agent.logwatch.scanner import LineStream, ScanPlan, Tally
from mongooseim_agent.logwatch.state import (
    Counters,
    FollowerState,
    StateError,
    StateStore,
    WatchState,
)


@dataclass(frozen=True, slots=True)
class WatchTotals:
    """An immutable view of the counters, for collect() and the tests."""

    matches: Mapping[str, int] = field(default_factory=dict)
    last_match: Mapping[str, float] = field(default_factory=dict)
    lines: int = 0
    bytes: int = 0
    long_lines: int = 0
    rotations: int = 0
    truncations: int = 0
    read_errors: int = 0
    lost_bytes: int = 0
    losses: int = 0
    state_write_errors: int = 0
    last_loss: float = 0.0
    files: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    listing_errors: tuple[str, ...] = ()
    # False while the last state write failed: counts are then not safe across a restart.
    persisted: bool = True


@dataclass(frozen=True, slots=True)
class StepResult:
    totals: WatchTotals
    # The read budget ran out: step again without waiting.
    more: bool


class LogWatcher:
    """Counters + follower + state file. Thread-safe: steps run on a worker thread."""

    def __init__(
        self,
        plan: ScanPlan,
        follower_factory: Callable[[], Follower],
        store: StateStore | None,
        *,
        wall: Callable[[], float] = time.time,
        budget: int = POLL_BUDGET,
    ) -> None:
        self._plan = plan
        self._new_follower = follower_factory
        self._follower = follower_factory()
        self._store = store
        self._wall = wall
        self._budget = budget
        self._lock = threading.Lock()
        self._counters = Counters()
        self._saved: WatchState | None = None
        self._journal_cursor: str | None = None
        self._state_write_errors = 0
        self._persisted = True
        self._last_loss = 0.0
        self._carried: JournalBatch | None = None
        # Set by abandon(), from another thread, without the lock (a stuck step holds it).
        self._abandoned = threading.Event()
        self._log = structlog.get_logger("logwatch").bind(component="watcher")

    @property
    def journal_cursor(self) -> str | None:
        return self._journal_cursor

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    def abandon(self) -> None:
        """Given up on while a step is stuck: whatever it does once it returns is not saved
        (a newer watcher may own the state file by then). Safe from any thread."""
        self._abandoned.set()

    def restore(self) -> WatchTotals:
        """Load the saved positions and counters; a missing or unusable file starts afresh."""
        with self._lock:
            state = self._load()
            if state is not None:
                self._saved = state
                self._apply_saved(state)
            return self._totals()

    def _load(self) -> WatchState | None:
        if self._store is None:
            return None
        try:
            return self._store.load()
        except StateError as exc:
            kept = self._store.set_aside()
            self._log.error("log watcher state unusable; starting afresh", error=str(exc),
                            kept_as=str(kept) if kept else None)
            return None

    def _apply_saved(self, state: WatchState) -> None:
        self._counters = state.counters
        self._journal_cursor = state.journal_cursor
        self._follower.close()
        self._follower = self._new_follower()
        self._follower.restore(state.follower)

    def step(self, globs: Sequence[str], journal: JournalBatch | None = None) -> StepResult:
        """One poll of the files plus a batch of journal entries, saved before returned."""
        with self._lock:
            if self._carried is not None:
                journal = _merge(self._carried, journal)
                self._carried = None
            tally = self._plan.tally()
            book = Bookkeeping()
            before = self._follower.signature()
            try:
                more = self._follower.poll(globs, tally, book, self._budget)
            except Exception:
                # Whatever was half-done, the saved state is a consistent point: go back to it.
                if self._saved is not None:
                    self._apply_saved(self._saved)
                else:
                    self._follower.close()
                    self._follower = self._new_follower()
                    self._counters = Counters()
                # Entries already taken from journalctl are not lost with the step.
                self._carried = journal
                raise
            cursor = self._journal_cursor
            if journal is not None:
                if journal.entries:
                    LineStream(self._plan).feed(messages_block(journal.entries), tally)
                    cursor = journal.entries[-1].cursor
                book.read_errors += journal.errors
                book.losses += journal.losses
            changed = (
                tally.bytes or tally.lines or any(_book_values(book))
                or cursor != self._journal_cursor or before != self._follower.signature()
            )
            if changed:
                self._counters = self._add(tally, book)
                self._journal_cursor = cursor
                self._save(self._follower.export())
            return StepResult(self._totals(), more)

    def close(self) -> None:
        """Save once more and let go of the files (positions are saved after each step)."""
        with self._lock:
            self._save(self._follower.export())
            self._follower.close()

    def _add(self, tally: Tally, book: Bookkeeping) -> Counters:
        c = self._counters
        now = self._wall()
        matches = dict(c.matches)
        last = dict(c.last_match)
        for name, n in zip(self._plan.names, tally.matches, strict=True):
            matches[name] = matches.get(name, 0) + n
            if n:
                last[name] = now
        if book.losses:
            self._last_loss = now
        return Counters(
            lines=c.lines + tally.lines,
            bytes=c.bytes + tally.bytes,
            long_lines=c.long_lines + tally.long_lines,
            rotations=c.rotations + book.rotations,
            truncations=c.truncations + book.truncations,
            read_errors=c.read_errors + book.read_errors,
            lost_bytes=c.lost_bytes + book.lost_bytes,
            losses=c.losses + book.losses,
            matches=matches,
            last_match=last,
        )

    def _save(self, follower: FollowerState) -> None:
        if self._abandoned.is_set():
            return
        state = WatchState(saved_at=self._wall(), follower=follower, counters=self._counters,
                           journal_cursor=self._journal_cursor)
        if self._store is None:
            self._saved = state
            return
        try:
            self._store.save(state)
        except OSError as exc:
            self._state_write_errors += 1
            if self._persisted:
                self._log.error("cannot save log positions; counts may repeat or reset after "
                                "a restart", path=str(self._store.path),
                                error=exc.strerror or str(exc))
            self._persisted = False
            return
        if not self._persisted:
            self._log.info("log positions saved again", path=str(self._store.path))
        self._persisted = True
        self._saved = state

    def _totals(self) -> WatchTotals:
        c = self._counters
        status = self._follower.status()
        return WatchTotals(
            matches={name: c.matches.get(name, 0) for name in self._plan.names},
            last_match={name: c.last_match.get(name, 0.0) for name in self._plan.names},
            lines=c.lines, bytes=c.bytes, long_lines=c.long_lines, rotations=c.rotations,
            truncations=c.truncations, read_errors=c.read_errors, lost_bytes=c.lost_bytes,
            losses=c.losses, state_write_errors=self._state_write_errors,
            last_loss=self._last_loss, files=status.files, unreadable=status.unreadable,
            listing_errors=status.listing_errors, persisted=self._persisted,
        )


def _merge(first: JournalBatch, then: JournalBatch | None) -> JournalBatch:
    if then is None:
        return first
    return JournalBatch(first.entries + then.entries, first.errors + then.errors,
                        first.losses + then.losses)


def _book_values(book: Bookkeeping) -> tuple[int, ...]:
    return (book.rotations, book.truncations, book.read_errors, book.lost_bytes, book.losses)
