"""Pure parsers for what `mongooseimctl` prints about mnesia membership.

Three shapes, by MongooseIM version:
- up to 6.1, `mongooseimctl mnesia info` prints OTP's `mnesia:info()`; the lines that matter:
  `running db nodes   = [mongooseim@node1,'mongooseim@ip-10-0-0-3']` and
  `stopped db nodes   = [] ` (atoms quoted when needed, a trailing space, any spacing, and a
  long list wrapped over several lines by `~p`);
- 6.x: `mongooseimctl mnesia systemInfo --keys '[...]'` prints the GraphQL answer as JSON
  (exit 1 with an `errors` member);
- 6.2+: `mnesia info` is gone: `Unknown command 'info'`, exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent.mongooseim.membership import (
    Membership,
    MembershipError,
    MnesiaView,
    Source,
    member_names,
)

SYSTEM_INFO_KEYS = ("db_nodes", "running_db_nodes", "is_running")
# What the ctl prints is read up to this size; mnesia:info() of a big node is a few KiB.
MAX_OUTPUT = 1024 * 1024

_UNKNOWN = re.compile(r"Unknown command|Unknown option|command not found|Usage:", re.IGNORECASE)
_NODEDOWN = re.compile(r"Failed RPC connection to the node (\S+): (\S+)")
_LIST_START = {
    "running": re.compile(r"^[ \t]*running db nodes[ \t]*=[ \t]*", re.MULTILINE),
    "stopped": re.compile(r"^[ \t]*stopped db nodes[ \t]*=[ \t]*", re.MULTILINE),
}
_PLAIN_ATOM = re.compile(r"[a-z][A-Za-z0-9_@.]*")


class UnknownCommand(MembershipError):
    """This mongooseimctl does not have the command (another MongooseIM version)."""


class NodeDown(MembershipError):
    """mongooseimctl could not reach the node."""


@dataclass(frozen=True, slots=True)
class CtlResult:
    returncode: int
    output: str


def check_common(result: CtlResult, command: str) -> None:
    """Raise for the answers every command can give: node unreachable, unknown command."""
    down = _NODEDOWN.search(result.output)
    if down is not None or result.returncode == 3:
        reason = down.group(2) if down is not None else "unreachable"
        raise NodeDown(f"mongooseimctl {command}: the node is not reachable ({reason})")
    if _UNKNOWN.search(result.output[:4096]) and result.returncode != 0:
        raise UnknownCommand(f"mongooseimctl {command}: not a command of this version")


def parse_mnesia_info(text: str) -> MnesiaView:
    """`mnesia:info()` text into membership; MembershipError when the lines are not there."""
    if _UNKNOWN.search(text[:4096]):
        raise UnknownCommand("mongooseimctl mnesia info: not a command of this version")
    lists = {which: _atom_list_after(text, which) for which in _LIST_START}
    running = member_names(lists["running"], "running db nodes")
    stopped = member_names(lists["stopped"], "stopped db nodes")
    # db_nodes is what mnesia knows; mnesia:info() prints it as the two lists.
    db_nodes = tuple(sorted(set(running) | set(stopped)))
    return MnesiaView(db_nodes, running, "yes" if running else "no")


def _atom_list_after(text: str, which: str) -> list[str]:
    found = _LIST_START[which].search(text)
    if found is None:
        raise MembershipError(f"mnesia info: no '{which} db nodes' line")
    return parse_atom_list(text, found.end(), f"{which} db nodes")


def parse_atom_list(text: str, start: int, what: str) -> list[str]:
    """An Erlang list of atoms as `~p` prints it, starting at text[start] == '['.

    Whitespace (newlines of a wrapped list included) is allowed between items; quoted atoms
    may hold escaped quotes. Anything else is an error naming `what`.
    """
    pos = start
    end = len(text)
    if pos >= end or text[pos] != "[":
        raise MembershipError(f"{what}: expected a list, got {text[pos:pos + 40]!r}")
    pos += 1
    items: list[str] = []
    expect_item = True
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            raise MembershipError(f"{what}: the list is cut off")
        char = text[pos]
        if char == "]" and (not items or not expect_item):
            return items
        if not expect_item:
            if char != ",":
                raise MembershipError(f"{what}: unexpected {text[pos:pos + 20]!r} in the list")
            pos += 1
            expect_item = True
            continue
        if char == "'":
            atom, pos = _quoted_atom(text, pos + 1, what)
        else:
            plain = _PLAIN_ATOM.match(text, pos)
            if plain is None:
                raise MembershipError(f"{what}: unexpected {text[pos:pos + 20]!r} in the list")
            atom, pos = plain.group(), plain.end()
        items.append(atom)
        if len(items) > 4096:
            raise MembershipError(f"{what}: too many items")
        expect_item = False


def _quoted_atom(text: str, pos: int, what: str) -> tuple[str, int]:
    out: list[str] = []
    end = len(text)
    while pos < end:
        char = text[pos]
        if char == "\\" and pos + 1 < end:
            out.append(text[pos + 1])
            pos += 2
            continue
        if char == "'":
            return "".join(out), pos + 1
        if char == "\n" or len(out) > 255:
            break
        out.append(char)
        pos += 1
    raise MembershipError(f"{what}: an unterminated quoted atom")


def parse_system_info_json(text: str) -> MnesiaView:
    """The 6.x CLI's `mnesia systemInfo` JSON into membership."""
    document = load_json(text, "mnesia systemInfo")
    if not isinstance(document, dict):
        raise MembershipError("mnesia systemInfo: the answer is not a JSON object")
    errors = document.get("errors")
    if errors:
        raise MembershipError(f"mnesia systemInfo: {describe_errors(errors)}")
    try:
        items = document["data"]["mnesia"]["systemInfo"]
    except (KeyError, TypeError):
        raise MembershipError("mnesia systemInfo: no data.mnesia.systemInfo in the answer") \
            from None
    return mnesia_from_items(items, "mnesia systemInfo")


def mnesia_from_items(items: object, what: str) -> MnesiaView:
    """`[{"key": K, "result": R}, ...]` (GraphQL and the 6.x CLI alike) into membership."""
    if not isinstance(items, list):
        raise MembershipError(f"{what}: expected a list of key/result items")
    values: dict[str, object] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            values[item["key"]] = item.get("result")
    missing = [key for key in SYSTEM_INFO_KEYS if key not in values]
    if missing:
        raise MembershipError(f"{what}: no {', '.join(missing)} in the answer")
    db_nodes, running = values["db_nodes"], values["running_db_nodes"]
    if not isinstance(db_nodes, list) or not isinstance(running, list):
        raise MembershipError(f"{what}: db_nodes and running_db_nodes must be lists")
    is_running = values["is_running"]
    if not isinstance(is_running, str) or is_running not in {"yes", "no", "starting",
                                                                "stopping"}:
        raise MembershipError(f"{what}: is_running is {str(is_running)[:40]!r}")
    return MnesiaView(member_names(db_nodes, f"{what} db_nodes"),
                      member_names(running, f"{what} running_db_nodes"), is_running)


def load_json(text: str, what: str) -> object:
    if len(text) > MAX_OUTPUT:
        raise MembershipError(f"{what}: the answer is over {MAX_OUTPUT} bytes")
    start = text.find("{")
    if start < 0:
        raise MembershipError(f"{what}: no JSON in the answer: {text[:80]!r}")
    try:
        return json.loads(text[start:])
    except (ValueError, RecursionError) as exc:
        raise MembershipError(f"{what}: the answer is not valid JSON ({type(exc).__name__})") \
            from None


def describe_errors(errors: object) -> str:
    """GraphQL `errors` as one short line: the messages, at most three."""
    if not isinstance(errors, list):
        return "errors in the answer"
    messages = [
        str(error.get("message"))[:120] for error in errors[:3]
        if isinstance(error, dict) and error.get("message") is not None
    ]
    return "; ".join(messages) or "errors in the answer"


# run(argv, time limit) -> CtlResult: injected; the default runs the command in its own
# process group, kills the group at the deadline and reads at most MAX_OUTPUT bytes.
RunCtl = Callable[[Sequence[str], float], Awaitable[CtlResult]]


class CtlTimeout(MembershipError):
    """mongooseimctl did not finish in time (it was killed)."""


async def run_subprocess(argv: Sequence[str], time_limit: float) -> CtlResult:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise MembershipError(f"cannot run {argv[0]}: {exc.strerror}") from None
    if proc.stdout is None:
        raise MembershipError(f"{argv[0]}: no output pipe")
    try:
        async with asyncio.timeout(time_limit):
            output = await proc.stdout.read(MAX_OUTPUT)
            # Whatever it prints beyond the cap is drained unread so it cannot block.
            while await proc.stdout.read(65536):
                pass
            code = await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        # What is left in the pipe must be read to its end, or wait() never returns (the
        # transport reports the exit only once its pipes are closed).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await proc.communicate()
        raise CtlTimeout(f"{argv[0]} did not finish in {time_limit:g}s (killed)") from None
    return CtlResult(code, output.decode("utf-8", errors="replace"))


class CtlClient:
    """Membership through mongooseimctl: `mnesia info` (up to 6.1), else the 6.x
    `mnesia systemInfo`; the form that worked is remembered, so a run costs one VM start."""

    INFO = ("mnesia", "info")
    SYSTEM_INFO = ("mnesia", "systemInfo", "--keys", json.dumps(list(SYSTEM_INFO_KEYS)))

    def __init__(self, path: Callable[[], Path | None], *, run: RunCtl = run_subprocess) -> None:
        self._path = path
        self._run = run
        self._forms: list[tuple[str, ...]] = [self.INFO, self.SYSTEM_INFO]

    def available(self) -> bool:
        path = self._path()
        return path is not None and os.access(path, os.X_OK)

    async def membership(self, time_limit: float) -> Membership:
        path = self._path()
        if path is None:
            raise MembershipError("no mongooseimctl: set [cluster] ctl_path")
        unknown: list[str] = []
        for form in list(self._forms):
            command = " ".join(form[:2])
            result = await self._run([str(path), *form], time_limit)
            try:
                check_common(result, command)
                view = (parse_mnesia_info(result.output) if form == self.INFO
                        else parse_system_info_json(result.output))
            except UnknownCommand as exc:
                unknown.append(str(exc))
                continue
            if self._forms[0] != form:
                self._forms = [form, *(f for f in self._forms if f != form)]
            return Membership(Source.CTL, view)
        raise UnknownCommand("; ".join(unknown))
