"""Command line: `mongooseim-agent [run|check|...]`; no command means `run`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mongooseim_agent import __version__, logsetup
from mongooseim_agent.commands import audit, check, drain, run, scan_logs
from mongooseim_agent.commands.base import Command
from mongooseim_agent.config import DEFAULT_CONFIG_PATH


def commands() -> tuple[Command, ...]:
    return (run.COMMAND, check.COMMAND, scan_logs.COMMAND, drain.DRAIN, drain.UNDRAIN,
            audit.COMMAND)


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    # On subcommands the defaults are suppressed so a value given before the command wins.
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    parser.add_argument(
        "--config",
        type=Path,
        default=default(None),
        help=f"TOML config file (default {DEFAULT_CONFIG_PATH}, optional)",
    )
    parser.add_argument(
        "--log.level", dest="log_level", choices=logsetup.LEVELS, default=default("info")
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=("json", "console"),
        default=default(None),
        help="json (default when stderr is not a terminal) or console",
    )


def _run_options() -> str:
    """`run`'s own options, for the top-level help: no COMMAND means run, so
    `mongooseim-agent --web.listen-address :9925` is how the unit starts it."""
    probe = argparse.ArgumentParser(prog="mongooseim-agent", add_help=False)
    run.COMMAND.configure(probe)
    formatter = probe._get_formatter()
    for group in probe._action_groups:
        formatter.add_arguments(group._group_actions)
    return "".join(f"  {line}" if line.strip() else line
                   for line in formatter.format_help().splitlines(keepends=True))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mongooseim-agent",
        description="Monitoring agent for MongooseIM hosts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="With no COMMAND the agent runs (`run`), taking these options too:\n"
        + _run_options()
        + "\nEach COMMAND has its own --help, e.g. mongooseim-agent check --help.",
    )
    parser.add_argument("--version", action="version", version=f"mongooseim-agent {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands():
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        _common(child, top=False)
        command.configure(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    names = {c.name for c in commands()}
    if not any(token in names for token in raw) and not {"-h", "--help", "--version"} & set(raw):
        raw.insert(0, "run")
    args = parser.parse_args(raw)
    logsetup.configure(args.log_level, args.log_format)
    chosen = next(c for c in commands() if c.name == args.command)
    return chosen.run(args)
