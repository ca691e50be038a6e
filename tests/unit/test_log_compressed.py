"""Archives and safe opens: closing a decompressing stream closes its file at once, and only
regular files are ever opened for reading (a FIFO is refused without blocking)."""

from __future__ import annotations

import bz2
import gc
import gzip
import lzma
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from mongooseim_agent.logwatch import compressed
from mongooseim_agent.logwatch.safeopen import NotRegularFile, open_regular

CONTENT = b"when=2026-11-23T10:00:00.000001+00:00 level=error reason=emfile\n" * 200

WRITERS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda data: data,
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("kind", list(WRITERS))
def test_closing_the_stream_closes_the_file_without_gc(tmp_path: Path, kind: str) -> None:
    """200 archives opened, read and closed with the garbage collector off: the process's fd
    count is back where it started after each close, not when GC runs."""
    path = tmp_path / f"mongooseim.log.1.{kind}"
    path.write_bytes(WRITERS[kind](CONTENT))
    gc.collect()
    gc.disable()
    try:
        before = _open_fds()
        for _ in range(200):
            with compressed.open_stream(path) as stream:
                assert stream.read() == CONTENT
                assert _open_fds() == before + 1
            assert _open_fds() == before
            assert compressed.read_head(path, 10) == CONTENT[:10]
            assert _open_fds() == before
        after = _open_fds()
    finally:
        gc.enable()
    print(f"{kind}: fds before {before}, after 400 opens {after}")
    assert after == before


def test_a_corrupt_archive_leaves_no_fd_behind(tmp_path: Path) -> None:
    """A gzip cut short fails to read, and its file is closed all the same."""
    path = tmp_path / "mongooseim.log.1.gz"
    path.write_bytes(gzip.compress(CONTENT)[:100])
    gc.disable()
    try:
        before = _open_fds()
        for _ in range(50):
            with pytest.raises(EOFError), compressed.open_stream(path) as stream:
                stream.read()
        assert _open_fds() == before
    finally:
        gc.enable()


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO with no writer: open_regular and open_stream raise NotRegularFile within a
    bounded time instead of blocking, and no fd is left open."""
    fifo = tmp_path / "mongooseim.log.1"
    os.mkfifo(fifo)
    before = _open_fds()
    outcome: list[BaseException] = []

    def attempt() -> None:
        for opener in (lambda: open_regular(str(fifo)), lambda: compressed.open_stream(fifo)):
            try:
                opener()
            except NotRegularFile as exc:
                outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(5.0)
    assert not thread.is_alive(), "opening a FIFO blocked"
    assert len(outcome) == 2
    assert "FIFO" in str(outcome[0])
    assert _open_fds() == before


def test_directories_and_devices_are_refused(tmp_path: Path) -> None:
    """Only regular files are opened: a directory and /dev/zero are refused."""
    for path in (str(tmp_path), "/dev/zero"):
        with pytest.raises(NotRegularFile):
            open_regular(path)
