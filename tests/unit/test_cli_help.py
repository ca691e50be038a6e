"""The top-level help tells how the daemon is started: no COMMAND means run."""

from __future__ import annotations

import pytest

from mongooseim_agent.cli import main


def test_top_level_help_lists_the_run_options(capsys: pytest.CaptureFixture[str]) -> None:
    """`mongooseim-agent --help` names --web.listen-address, which the unit passes there."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "With no COMMAND the agent runs (`run`)" in out
    assert "  --web.listen-address ADDR" in out
    for command in ("run", "check", "drain", "undrain", "scan-logs"):
        assert command in out
