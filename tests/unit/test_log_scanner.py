"""The chunked scanner counts exactly what a naive per-line loop counts, for any split."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mongooseim_agent.logwatch.scanner import LineStream, ScanPlan, Tally, scan_bytes
from mongooseim_agent.logwatch.search import BytesSearch, LibcSearch, Search, best_search
from mongooseim_agent.mongooseim.log_patterns import LogPattern, catalogue, user_pattern

USER = (
    user_pattern("level_error", regex=r"^when=\S+ level=error\b"),
    user_pattern("a_dot_b", regex=r"a.b"),
    # "\xff" as configured text is the two UTF-8 bytes c3 bf in the log.
    user_pattern("odd_bytes", literal="x\xff"),
    user_pattern("line_end", regex=r"zz$"),
)
PATTERNS = catalogue(USER)

FRAGMENTS = [
    b"\n", b"\n", b"\n", b"emfile", b"enfile", b"em", b"file", b"out of file descriptors",
    b"out of ", b"Connection attempt from node a@b rejected", b"Connection attempt from node ",
    b" rejected", b"nodedown", b"net_tick_timeout", b"inconsistent_database", b"system_limit",
    b"eaddrinuse", b"when=2026-11-23T10:15:02.123456+00:00 level=error ", b"level=error",
    b"a", b"b", b"x", b"zz", b" ", b"\xff\xfe\x00", b"\xc3\x28", b"x\xc3\xbf", b"\r\n",
    b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]


def naive(patterns: tuple[LogPattern, ...], data: bytes, max_line: int) -> Tally:
    """The reference: split into lines, cap each, test every pattern on every line."""
    tally = Tally(len(patterns))
    tally.bytes = len(data)
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()
    for line in lines:
        tally.lines += 1
        if len(line) > max_line:
            tally.long_lines += 1
        head = line[:max_line]
        for i, pattern in enumerate(patterns):
            tally.matches[i] += pattern.matches(head)
    return tally


def streamed(plan: ScanPlan, data: bytes, cuts: list[int]) -> Tally:
    tally = plan.tally()
    stream = LineStream(plan)
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        stream.feed(data[previous:cut], tally)
        previous = max(previous, cut)
    stream.finish(tally)
    return tally


def as_tuple(t: Tally) -> tuple[list[int], int, int, int]:
    return t.matches, t.lines, t.long_lines, t.bytes


def memmem_only() -> Search:
    libc = ctypes.CDLL(None)
    memmem = libc.memmem
    memmem.restype = ctypes.c_void_p
    memmem.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
    return LibcSearch(memmem)


SEARCHES: list[Search] = [BytesSearch(), best_search(), memmem_only()]


@pytest.mark.parametrize("search", SEARCHES, ids=["bytes.find", "strstr+memmem", "memmem"])
@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12)), max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
    max_line=st.sampled_from([1, 6, 16, 40, 100, 4096]),
)
def test_chunked_equals_naive_for_any_split(
    search: Search, parts: list[bytes], cuts: list[int], max_line: int
) -> None:
    """Same counts as the per-line reference whatever the reads, caps and bytes."""
    data = b"".join(parts)
    cuts = [min(c, len(data)) for c in cuts]
    plan = ScanPlan(PATTERNS, max_line, search)
    assert as_tuple(streamed(plan, data, cuts)) == as_tuple(naive(PATTERNS, data, max_line))


def test_memmem_is_used_on_this_platform() -> None:
    """The C library search loads here, so the benchmarked path is the tested path."""
    assert isinstance(best_search(), LibcSearch)


@pytest.mark.parametrize("search", SEARCHES, ids=["bytes.find", "strstr+memmem", "memmem"])
def test_finder_respects_region_ends_and_nul_bytes(search: Search) -> None:
    """An occurrence running past `end` is not found; NUL bytes do not hide later ones."""
    buf = b"ab emfile\x00 emfile emf"
    find = search.finder(buf)
    assert find(b"emfile", 0, len(buf)) == 3
    assert find(b"emfile", 4, len(buf)) == 11
    assert find(b"emfile", 4, 16) == -1
    assert find(b"emf", 12, len(buf)) == 18
    clean = b"xx emfile emfile"
    assert search.finder(clean)(b"emfile", 4, 15) == -1
    assert search.finder(clean)(b"e\x00", 0, len(clean)) == -1


def test_each_pattern_counts_once_per_line() -> None:
    """A line naming emfile three ways is one emfile line."""
    plan = ScanPlan(catalogue())
    line = b"reason=emfile error={error,emfile} text=\"out of file descriptors\"\n"
    tally = scan_bytes(plan, line * 5)
    counts = dict(zip(plan.names, tally.matches, strict=True))
    assert counts["emfile"] == 5
    assert tally.lines == 5


MONGOOSEIM_LINES = [
    (b"when=2026-11-23T10:15:02.123456+00:00 level=warning pid=<0.1402.0> "
     b"at=ranch_acceptor:loop/5:170 unstructured_log=\"Ranch acceptor reducing accept rate: "
     b"out of file descriptors\"", "emfile"),
    (b"when=2026-11-23T10:15:02.123456+00:00 level=error what=pool_reconnect reason=emfile",
     "emfile"),
    (b"when=2026-11-23T10:15:02.123456+00:00 level=error what=cets_disco error={error,emfile}",
     "emfile"),
    (b"when=2026-11-23T10:15:02.123456+00:00 level=error what=accept_failed reason=enfile",
     "enfile"),
    (b"when=2026-11-23T10:15:02.123456+00:00 level=error what=port_open_failed "
     b"reason=system_limit", "system_limit"),
    (b"when=2026-11-23T10:15:02.123456+00:00 level=error unstructured_log=\"Mnesia(mim@a): "
     b"** ERROR ** mnesia_event got {inconsistent_database, running_partitioned_network, "
     b"mim@b}\"", "partition"),
    (b"when=2026-11-23T10:15:02.123456+00:00 level=warning unstructured_log=\"node 'mim@b' "
     b"down: net_tick_timeout\"", "nodedown"),
    (b"when=2026-11-23T10:15:02.123456+00:00 level=warning what=nodedown remote_node=mim@b",
     "nodedown"),
    (b"when=2026-11-23T10:15:02.123456+00:00 level=error unstructured_log=\"** Connection "
     b"attempt from node mim@evil rejected. Invalid challenge reply. **\"", "cookie_rejected"),
    (b"when=2026-11-23T10:15:02.123456+00:00 level=error what=listener_failed "
     b"reason=eaddrinuse port=5222", "eaddrinuse"),
    (b'{"when":"2026-11-23T10:15:02.123456+00:00","level":"error","reason":"emfile"}',
     "emfile"),
]


@pytest.mark.parametrize(("line", "name"), MONGOOSEIM_LINES)
def test_catalogue_recognises_mongooseim_fault_lines(line: bytes, name: str) -> None:
    """Each documented fault line counts for exactly its own pattern."""
    plan = ScanPlan(catalogue())
    counts = dict(zip(plan.names, scan_bytes(plan, line + b"\n").matches, strict=True))
    assert {k: v for k, v in counts.items() if v} == {name: 1}


def test_ordinary_lines_match_nothing() -> None:
    """Normal traffic, a 'disallowed node' message and a non-rejection do not page anyone."""
    plan = ScanPlan(catalogue())
    text = (
        b"when=2026-11-23T10:15:02.123456+00:00 level=info what=c2s_started jid=a@localhost\n"
        b"** Connection attempt from disallowed node mim@x ** \n"
        b"Connection attempt from node mim@x accepted\n"
        b"what=user_logged_in file=profile.png\n"
    )
    assert sum(scan_bytes(plan, text).matches) == 0


def test_partial_line_waits_for_its_newline() -> None:
    """A line being written is not counted until its newline arrives (or the stream ends)."""
    plan = ScanPlan(catalogue())
    tally = plan.tally()
    stream = LineStream(plan)
    stream.feed(b"reason=emf", tally)
    assert (tally.lines, sum(tally.matches), stream.committed) == (0, 0, 0)
    stream.feed(b"ile\nnext", tally)
    assert (tally.lines, tally.matches[0], stream.committed) == (1, 1, 14)
    stream.finish(tally)
    assert (tally.lines, stream.committed) == (2, 18)


def _gigabyte_line(chunk: int, total: int) -> Iterator[bytes]:
    block = (b"x" * 1000 + b"emfile") * (chunk // 1006)
    sent = 0
    while sent < total:
        yield block
        sent += len(block)


def test_one_gigabyte_line_without_newline_stays_bounded() -> None:
    """A 1 GB line streamed in 1 MiB reads: counted once as long, memory never grows."""
    plan = ScanPlan(catalogue(), max_line_bytes=64 * 1024)
    tally = plan.tally()
    stream = LineStream(plan)
    for block in _gigabyte_line(1 << 20, 1 << 30):
        stream.feed(block, tally)
        assert len(stream.pending) <= plan.max_line
    stream.feed(b"tail\nreason=emfile\n", tally)
    stream.finish(tally)
    assert tally.bytes >= 1 << 30
    assert (tally.lines, tally.long_lines) == (2, 1)
    # The long line's head holds emfile (at byte 1000) and counts once; the next line once.
    assert tally.matches[0] == 2


def test_match_straddling_reads_counts() -> None:
    """A needle cut between two reads, at every possible cut, still counts once."""
    plan = ScanPlan(catalogue())
    data = b"a line with out of file descriptors in it\n"
    for cut in range(len(data) + 1):
        tally = plan.tally()
        stream = LineStream(plan)
        stream.feed(data[:cut], tally)
        stream.feed(data[cut:], tally)
        assert tally.matches[0] == 1 and tally.lines == 1


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), cut=st.integers(min_value=0, max_value=3000))
def test_binary_garbage_never_crashes(data: bytes, cut: int) -> None:
    """Arbitrary bytes: counts come back, lines equal the newline count (+1 unterminated)."""
    plan = ScanPlan(catalogue(), max_line_bytes=64)
    tally = streamed(plan, data, [cut])
    expected = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    assert tally.lines == expected


def test_regex_confirmed_on_its_own_line() -> None:
    """A user regex that would match across a newline counts only lines matching alone."""
    pattern = user_pattern("ab", regex=r"a\s+b")
    plan = ScanPlan((pattern,))
    assert scan_bytes(plan, b"xa\nb\na  b\n").matches == [1]
    assert re.compile(rb"a\s+b").search(b"xa\nb") is not None


@pytest.mark.parametrize("search", SEARCHES, ids=["bytes.find", "strstr+memmem", "memmem"])
def test_anchored_regex_on_a_long_line_counts_the_same_whole_or_split(search: Search) -> None:
    """An over-long line is matched on its head as if it ended at the cap, whether it arrives
    in one read or across several (hypothesis found the two paths disagreeing on `zz$`)."""
    data = b"a\x00\x00\x00zzemfile\nshort zz\n"
    plan = ScanPlan(PATTERNS, 6, search)
    line_end = plan.names.index("line_end")
    whole = streamed(plan, data, [])
    split = streamed(plan, data, [3, 9])
    assert whole.matches[line_end] == split.matches[line_end] == 1
    assert whole.long_lines == split.long_lines == 2
    assert as_tuple(whole) == as_tuple(naive(PATTERNS, data, 6))
