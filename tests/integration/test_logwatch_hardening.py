"""Hostile log files: a FIFO, a hung file operation, too many files, a vanishing directory,
`cp` over a rotated copy. Each asserts its bound (time, fds, exact counts) and prints the
footprint (fds, RSS, threads) before and after the attack."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mongooseim_agent.collectors.logs import LogsCollector
from mongooseim_agent.config import LogsSection
from tests.support.agentproc import AgentProcess, Series, value
from tests.support.footprint import footprint, report
from tests.support.logfiles import LogBook, assert_truth, make_watch, mixed

pytestmark = pytest.mark.integration


def test_fifo_swapped_for_an_idle_rotated_file_never_blocks(
    tmp_path: Path, logdir: Path
) -> None:
    """`.1` closed as idle, then `rm .1; mkfifo .1`: the next polls return at once, the FIFO
    is never read, the live file's new lines are counted exactly, no fd is left behind."""
    log, rotated = logdir / "mongooseim.log", logdir / "mongooseim.log.1"
    book = LogBook()
    book.write(rotated, mixed(20))
    book.write(log, mixed(10))
    watch = make_watch(tmp_path, logdir)
    watch.step()
    watch.step(40.0)  # past idle_close: the superseded .1 is read and its fd let go
    assert_truth(watch, book)
    before = footprint()
    rotated.unlink()
    os.mkfifo(rotated)
    done = threading.Event()

    def polls() -> None:
        for _ in range(5):
            book.write(log, mixed(7))
            watch.step(10.0)
        done.set()

    thread = threading.Thread(target=polls, daemon=True)
    started = time.monotonic()
    thread.start()
    assert done.wait(10.0), "a poll blocked on the FIFO"
    elapsed = time.monotonic() - started
    thread.join(5.0)
    after = footprint()
    report("fifo", before, after)
    assert_truth(watch, book)
    assert watch.totals.files == (str(log),)
    assert watch.totals.read_errors == 0
    assert after.fds <= before.fds
    assert elapsed < 5.0


async def test_a_stuck_follower_fails_the_collector_and_close_is_bounded(
    tmp_path: Path,
) -> None:
    """A file operation that never returns: collect() fails within stuck_after (so
    collector_success goes to 0), close() returns within close_timeout, and the abandoned
    follower saves nothing once released."""
    logdir = tmp_path / "log"
    logdir.mkdir()
    log = logdir / "mongooseim.log"
    LogBook().write(log, mixed(5))
    fifo = tmp_path / "hang"
    os.mkfifo(fifo)
    settings = LogsSection(paths=(str(logdir / "*.log*"),), start_at="beginning",
                           poll_interval=0.05)
    hang = threading.Event()

    def opener(path: str) -> int:
        if hang.is_set():
            return os.open(fifo, os.O_RDONLY)  # blocks: no writer
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    collector = LogsCollector(settings, tmp_path / "state", open_fd=opener,
                              stuck_after=0.5, close_timeout=1.0)
    before = footprint()
    task = asyncio.create_task(collector.run())
    try:
        for _ in range(500):
            snap = await collector.collect()
            if any(s.metric == "mongooseim_log_lines_total" and s.value == 5
                   for s in snap.samples):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("lines never counted")
        state_file = tmp_path / "state" / "logs-state.json"
        saved = state_file.read_bytes()
        hang.set()
        (logdir / "mongooseim.log.new").write_bytes(b"x\n")  # a new file: opened, hangs
        started = time.monotonic()
        while True:
            try:
                await collector.collect()
            except RuntimeError as exc:
                assert "stuck" in str(exc)
                break
            assert time.monotonic() - started < 10.0, "stuck follower never reported"
            await asyncio.sleep(0.05)
        detected = time.monotonic() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        closing = time.monotonic()
        await collector.close()
        closed = time.monotonic() - closing
    during = footprint()
    # Release the hung open: the abandoned thread finishes without saving.
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.close(writer)
    thread = collector._thread
    assert thread is not None
    thread.join(10.0)
    after = footprint()
    report("stuck follower", before, after)
    print(f"stuck reported after {detected:.2f}s; close took {closed:.2f}s")
    assert 0.5 <= detected < 5.0
    assert closed < 3.0
    print(f"while abandoned: {during}")
    assert not thread.is_alive()
    assert state_file.read_bytes() == saved
    assert after.fds <= before.fds


def test_agent_with_a_fifo_for_a_rotated_log_counts_reloads_and_stops(
    tmp_path: Path, logdir: Path
) -> None:
    """The real agent: `rm mongooseim.log.1; mkfifo mongooseim.log.1` while both are
    followed: new lines are still counted exactly, collector_success stays 1, a SIGHUP
    reload and a SIGTERM stop each finish within seconds."""
    log, rotated = logdir / "mongooseim.log", logdir / "mongooseim.log.1"
    book = LogBook()
    book.write(rotated, mixed(9), count=False)
    book.write(log, mixed(6), count=False)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[node]\nname = "nonexistent_{os.getpid()}@localhost"\n'
        "[probes]\nlisteners = {}\n"
        f'[logs]\npaths = ["{logdir}/mongooseim.log*"]\npoll_interval = "100ms"\n'
    )
    agent = AgentProcess(config)
    try:
        def logs_ok(series: Series) -> bool:
            return value(series, "mongooseim_agent_collector_success", collector="logs") == 1

        series = agent.poll_metrics(lambda s: logs_ok(s) and value(
            s, "mongooseim_log_files_watched") == 2)
        assert value(series, "mongooseim_log_files_watched") == 2
        before = footprint(agent.proc.pid)
        rotated.unlink()
        os.mkfifo(rotated)
        book.write(log, mixed(12))
        expected = book.expected()
        series = agent.poll_metrics(
            lambda s: value(s, "mongooseim_log_lines_total") == book.lines)
        assert value(series, "mongooseim_log_lines_total") == book.lines
        for pattern, n in expected.items():
            assert value(series, "mongooseim_log_matches_total", pattern=pattern) == n
        assert logs_ok(series)
        started = time.monotonic()
        agent.signal(signal.SIGHUP)
        agent.wait_log("config reloaded", timeout=10)
        reloaded = time.monotonic() - started
        book.write(log, ["emfile"])
        series = agent.poll_metrics(
            lambda s: value(s, "mongooseim_log_lines_total") == book.lines)
        assert value(series, "mongooseim_log_lines_total") == book.lines
        assert logs_ok(series)
        after = footprint(agent.proc.pid)
        report("fifo in the agent", before, after)
        assert after.fds <= before.fds + 2
        started = time.monotonic()
        agent.signal(signal.SIGTERM)
        agent.proc.wait(20)
        stopped = time.monotonic() - started
    finally:
        agent.stop()
    print(f"reload took {reloaded:.2f}s, stop {stopped:.2f}s")
    assert reloaded < 5.0
    assert stopped < 10.0
    assert agent.proc.returncode == 0


def test_cp_over_the_rotated_copy_then_truncate_counts_exactly(
    tmp_path: Path, logdir: Path
) -> None:
    """`cp mongooseim.log mongooseim.log.1 && : > mongooseim.log`, five rounds: from the
    second round cp rewrites .1 in place (same inode); 500 lines written, 500 counted."""
    log, rotated = logdir / "mongooseim.log", logdir / "mongooseim.log.1"
    book = LogBook()
    watch = make_watch(tmp_path, logdir)
    watch.step()
    before = footprint()
    inodes = set()
    for round_ in range(5):
        book.write(log, mixed(60))
        if round_ % 2:
            watch.step()  # some lines read before the rotation, some not
        book.write(log, mixed(40))
        subprocess.run(["sh", "-c", f"cp '{log}' '{rotated}' && : > '{log}'"], check=True)
        inodes.add(rotated.stat().st_ino)
        watch.step()
        watch.step(10.0)
    watch.settle()
    after = footprint()
    report("cp over .1", before, after)
    assert after.fds <= before.fds + 2
    assert len(inodes) == 1, "cp did not rewrite .1 in place"
    assert book.lines == 500
    assert_truth(watch, book)
    assert watch.totals.losses == 0


def test_log_directory_moved_away_and_back_is_not_reread(tmp_path: Path) -> None:
    """`mv log log.away; ...; mv log.away log` with rotated files and an archive, away for
    longer than every grace: nothing is read again (only the 2 lines written after), no
    loss, and the listing error is reported while the directory is away."""
    logdir = tmp_path / "log"
    logdir.mkdir()
    book = LogBook()
    book.write(logdir / "mongooseim.log.2", mixed(30), count=False)
    with gzip.open(logdir / "mongooseim.log.3.gz", "wb") as archive:
        archive.write(book.lines_of(mixed(30)))
    book.lines, book.matches = 0, Counter()
    book.write(logdir / "mongooseim.log.1", mixed(30), count=False)
    book.write(logdir / "mongooseim.log", mixed(30), count=False)
    watch = make_watch(tmp_path, logdir, start_at="end")
    watch.step()
    watch.step(40.0)  # rotated files read and their fds let go (idle)
    assert watch.totals.lines == 0
    before = footprint()
    away = tmp_path / "log.away"
    logdir.rename(away)
    watch.step(1.5)
    assert watch.totals.listing_errors == (f"{logdir}: No such file or directory",)
    watch.step(40.0)
    away.rename(logdir)
    watch.step()
    book.write(logdir / "mongooseim.log", ["emfile", "info"])
    watch.settle()
    after = footprint()
    report("log directory away and back", before, after)
    assert after.fds <= before.fds + 2
    assert_truth(watch, book)
    assert watch.totals.lines == 2
    assert (watch.totals.losses, watch.totals.listing_errors) == (0, ())


def _runner(tmp_path: Path, globs: list[str], nofile: int) -> subprocess.Popen[str]:
    def limit() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.logwatch_runner", str(tmp_path / "state"),
         *globs, "--stdin"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=limit,  # noqa: PLW1509 - only setrlimit
        cwd=Path(__file__).resolve().parents[2],
    )


def _step(runner: subprocess.Popen[str], n: int = 1) -> dict[str, object]:
    assert runner.stdin is not None and runner.stdout is not None
    runner.stdin.write(f"step {n}\n")
    runner.stdin.flush()
    line = runner.stdout.readline()
    assert line, "the runner died"
    return json.loads(line)  # type: ignore[no-any-return]


def test_3000_rotated_files_at_nofile_1024_are_counted_once(tmp_path: Path) -> None:
    """3000 matching rotated files and a live one, in a process limited to 1024 fds: every
    file counted once, the fds held stay within the budget, new lines count exactly, and
    moving the directory away and back re-counts nothing."""
    logdir = tmp_path / "log"
    logdir.mkdir()
    book = LogBook()
    kinds = mixed(3000)
    for n in range(3000, 0, -1):
        path = logdir / f"mongooseim.log.{n}"
        book.write(path, [kinds[n - 1]])
        os.utime(path, ns=(n, 10**18 - n * 10**9))
    live = logdir / "mongooseim.log"
    book.write(live, mixed(5))
    runner = _runner(tmp_path, [str(logdir / "mongooseim.log*")], nofile=1024)
    assert runner.stdout is not None
    try:
        assert runner.stdout.readline().strip() == "ready"
        before = footprint(runner.pid)
        started = time.monotonic()
        totals = _step(runner, 3)
        first = time.monotonic() - started
        assert totals["lines"] == book.lines, totals["listing_errors"]
        assert totals["matches"] == book.expected()
        book.write(live, ["emfile", "emfile"])
        totals = _step(runner, 3)
        assert totals["matches"] == book.expected()
        assert totals["lines"] == book.lines
        away = tmp_path / "log.away"
        logdir.rename(away)
        totals = _step(runner, 3)
        assert totals["listing_errors"]
        away.rename(logdir)
        book.write(live, ["enfile"])
        started = time.monotonic()
        totals = _step(runner, 3)
        later = time.monotonic() - started
        after = footprint(runner.pid)
    finally:
        runner.kill()
        runner.wait()
    report("3000 files at nofile 1024", before, after)
    print(f"3 steps over 3000 new files: {first:.2f}s; 3 steps after: {later:.2f}s")
    assert totals["matches"] == book.expected()
    assert totals["lines"] == book.lines
    assert (totals["read_errors"], totals["losses"], totals["listing_errors"]) == (0, 0, [])
    assert len(totals["files"]) == 3001  # type: ignore[arg-type]
    assert totals["open_fds"] <= 64 + 16  # type: ignore[operator]
    assert after.fds <= 64 + 16


def test_restart_while_the_log_directory_is_away_rereads_nothing(
    tmp_path: Path, logdir: Path
) -> None:
    """SIGKILL, then a restart while the directory is moved away, then it comes back: the
    saved positions are kept while it cannot be listed, so nothing is read twice and
    nothing is counted lost."""
    log, rotated = logdir / "mongooseim.log", logdir / "mongooseim.log.1"
    book = LogBook()
    book.write(rotated, mixed(20))
    with gzip.open(logdir / "mongooseim.log.2.gz", "wb") as archive:
        archive.write(LogBook().lines_of(mixed(20)))
    watch = make_watch(tmp_path, logdir)
    book.write(log, mixed(20))
    watch.step()
    watch.step(40.0)
    assert_truth(watch, book)
    away = tmp_path / "log.away"
    logdir.rename(away)
    watch.restart()
    watch.step(1.5)
    watch.step(40.0)
    assert watch.totals.listing_errors
    away.rename(logdir)
    book.write(log, ["emfile", "info"])
    watch.settle()
    assert_truth(watch, book)
    assert watch.totals.losses == 0
    assert watch.totals.listing_errors == ()
