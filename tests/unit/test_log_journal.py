"""journalctl JSON entries: messages as text, as byte arrays, missing; the argv per position."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from mongooseim_agent.logwatch.journal import (
    JournalEntry,
    journal_argv,
    messages_block,
    parse_entry,
)


def test_text_message() -> None:
    """MESSAGE as a JSON string, with its cursor."""
    line = json.dumps({"__CURSOR": "s=1;i=2", "MESSAGE": "reason=emfile", "_PID": "7"})
    assert parse_entry(line.encode()) == JournalEntry("s=1;i=2", b"reason=emfile")


def test_binary_message() -> None:
    """journalctl sends non-UTF-8 messages as arrays of byte values."""
    line = json.dumps({"__CURSOR": "c", "MESSAGE": [0xFF, 0x65, 0x6D, 0x0A, 0x41]})
    assert parse_entry(line.encode()) == JournalEntry("c", b"\xffem\nA")


def test_missing_or_odd_message_keeps_the_cursor() -> None:
    """A null MESSAGE (left out by journalctl) still advances the position."""
    for message in (None, 5, [300], {"a": 1}):
        line = json.dumps({"__CURSOR": "c", "MESSAGE": message})
        assert parse_entry(line.encode()) == JournalEntry("c", b"")


def test_lines_that_are_not_entries() -> None:
    """No cursor, not JSON, not an object: skipped, never an exception."""
    for line in (b"", b"{", b"[1]", b'{"MESSAGE": "x"}', b'{"__CURSOR": ""}', b"\xff\xfe"):
        assert parse_entry(line) is None


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    """Whatever journalctl (or a broken pipe) produces, parsing answers or skips."""
    parse_entry(data)


def test_argv_for_each_start_position() -> None:
    """A saved cursor resumes right after it; otherwise the first start's position."""
    base = ["journalctl", "--follow", "--output=json", "--all", "--no-pager",
            "--unit=mongooseim.service"]
    assert journal_argv(["journalctl"], "mongooseim.service", "s=1", "end") == [
        *base, "--after-cursor=s=1", "--no-tail"]
    assert journal_argv(["journalctl"], "mongooseim.service", None, "end") == [
        *base, "--lines=0"]
    assert journal_argv(["journalctl"], "mongooseim.service", None, "beginning") == [
        *base, "--no-tail"]


def test_messages_block_is_one_line_per_message() -> None:
    """Messages become newline-terminated lines for one scan; multi-line ones stay split."""
    entries = [JournalEntry("a", b"one"), JournalEntry("b", b"two\nthree")]
    assert messages_block(entries) == b"one\ntwo\nthree\n"
    assert messages_block([]) == b""
