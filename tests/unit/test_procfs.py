"""Pure /proc parsers on committed fixture text, including malformed input."""

import pytest

from mongooseim_agent import procfs
from tests.support.fakeproc import fixture


def test_nofile_read_from_real_limits_text() -> None:
    """The 'Max open files' row gives both soft and hard limits."""
    assert procfs.parse_nofile(fixture("limits_linux6.txt")) == procfs.Limit(20000, 20000)


def test_unlimited_and_unitless_rows() -> None:
    """'unlimited' is None; a row without a unit column still parses."""
    limits = procfs.parse_limits(fixture("limits_unlimited_nofile.txt"))
    assert limits["Max open files"] == procfs.Limit(None, None)
    assert limits["Max nice priority"] == procfs.Limit(0, 0)
    assert limits["Max realtime timeout"] == procfs.Limit(None, None)


def test_missing_nofile_row_is_an_error() -> None:
    """Limits text without the nofile row raises ValueError, not KeyError."""
    with pytest.raises(ValueError, match="Max open files"):
        procfs.parse_nofile("Limit Soft Hard Units\n")


def test_file_nr() -> None:
    """file-nr has allocated, free and max."""
    assert procfs.parse_file_nr("469\t0\t2466170\n") == procfs.FileNr(469, 0, 2466170)
    with pytest.raises(ValueError, match="3 fields"):
        procfs.parse_file_nr("1 2")


def test_start_ticks_with_parenthesis_in_command_name() -> None:
    """Field 22 is found even when the command name holds spaces and ')'."""
    assert procfs.parse_stat_start_ticks(fixture("stat_beam.txt")) == 987654
    assert procfs.parse_stat_start_ticks(fixture("stat_paren_in_comm.txt")) == 5555
    with pytest.raises(ValueError):
        procfs.parse_stat_start_ticks("12 (x) S 1")


def test_environ_and_cmdline_keep_undecodable_bytes() -> None:
    """NUL-separated files parse; invalid UTF-8 survives as surrogates instead of failing."""
    env = procfs.parse_environ(b"A=1\0ERL_MAX_PORTS=250000\0NOEQ\0B=\xff\0")
    assert env["ERL_MAX_PORTS"] == "250000"
    assert "NOEQ" not in env
    assert env["B"] == "\udcff"
