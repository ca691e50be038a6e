"""`mongooseim-agent run`: the daemon (the default command)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import structlog

from mongooseim_agent import __version__
from mongooseim_agent.commands.base import Command
from mongooseim_agent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from mongooseim_agent.daemon import Daemon
from mongooseim_agent.http import ListenAddress, parse_listen_address


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


COMMAND = Command("run", "run the agent (the default command)", _configure_run, _run)
