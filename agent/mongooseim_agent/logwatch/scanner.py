"""Counts, per named pattern, the lines of a byte stream that match it: at most once per line.

The hot path never loops over lines in Python. Each read is searched whole, one pass per
needle (memmem or bytes.find), and only a hit costs Python work: its line is found with
rfind/find, checked against the line-length cap, confirmed by the pattern's regex when it
has one, and recorded once. Lines are counted with bytes.count, and over-long lines are
found by jumping max_line_bytes at a time.

Line semantics, which tests compare against a naive per-line loop:
- a line is the bytes up to a newline; a final fragment without one is a line only once the
  stream is finished (the writer may still be mid-line);
- a line longer than `max_line_bytes` is counted in `long_lines` and matched on its first
  `max_line_bytes` bytes only: the rest is skipped, so memory stays bounded whatever arrives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mongooseim_agent.logwatch.search import Finder, Search, best_search
from mongooseim_agent.mongooseim.log_patterns import LogPattern

DEFAULT_MAX_LINE_BYTES = 256 * 1024


class Tally:
    """Running totals of one scan; `matches` is indexed like the plan's patterns."""

    __slots__ = ("bytes", "lines", "long_lines", "matches")

    def __init__(self, patterns: int) -> None:
        self.matches = [0] * patterns
        self.lines = 0
        self.long_lines = 0
        self.bytes = 0

    def add(self, other: Tally) -> None:
        for i, n in enumerate(other.matches):
            self.matches[i] += n
        self.lines += other.lines
        self.long_lines += other.long_lines
        self.bytes += other.bytes


@dataclass(frozen=True, slots=True)
class _Alternative:
    pattern: int
    literal: bytes | None
    regex: re.Pattern[bytes] | None


class ScanPlan:
    """Compiled form of a pattern catalogue for one line-length cap."""

    def __init__(
        self,
        patterns: Sequence[LogPattern],
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        search: Search | None = None,
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.patterns = tuple(patterns)
        self.names = tuple(p.name for p in self.patterns)
        self.max_line = max_line_bytes
        self._search = search if search is not None else best_search()
        grouped: list[tuple[int, tuple[_Alternative, ...]]] = []
        for index, pattern in enumerate(self.patterns):
            if pattern.literals:
                alts = tuple(_Alternative(index, lit, pattern.regex) for lit in pattern.literals)
            elif pattern.regex is not None:
                alts = (_Alternative(index, None, pattern.regex),)
            else:
                raise ValueError(f"pattern {pattern.name!r} has neither literals nor a regex")
            grouped.append((index, alts))
        self._grouped = tuple(grouped)

    def tally(self) -> Tally:
        return Tally(len(self.patterns))

    def scan(self, buf: bytes, start: int, end: int, tally: Tally) -> None:
        """Count the complete lines in buf[start:end]; buf[end - 1] must be a newline."""
        if start >= end:
            return
        tally.lines += buf.count(b"\n", start, end)
        long_starts = self._long_lines(buf, start, end)
        tally.long_lines += len(long_starts)
        find = self._search.finder(buf)
        matches = tally.matches
        for index, alts in self._grouped:
            if len(alts) == 1 and (alts[0].literal is not None or not long_starts):
                matches[index] += sum(1 for _ in self._line_starts(alts[0], buf, start, end,
                                                                   find))
                continue
            starts: set[int] = set()
            for alt in alts:
                starts.update(self._line_starts(alt, buf, start, end, find))
                if alt.literal is None and alt.regex is not None:
                    # An over-long line is matched as if it ended at the cap, as it is when
                    # it spans reads; a search over the whole read sees its real end
                    # instead, so `$` (or a lookahead) could disagree there.
                    regex = alt.regex
                    starts.update(
                        s for s in long_starts
                        if regex.search(buf[s : s + self.max_line]) is not None
                    )
            matches[index] += len(starts)

    def _long_lines(self, buf: bytes, start: int, end: int) -> list[int]:
        # Every line starting in [q, r] ends by the last newline r of the window
        # [q, q + max_line], so each of them is short: jump past them all at once.
        max_line = self.max_line
        starts: list[int] = []
        q = start
        while q < end:
            window_end = q + max_line + 1
            if window_end >= end:
                break
            r = buf.rfind(b"\n", q, window_end)
            if r >= 0:
                q = r + 1
                continue
            starts.append(q)
            q = buf.find(b"\n", window_end, end) + 1
        return starts

    def _line_starts(
        self, alt: _Alternative, buf: bytes, start: int, end: int, find: Finder
    ) -> Iterator[int]:
        """Start offsets of the lines in buf[start:end] that `alt` matches, each once."""
        max_line = self.max_line
        literal = alt.literal
        regex = alt.regex
        pos = start
        while pos < end:
            if literal is not None:
                hit = find(literal, pos, end)
                if hit < 0:
                    return
                hit_end = hit + len(literal)
            elif regex is not None:
                found = regex.search(buf, pos, end)
                if found is None:
                    return
                # A whole-read match may lean on the next line: only its start is trusted,
                # and the regex is confirmed on the line alone below.
                hit = hit_end = found.start()
            else:
                return
            before = buf.rfind(b"\n", start, hit)
            line_start = before + 1 if before >= 0 else start
            line_end = buf.find(b"\n", hit, end)
            if line_end < 0:
                return
            head_end = min(line_end, line_start + max_line)
            # The leftmost hit in a line decides: one past the cap means none inside it.
            if hit_end <= head_end and (
                regex is None or regex.search(buf[line_start:head_end]) is not None
            ):
                yield line_start
            pos = line_end + 1


class LineStream:
    """Feeds the reads of one byte stream (a file, the journal) through a ScanPlan.

    Holds at most one partial line (shorter than the cap) between reads, or a flag saying
    the rest of an over-long line is being skipped. `committed` is the stream offset up to
    which everything has been counted: what to persist and where to resume.
    """

    __slots__ = ("consumed", "pending", "plan", "skipping")

    def __init__(self, plan: ScanPlan, consumed: int = 0, skipping: bool = False) -> None:
        self.plan = plan
        self.consumed = consumed
        self.pending = b""
        self.skipping = skipping

    @property
    def committed(self) -> int:
        return self.consumed - len(self.pending)

    def feed(self, data: bytes, tally: Tally) -> None:
        size = len(data)
        if not size:
            return
        tally.bytes += size
        self.consumed += size
        plan = self.plan
        start = 0
        if self.skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self.skipping = False
            start = newline + 1
        elif self.pending:
            newline = data.find(b"\n")
            if newline < 0:
                joined = len(self.pending) + size
                if joined > plan.max_line:
                    head = (self.pending + data)[: plan.max_line]
                    self.pending = b""
                    self._long_head(head, tally)
                else:
                    self.pending += data
                return
            # Only the straddling line is copied, never the whole read.
            line = self.pending + data[: newline + 1]
            self.pending = b""
            plan.scan(line, 0, len(line), tally)
            start = newline + 1
        last = data.rfind(b"\n", start)
        tail = start
        if last >= 0:
            plan.scan(data, start, last + 1, tally)
            tail = last + 1
        rest = size - tail
        if rest > plan.max_line:
            self._long_head(data[tail : tail + plan.max_line], tally)
        elif rest:
            self.pending = data[tail:]

    def finish(self, tally: Tally) -> None:
        """End of stream: a final line without a newline counts now."""
        if self.pending:
            line = self.pending + b"\n"
            self.pending = b""
            self.plan.scan(line, 0, len(line), tally)
        self.skipping = False

    def _long_head(self, head: bytes, tally: Tally) -> None:
        # Counted as soon as it is known to be over-long, so nothing of it needs keeping.
        line = head + b"\n"
        self.plan.scan(line, 0, len(line), tally)
        tally.long_lines += 1
        self.skipping = True


def scan_bytes(plan: ScanPlan, data: bytes, tally: Tally | None = None) -> Tally:
    """Counts over a complete byte string (its last line need not end in a newline)."""
    result = tally if tally is not None else plan.tally()
    stream = LineStream(plan)
    stream.feed(data, result)
    stream.finish(result)
    return result
