"""`drain` / `undrain`: take the node out of load balancing before maintenance, and back.

Writing the marker is the easy half. The command then says what really happened: when an
agent runs with this config's state_dir (its presence file is fresh and its pid alive), it
waits for that agent to acknowledge the new state in its presence file; otherwise it says
plainly that no running agent was seen, so nobody believes the load balancer moved when
nothing answers it from this state_dir.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent import drain, presence
from mongooseim_agent.commands.base import Command, emit
from mongooseim_agent.config import ConfigError, load_config

CONFIRM_TIMEOUT = 3.0
POLL = 0.05


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the running agent said: `agent` None when none runs; `confirmed` once it applied."""

    agent: presence.Presence | None
    confirmed: bool
    absence: str = ""
    waited: float = 0.0


def await_ack(
    state_dir: Path,
    wanted: drain.DrainState | None,
    timeout: float = CONFIRM_TIMEOUT,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Confirmation:
    """Wait until the running agent reports `wanted` as the drain state it applies."""
    start = time.monotonic()
    deadline = start + timeout
    agent: presence.Presence | None = None
    while True:
        try:
            agent = presence.read(state_dir)
        except presence.PresenceError:
            agent = None
        if agent is None or not presence.running(agent, clock()):
            return Confirmation(None, False, presence.describe_absence(state_dir, agent, clock()))
        if agent.drain == wanted:
            return Confirmation(agent, True, waited=time.monotonic() - start)
        if time.monotonic() >= deadline:
            return Confirmation(agent, False)
        sleep(POLL)


def _state_dir(args: argparse.Namespace) -> Path | None:
    try:
        return load_config(args.config).agent.state_dir
    except ConfigError as exc:
        print(f"mongooseim-agent: config error: {exc}", file=sys.stderr)
        return None


def _fail(message: str) -> int:
    print(f"mongooseim-agent: {message}", file=sys.stderr)
    return 1


def _configure_drain(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reason", default="maintenance",
        help="why, shown on /node/ready, /, in check, the log and the agent's metrics",
    )


def _drain(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    if state_dir is None:
        return 2
    try:
        state = drain.drain(state_dir, args.reason, drain.who(), time.time())
    except drain.DrainError as exc:
        return _fail(f"not drained: {exc}")
    ack = await_ack(state_dir, state)
    where = drain.marker(state_dir)
    if ack.agent is None:
        emit(f"drain marker written ({where}), {state.describe(time.time())}; {ack.absence}: "
             "no agent serves /node/ready from it now; one started with this state_dir "
             "will answer 503\n")
        return 0
    if not ack.confirmed:
        return _fail(f"drain marker written ({where}), but the running agent (pid "
                     f"{ack.agent.pid}) did not confirm it within {CONFIRM_TIMEOUT:g}s: "
                     "check its log")
    emit(f"drained: the running agent (pid {ack.agent.pid}) confirmed in {ack.waited:.2f}s "
         f"that /node/ready now answers 503; {state.describe(time.time())}\n")
    return 0


def _undrain(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    if state_dir is None:
        return 2
    try:
        was = drain.read(state_dir)
        removed = drain.undrain(state_dir)
    except drain.DrainError as exc:
        return _fail(f"not undrained: {exc}")
    ack = await_ack(state_dir, None)
    before = f" (was {was.describe(time.time())})" if was is not None else ""
    if ack.agent is None:
        emit(("undrained" if removed else "was not drained") + f"{before}; {ack.absence}\n")
        return 0
    if not ack.confirmed:
        return _fail(f"drain marker removed, but the running agent (pid {ack.agent.pid}) "
                     f"did not confirm it within {CONFIRM_TIMEOUT:g}s: check its log")
    head = "undrained" if removed else "was not drained"
    emit(f"{head}{before}: the running agent (pid {ack.agent.pid}) confirmed in "
         f"{ack.waited:.2f}s that /node/ready follows the checks again\n")
    return 0


DRAIN = Command("drain", "take the node out of load balancing: /node/ready answers 503 "
                "until undrain", _configure_drain, _drain)
UNDRAIN = Command("undrain", "let /node/ready follow the checks again", lambda p: None,
                  _undrain)
