"""Command line: `mongooseim-agent [run|check|...]`; no command means `run`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent import __version__, logsetup
from mongooseim_agent.commands.base import Command

# Where the default config lives; config.py (and its validation models) is imported only by
# the command that reads it. test_cli_startup checks the two stay equal.
DEFAULT_CONFIG_PATH = Path("/etc/mongooseim-agent/agent.toml")


@dataclass(frozen=True, slots=True)
class Listed:
    """A command by name: its module is imported only when it is chosen, so `audit` or
    `check` do not pay for the daemon's imports (aiohttp ...). The help is repeated here for
    `--help`; test_cli_startup checks it equals the command's own."""

    name: str
    module: str
    attribute: str
    help: str

    def load(self) -> Command:
        command: Command = getattr(
            importlib.import_module(f"mongooseim_agent.commands.{self.module}"), self.attribute)
        return command


LISTED = (
    Listed("run", "run", "COMMAND", "run the agent (the default command)"),
    Listed("check", "check", "COMMAND",
           "run every check once; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios)"),
    Listed("scan-logs", "scan_logs", "COMMAND",
           "count the fault patterns in log files (plain or compressed), once"),
    Listed("drain", "drain", "DRAIN",
           "take the node out of load balancing: /node/ready answers 503 until undrain"),
    Listed("undrain", "drain", "UNDRAIN", "let /node/ready follow the checks again"),
    Listed("audit", "audit", "COMMAND",
           "check this host against the operations guide (nofile and where it comes from, "
           "ERL_MAX_PORTS, node name, port range, epmd, cookie, kernel limits, cluster); "
           "exit 0 OK, 1 WARNING, 2 CRITICAL"),
)


def commands() -> tuple[Command, ...]:
    """Every command, imported (what tests and docs enumerate; main() imports one)."""
    return tuple(listed.load() for listed in LISTED)


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
    LISTED[0].load().configure(probe)
    formatter = probe._get_formatter()
    for group in probe._action_groups:
        formatter.add_arguments(group._group_actions)
    return "".join(f"  {line}" if line.strip() else line
                   for line in formatter.format_help().splitlines(keepends=True))


def build_parser(
    chosen: Command | None = None, *, full_help: bool = True
) -> argparse.ArgumentParser:
    """Every command is listed. With `full_help` every command is imported and given its
    options, and the top-level help shows run's too; otherwise only `chosen` is."""
    epilog = ("With no COMMAND the agent runs (`run`), taking these options too:\n"
              + _run_options()
              + "\nEach COMMAND has its own --help, e.g. mongooseim-agent check --help."
              ) if full_help else None
    parser = argparse.ArgumentParser(
        prog="mongooseim-agent",
        description="Monitoring agent for MongooseIM hosts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
    )
    parser.add_argument("--version", action="version", version=f"mongooseim-agent {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for listed in LISTED:
        child = sub.add_parser(listed.name, help=listed.help, description=listed.help)
        _common(child, top=False)
        if full_help:
            listed.load().configure(child)
        elif chosen is not None and listed.name == chosen.name:
            chosen.configure(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    listed = {entry.name: entry for entry in LISTED}
    name = next((token for token in raw if token in listed), None)
    if name is None and {"-h", "--help", "--version"} & set(raw):
        # Prints the help (every command imported, for their options) or the version
        # (nothing imported), and exits.
        build_parser(full_help=not {"-h", "--help"}.isdisjoint(raw)).parse_args(raw)
    if name is None:
        name = "run"
        raw.insert(0, name)
    chosen = listed[name].load()
    args = build_parser(chosen, full_help=False).parse_args(raw)
    logsetup.configure(args.log_level, args.log_format)
    return chosen.run(args)
