"""`scan-logs`: the same counts from plain and compressed files, a table or JSON, exit codes."""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import os
from pathlib import Path

import pytest

from mongooseim_agent.commands import scan_logs as scan_command
from mongooseim_agent.commands.scan_logs import COMMAND, EXIT_OK, EXIT_UNREADABLE
from tests.support.logfiles import LogBook, mixed


def run(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    COMMAND.configure(parser)
    out, err = io.StringIO(), io.StringIO()
    code = scan_command.run(parser.parse_args(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def logs(tmp_path: Path) -> tuple[LogBook, bytes]:
    book = LogBook()
    data = book.lines_of(mixed(50)) + b"last line without newline reason=emfile"
    book.lines += 1
    book.matches["emfile"] += 1
    return book, data


@pytest.mark.parametrize("compress", [None, gzip.compress, bz2.compress, lzma.compress],
                         ids=["plain", "gzip", "bzip2", "xz"])
def test_counts_plain_and_compressed(tmp_path: Path, logs: tuple[LogBook, bytes],
                                     compress: object) -> None:
    """Compression is recognised by content (the name says nothing); counts are identical."""
    book, data = logs
    path = tmp_path / "mongooseim.log.1"
    path.write_bytes(compress(data) if compress else data)  # type: ignore[operator]
    code, out, err = run(str(path), "--json")
    assert (code, err) == (EXIT_OK, "")
    document = json.loads(out)
    assert document["total"]["matches"] == book.expected()
    assert document["total"]["lines"] == book.lines
    assert document["files"][0]["bytes"] == len(data)


def test_table_has_a_row_per_pattern_and_a_total(tmp_path: Path) -> None:
    """Two files: a column each plus a total."""
    book = LogBook()
    book.write(tmp_path / "a.log", ["emfile", "info"])
    book.write(tmp_path / "b.log", ["emfile", "partition"])
    code, out, _ = run(str(tmp_path / "a.log"), str(tmp_path / "b.log"))
    assert code == EXIT_OK
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert rows["emfile"] == ["1", "1", "2"]
    assert rows["partition"] == ["0", "1", "1"]
    assert rows["(lines)"] == ["2", "2", "4"]
    assert out.splitlines()[0].split()[-1] == "total"


def test_unreadable_and_corrupt_files_exit_2_naming_them(tmp_path: Path) -> None:
    """Missing, corrupt gzip, zstd: a clear message each, exit 2, readable files still counted."""
    good = tmp_path / "good.log"
    good.write_bytes(b"reason=emfile\n")
    corrupt = tmp_path / "bad.log.gz"
    corrupt.write_bytes(gzip.compress(b"reason=emfile\n" * 1000)[:60])
    zstd = tmp_path / "x.log.zst"
    zstd.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    code, out, err = run(str(good), str(tmp_path / "missing.log"), str(corrupt), str(zstd),
                         "--json")
    assert code == EXIT_UNREADABLE
    assert f"cannot read {tmp_path / 'missing.log'}: No such file or directory" in err
    assert f"cannot read {corrupt}:" in err
    assert f"cannot read {zstd}: zstd-compressed files cannot be read" in err
    assert json.loads(out)["files"][0]["matches"]["emfile"] == 1


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO given as a file: refused as not a regular file (exit 2), never waited on."""
    fifo = tmp_path / "mongooseim.log.1"
    os.mkfifo(fifo)
    code, _, err = run(str(fifo))
    assert code == EXIT_UNREADABLE
    assert f"cannot read {fifo}: not a regular file (a FIFO)" in err


def test_a_missing_file_prints_the_error_and_no_table_of_zeros(tmp_path: Path) -> None:
    """`scan-logs missing.log`: the error alone, no column of zeros that reads as clean."""
    code, out, err = run(str(tmp_path / "missing.log"))
    assert code == EXIT_UNREADABLE
    assert out == ""
    assert err.strip().endswith("missing.log: No such file or directory")
    good = tmp_path / "good.log"
    good.write_bytes(b"reason=emfile\n")
    code, out, _ = run(str(good), str(tmp_path / "missing.log"))
    assert "missing.log" not in out and out.splitlines()[0].split()[-1] == str(good)


def test_user_patterns_from_the_command_line(tmp_path: Path) -> None:
    """--pattern NAME=REGEX and --literal NAME=TEXT add counted patterns."""
    path = tmp_path / "m.log"
    path.write_bytes(b"slow query 1200 ms\nslow query 20 ms\nGC pause\n")
    code, out, _ = run(str(path), "--json", "--pattern", r"slow=slow query \d{4,} ms",
                       "--literal", "gc=GC pause")
    assert code == EXIT_OK
    matches = json.loads(out)["total"]["matches"]
    assert (matches["slow"], matches["gc"]) == (1, 1)


@pytest.mark.parametrize(("option", "message"), [
    ("--pattern=x=(", "x: invalid regex"),
    ("--pattern=noequals", "expected NAME=TEXT"),
    ("--literal=Bad=1", "pattern name 'Bad'"),
])
def test_bad_patterns_are_refused(tmp_path: Path, option: str, message: str) -> None:
    """A bad user pattern is an error naming it, before any file is read."""
    code, _, err = run(str(tmp_path / "whatever.log"), option)
    assert code == EXIT_UNREADABLE
    assert message in err


def test_long_lines_are_capped(tmp_path: Path) -> None:
    """--max-line-bytes caps matching and counts the long lines."""
    path = tmp_path / "m.log"
    path.write_bytes(b"x" * 5000 + b" emfile\nreason=emfile\n")
    code, out, _ = run(str(path), "--json", "--max-line-bytes", "1024")
    assert code == EXIT_OK
    total = json.loads(out)["total"]
    assert (total["lines"], total["long_lines"], total["matches"]["emfile"]) == (2, 1, 1)


def test_patterns_from_the_agent_config(tmp_path: Path) -> None:
    """Run through the CLI (--config present), [logs] patterns count as in the daemon."""
    config = tmp_path / "agent.toml"
    config.write_text('[logs.patterns.slow]\nregex = "slow query \\\\d{4,} ms"\n')
    path = tmp_path / "m.log"
    path.write_bytes(b"slow query 1200 ms\n")
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path)
    COMMAND.configure(parser)
    out, err = io.StringIO(), io.StringIO()
    code = scan_command.run(parser.parse_args(["--config", str(config), str(path), "--json"]),
                            out, err)
    assert (code, err.getvalue()) == (EXIT_OK, "")
    assert json.loads(out.getvalue())["total"]["matches"]["slow"] == 1
    config.write_text('[logs.patterns.slow]\nregex = "("\n')
    code = scan_command.run(parser.parse_args(["--config", str(config), str(path)]), out, err)
    assert code == EXIT_UNREADABLE
    assert "logs.patterns.slow.regex: invalid regex" in err.getvalue()
