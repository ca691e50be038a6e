"""Command line: `mongooseim-agent [run|check|...]`; no command means `run`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from mongooseim_agent import __version__, check, logsetup
from mongooseim_agent.command import Command
from mongooseim_agent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from mongooseim_agent.daemon import Daemon
from mongooseim_agent.drain_command import DRAIN, UNDRAIN
from mongooseim_agent.http import ListenAddress, parse_listen_address
from mongooseim_agent.logwatch import scan_command


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        action="append",
        metavar="ADDR",
        help="address to serve /metrics on, host:port or :port; repeatable (default :9925)",
    )


def _run(args: argparse.Namespace) -> int:
    log = structlog.get_logger("cli")
    try:
        listen: list[ListenAddress] = [
            parse_listen_address(a) for a in (args.listen or [":9925"])
        ]
    except ValueError as exc:
        print(f"mongooseim-agent: {exc}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mongooseim-agent: config error: {exc}", file=sys.stderr)
        return 2
    log.info("starting", version=__version__, config=str(args.config or DEFAULT_CONFIG_PATH))
    daemon = Daemon(config, args.config, listen)
    try:
        asyncio.run(daemon.run())
    except OSError as exc:
        log.error("cannot serve", error=str(exc))
        return 1
    return 0


RUN = Command("run", "run the agent (the default command)", _configure_run, _run)


def commands() -> tuple[Command, ...]:
    return (RUN, check.COMMAND, scan_command.COMMAND, DRAIN, UNDRAIN)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mongooseim-agent",
        description="Monitoring agent for MongooseIM hosts.",
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
