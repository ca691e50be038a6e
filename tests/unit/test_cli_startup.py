"""The CLI imports only the chosen command: `audit` and `check` do not pay for the daemon."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mongooseim_agent import cli, config


def test_listed_commands_match_their_modules() -> None:
    """cli.py lists each command by name with its help, for --help without importing it;
    the listing must say what the command itself says."""
    listed = [(entry.name, entry.help) for entry in cli.LISTED]
    assert listed == [(command.name, command.help) for command in cli.commands()]
    assert cli.DEFAULT_CONFIG_PATH == config.DEFAULT_CONFIG_PATH


def _modules_after(argv: list[str]) -> set[str]:
    """The modules loaded once main(argv) returned or exited, in a fresh interpreter."""
    code = (
        "import sys\n"
        "from mongooseim_agent.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stdout.write('\\n' + ' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    return set(done.stdout.splitlines()[-1].split())


@pytest.mark.parametrize(
    ("argv", "absent"),
    [
        (["--version"], {"structlog", "pydantic", "mongooseim_agent.config", "asyncio"}),
        (["check", "--help"], {"aiohttp", "mongooseim_agent.daemon",
                               "mongooseim_agent.commands.audit"}),
        (["audit", "--help"], {"aiohttp", "mongooseim_agent.daemon",
                               "mongooseim_agent.commands.check"}),
    ],
)
def test_a_command_imports_only_what_it_uses(argv: list[str], absent: set[str]) -> None:
    loaded = _modules_after(argv)
    assert "mongooseim_agent.cli" in loaded
    assert not absent & loaded, sorted(absent & loaded)


def test_top_level_help_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for entry in cli.LISTED:
        assert f"    {entry.name}" in out


def test_a_command_name_chooses_and_parses_only_that_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["scan-logs", "--help"])
    assert exit_info.value.code == 0
    assert "--max-line-bytes" in capsys.readouterr().out
