"""MongooseIM-format log lines with a record of what was written: the truth counts are checked
against. Every line is unique (a sequence number in its microseconds), as real ones are."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from mongooseim_agent.logwatch.follower import Follower
from mongooseim_agent.logwatch.scanner import ScanPlan
from mongooseim_agent.logwatch.state import StateStore
from mongooseim_agent.logwatch.watcher import LogWatcher, WatchTotals
from mongooseim_agent.mongooseim.log_patterns import catalogue

# kind -> (pattern it counts for, the text that carries it)
FAULTS: dict[str, tuple[str | None, str]] = {
    "info": (None, "level=info what=c2s_started jid=alice@localhost ip=10.0.0.7 port=5222"),
    "debug": (None, "level=debug what=routing_packet from=a@localhost to=b@localhost"),
    "ranch": ("emfile", 'level=warning at=ranch_acceptor:loop/5:170 unstructured_log="Ranch '
              'acceptor reducing accept rate: out of file descriptors"'),
    "emfile": ("emfile", "level=error what=pool_reconnect reason=emfile"),
    "enfile": ("enfile", "level=error what=accept_failed reason=enfile"),
    "partition": ("partition", 'level=error unstructured_log="Mnesia(mim@a): ** ERROR ** '
                  'mnesia_event got {inconsistent_database, running_partitioned_network, '
                  'mim@b}"'),
    "nodedown": ("nodedown", "level=warning what=nodedown remote_node=mim@b"),
    "cookie": ("cookie_rejected", 'level=error unstructured_log="** Connection attempt from '
               'node mim@evil rejected. Invalid challenge reply. **"'),
}
KINDS = tuple(FAULTS)


class LogBook:
    """Writes lines and keeps the truth: lines written and lines per pattern."""

    def __init__(self) -> None:
        self.seq = 0
        self.lines = 0
        self.matches: Counter[str] = Counter()

    def line(self, kind: str = "info") -> bytes:
        self.seq += 1
        text = FAULTS[kind][1]
        seconds, micros = divmod(self.seq, 1_000_000)
        stamp = f"2026-11-23T10:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{micros:06d}+00:00"
        return f"when={stamp} seq={self.seq} {text}\n".encode()

    def lines_of(self, kinds: Sequence[str]) -> bytes:
        out = []
        for kind in kinds:
            out.append(self.line(kind))
            self.lines += 1
            pattern = FAULTS[kind][0]
            if pattern is not None:
                self.matches[pattern] += 1
        return b"".join(out)

    def write(self, path: Path, kinds: Sequence[str], *, count: bool = True) -> bytes:
        """Append lines of the given kinds; `count=False` for lines nobody should count
        (written before the watcher starts at the end, or known to be lost)."""
        before = (self.lines, Counter(self.matches))
        data = self.lines_of(kinds)
        if not count:
            self.lines, self.matches = before
        with open(path, "ab") as f:
            f.write(data)
        return data

    def expected(self) -> dict[str, int]:
        return {name: self.matches.get(name, 0) for name in PATTERN_NAMES}


PATTERN_NAMES = tuple(p.name for p in catalogue())


def mixed(n: int, every: int = 3) -> list[str]:
    """n kinds cycling through every fault, a plain line between faults."""
    faults = [k for k in KINDS if FAULTS[k][0] is not None]
    return [faults[i // every % len(faults)] if i % every == 0 else "info" for i in range(n)]


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Watch:
    """A LogWatcher over real files with a fake monotonic clock; `restart()` is a SIGKILL:
    the old instance is dropped without close(), as a killed process would leave it."""

    def __init__(
        self,
        state_dir: Path,
        globs: Sequence[str],
        *,
        start_at: str = "beginning",
        max_line_bytes: int = 4096,
        drain_grace: float = 5.0,
        open_fd: Callable[[str], int] | None = None,
        budget: int = 64 << 20,
    ) -> None:
        self.state_dir = state_dir
        self.globs = list(globs)
        self.clock = FakeClock()
        self._options = {"start_at": start_at, "max_line_bytes": max_line_bytes,
                         "drain_grace": drain_grace, "open_fd": open_fd, "budget": budget}
        self.plan = ScanPlan(catalogue(), max_line_bytes)
        self.watcher = self._build()
        self.totals = self.watcher.restore()

    def _build(self) -> LogWatcher:
        opts = self._options
        extra = {"open_fd": opts["open_fd"]} if opts["open_fd"] is not None else {}

        def follower() -> Follower:
            # Real wall time: files' ctimes are compared with it after a restart.
            return Follower(self.plan, start_at=opts["start_at"],  # type: ignore[arg-type]
                            drain_grace=opts["drain_grace"], monotonic=self.clock, **extra)

        return LogWatcher(self.plan, follower, StateStore(self.state_dir), wall=self.clock,
                          budget=opts["budget"])  # type: ignore[arg-type]

    def step(self, seconds: float = 0.25) -> WatchTotals:
        """Advance the clock and poll until the backlog is read."""
        self.clock.advance(seconds)
        result = self.watcher.step(self.globs)
        while result.more:
            result = self.watcher.step(self.globs)
        self.totals = result.totals
        return self.totals

    def settle(self) -> WatchTotals:
        """Poll past the drain grace, so rotated-away files are finished and let go."""
        self.step()
        return self.step(10.0)

    def restart(self) -> Watch:
        """Drop this instance like a SIGKILL would (fds are closed, nothing is saved)."""
        self.watcher._follower.close()
        clock = self.clock
        self.watcher = self._build()
        self.clock = clock
        self.totals = self.watcher.restore()
        return self

    def counts(self) -> dict[str, int]:
        return dict(self.totals.matches)


def make_watch(tmp_path: Path, logdir: Path, **options: object) -> Watch:
    """A Watch over `logdir/mongooseim.log*` (or `globs=`), its state under tmp_path."""
    globs = options.pop("globs", [str(logdir / "mongooseim.log*")])
    return Watch(tmp_path / "state", globs, **options)  # type: ignore[arg-type]


def assert_truth(watch: Watch, book: LogBook) -> None:
    """The watcher's counts equal what was written: no line lost, none twice."""
    assert watch.counts() == book.expected()
    assert watch.totals.lines == book.lines
