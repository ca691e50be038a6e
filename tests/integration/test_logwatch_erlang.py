"""A real OTP 25 node writing through logger_disk_log_h's wrap handler, with files so small
that it wraps dozens of times while the watcher follows it; the counts must be exact.

A wrap log destroys what it wraps over: a watcher that falls a whole cycle behind loses
lines, rightly counted as a loss. On a loaded machine the test process can be descheduled
long enough for that (a 4 x 20 kB cycle is ~70 ms of writing), so the writer waits for the
watcher after every BATCH lines (under a third of one file): the lines are still read while
the node writes and wraps, and the exact truth no longer depends on the scheduler.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.logfiles import FAULTS, PATTERN_NAMES, Watch, mixed
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

LINES = 6000
BATCH = 50
MAX_NO_BYTES = 20_000
MAX_NO_FILES = 4

# No distribution (no -sname): nothing to collide with other nodes or tests.
WRITER = r"""
{ok, Kinds} = file:read_file(os:getenv("KINDS_FILE")),
Texts = list_to_tuple(binary:split(Kinds, <<"\n">>, [global, trim])),
ok = logger:remove_handler(default),
ok = logger:set_primary_config(level, all),
ok = logger:add_handler(mim_disk_log, logger_disk_log_h, #{
    config => #{file => os:getenv("LOG_FILE"), type => wrap,
                max_no_files => list_to_integer(os:getenv("MAX_NO_FILES")),
                max_no_bytes => list_to_integer(os:getenv("MAX_NO_BYTES")),
                filesync_repeat_interval => no_repeat,
                %% synchronous, never dropping: the test compares against every line
                sync_mode_qlen => 0, drop_mode_qlen => 1000000, flush_qlen => 2000000,
                burst_limit_enable => false},
    formatter => {logger_formatter, #{single_line => true,
        template => ["when=", time, " level=", level, " ", msg, "\n"]}}}),
N = tuple_size(Texts),
Batch = list_to_integer(os:getenv("BATCH")),
lists:foreach(fun(I) ->
        logger:warning("seq=~b ~ts", [I, element(I, Texts)]),
        case I rem 10 of 0 -> timer:sleep(1); _ -> ok end,
        case I rem Batch of
            0 -> ok = logger_disk_log_h:filesync(mim_disk_log),
                 io:format("batch ~b~n", [I]),
                 "go\n" = io:get_line("");
            _ -> ok
        end
    end, lists:seq(1, N)),
ok = logger_disk_log_h:filesync(mim_disk_log),
io:format("done~n"),
halt(0).
"""


def test_otp_disk_log_wrap_counted_exactly(tmp_path: Path) -> None:
    """6000 lines through a 4 x 20 kB wrap log (~10 full cycles): every line once."""
    erl = require_binary("erl")
    logdir = tmp_path / "log"
    logdir.mkdir()
    kinds = mixed(LINES, every=4)
    texts = [FAULTS[k][1] for k in kinds]
    (tmp_path / "kinds").write_text("\n".join(texts) + "\n")
    expected = dict.fromkeys(PATTERN_NAMES, 0)
    for kind in kinds:
        pattern = FAULTS[kind][0]
        if pattern is not None:
            expected[pattern] += 1
    watch = Watch(tmp_path / "state", [str(logdir / "mongooseim.log*")], start_at="end")
    watch.step()
    env = {**os.environ, "KINDS_FILE": str(tmp_path / "kinds"),
           "LOG_FILE": str(logdir / "mongooseim.log"), "MAX_NO_FILES": str(MAX_NO_FILES),
           "MAX_NO_BYTES": str(MAX_NO_BYTES), "BATCH": str(BATCH)}
    proc = subprocess.Popen([erl, "-noshell", "-eval", WRITER], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    said: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            said.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            watch.step(0.005)
            try:
                line = said.get(timeout=0.005)
            except queue.Empty:
                continue
            output.append(line)
            if line.startswith("batch "):
                watch.step(0.005)  # caught up: the writer may go on
                proc.stdin.write("go\n")
                proc.stdin.flush()
        assert proc.wait(10) == 0, "the Erlang writer did not finish in time"
        reader.join(10)
        while not said.empty():
            output.append(said.get_nowait())
        assert "done\n" in output, output[-5:]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    watch.step()
    assert watch.totals.lines == LINES
    assert watch.counts() == expected
    assert watch.totals.losses == 0
    # Every switch to the next file after the first cycle reuses (truncates) it.
    assert watch.totals.truncations >= 20
    assert sorted(Path(p).name for p in watch.totals.files) == [
        f"mongooseim.log.{i}" for i in range(1, MAX_NO_FILES + 1)
    ]
