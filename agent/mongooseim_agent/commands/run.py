"""`mongooseim-agent run`: the daemon (the default command)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import structlog

from mongooseim_agent import __version__
from mongooseim_agent.commands.base import Command
from mongooseim_agent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from mongooseim_agent.daemon import Daemon
from mongooseim_agent.http import ListenAddress, parse_listen_address
from mongooseim_agent.httpguard import raise_nofile_limit
from mongooseim_agent.sdnotify import Notifier, watchdog_seconds
from mongooseim_agent.webconfig import WebConfigError, WebConfigSource


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        action="append",
        metavar="ADDR",
        help="address to serve /metrics on, host:port or :port; repeatable (default :9925)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="FILE",
        help="Prometheus exporter-toolkit web config (TLS, basic auth, headers); re-read "
        "when it or a certificate it names changes",
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
    web_config = WebConfigSource(args.web_config_file)
    try:
        web_config.load()
    except WebConfigError as exc:
        print(f"mongooseim-agent: web config error: {exc}", file=sys.stderr)
        return 2
    before, after = raise_nofile_limit()
    log.info(
        "starting", version=__version__, config=str(args.config or DEFAULT_CONFIG_PATH),
        nofile=after, nofile_raised_from=before if before != after else None,
    )
    daemon = Daemon(
        config, args.config, listen, web_config=web_config,
        notifier=Notifier.from_env(), watchdog=watchdog_seconds(os.environ, os.getpid()),
    )
    try:
        asyncio.run(daemon.run())
    except OSError as exc:
        log.error("cannot serve", error=str(exc))
        return 1
    return 0


COMMAND = Command("run", "run the agent (the default command)", _configure_run, _run)
