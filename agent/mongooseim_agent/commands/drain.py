"""`drain` / `undrain`: take the node out of load balancing before maintenance, and back."""

from __future__ import annotations

import argparse
from pathlib import Path

from mongooseim_agent import drain
from mongooseim_agent.commands.base import Command
from mongooseim_agent.config import ConfigError, load_config


def _configure_drain(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", default="maintenance", help="shown in /node/ready's reasons")


def _state_dir(args: argparse.Namespace) -> Path | None:
    try:
        return load_config(args.config).agent.state_dir
    except ConfigError as exc:
        print(f"mongooseim-agent: config error: {exc}")
        return None


def _drain(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    if state_dir is None:
        return 2
    drain.drain(state_dir, args.reason)
    print(f"drained: /node/ready now answers 503 ({drain.marker(state_dir)})")
    return 0


def _undrain(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    if state_dir is None:
        return 2
    if drain.undrain(state_dir):
        print("undrained: /node/ready follows the checks again")
    else:
        print("was not drained")
    return 0


DRAIN = Command("drain", "make /node/ready answer 503 until undrain", _configure_drain, _drain)
UNDRAIN = Command("undrain", "let /node/ready follow the checks again", lambda p: None, _undrain)
