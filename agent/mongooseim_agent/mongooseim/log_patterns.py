"""Named log patterns: how MongooseIM's fault signatures look in its logs, plus user ones.

A line counts for a pattern when it contains one of the pattern's literals and, when the
pattern has a regex, the regex matches the line too (the literal is then a cheap prefilter).
A pattern without literals is a regex run over every line. Matching is on bytes: log files
may hold invalid UTF-8, and a byte literal never needs decoding.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mongooseim_agent.snapshot import Status

# Label values and config keys: short, lower case, Prometheus- and TOML-friendly.
PATTERN_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class LogPattern:
    name: str
    literals: tuple[bytes, ...] = ()
    regex: re.Pattern[bytes] | None = None
    # None: counted only; otherwise the check's status while the pattern was seen recently.
    severity: Status | None = None
    meaning: str = ""
    hint: str = ""

    def matches(self, line: bytes) -> bool:
        """Whether one line (without its newline) counts; the scanner's reference semantics."""
        if self.literals and not any(lit in line for lit in self.literals):
            return False
        return self.regex is None or self.regex.search(line) is not None


# name, literals, regex, severity, meaning, hint: plain data, compiled by default_patterns().
_DEFAULTS: tuple[tuple[str, tuple[str, ...], str | None, Status, str, str], ...] = (
    (
        "emfile",
        ("emfile", "out of file descriptors"),
        None,
        Status.CRITICAL,
        "the node ran out of file descriptors (emfile): new connections are refused",
        "raise LimitNOFILE= (systemd) or nofile (limits.conf) for the MongooseIM user to "
        "the guide's 1000000 and compare mongooseim_process_open_fds with max_fds",
    ),
    (
        "enfile",
        ("enfile",),
        None,
        Status.CRITICAL,
        "the host's file table is full (enfile): every process is refused new files",
        "raise fs.file-max (sysctl) and look for the process holding the most files",
    ),
    (
        "system_limit",
        ("system_limit",),
        None,
        Status.CRITICAL,
        "an Erlang VM limit was hit (system_limit): ports, processes or atoms",
        "compare mongooseim_vm_ports with mongooseim_vm_port_limit; raise "
        "ERL_MAX_PORTS / +Q or +P in vm.args and restart the node",
    ),
    (
        "partition",
        ("inconsistent_database",),
        None,
        Status.CRITICAL,
        "Mnesia reported a network partition (inconsistent_database); it will not heal by "
        "itself",
        "pick the side to keep, restart the nodes of the other side so they rejoin "
        "(runbook: docs/runbooks.md#mongooseimclusterpartitioned)",
    ),
    (
        "nodedown",
        ("nodedown", "net_tick_timeout"),
        None,
        Status.WARNING,
        "a cluster member stopped answering (nodedown / net_tick_timeout)",
        "check the peer node is running and the network between the nodes (epmd 4369 and "
        "the distribution port range)",
    ),
    (
        "cookie_rejected",
        ("Connection attempt from node",),
        r"Connection attempt from node \S+ rejected",
        Status.WARNING,
        "a node tried to join with a different Erlang cookie and was rejected",
        "make -setcookie (vm.args) or ~/.erlang.cookie identical on every cluster member",
    ),
    (
        "eaddrinuse",
        ("eaddrinuse",),
        None,
        Status.WARNING,
        "a listener could not bind its port (eaddrinuse)",
        "find what else holds the port (ss -ltnp) and free it or move the listener",
    ),
)


def default_patterns() -> tuple[LogPattern, ...]:
    """The built-in catalogue of MongooseIM fault signatures."""
    return tuple(
        LogPattern(
            name=name,
            literals=tuple(lit.encode() for lit in literals),
            regex=re.compile(regex.encode()) if regex is not None else None,
            severity=severity,
            meaning=meaning,
            hint=hint,
        )
        for name, literals, regex, severity, meaning, hint in _DEFAULTS
    )


def default_names() -> frozenset[str]:
    return frozenset(entry[0] for entry in _DEFAULTS)


def check_pattern_name(name: str) -> str:
    if not PATTERN_NAME_RE.match(name):
        raise ValueError(
            f"pattern name {name!r}: expected lower case letters, digits and '_', "
            "starting with a letter"
        )
    return name


def compile_user_regex(text: str) -> re.Pattern[bytes]:
    """A user's regex, matched against each line's bytes; ValueError says what is wrong.

    MULTILINE makes ^ and $ line anchors: the scanner runs a regex over a whole read and
    then confirms each hit against its own line.
    """
    try:
        compiled = re.compile(text.encode(), re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None
    if compiled.search(b"") is not None:
        raise ValueError("regex matches an empty line, so it would count every line")
    return compiled


def check_user_literal(text: str) -> bytes:
    if not text:
        raise ValueError("literal must not be empty")
    if "\n" in text:
        raise ValueError("literal must not contain a newline: lines are matched one by one")
    return text.encode()


def user_pattern(name: str, literal: str | None = None, regex: str | None = None) -> LogPattern:
    """A pattern from config or the command line: exactly one of literal or regex."""
    check_pattern_name(name)
    if (literal is None) == (regex is None):
        raise ValueError(f"pattern {name!r}: set exactly one of 'literal' or 'regex'")
    if literal is not None:
        return LogPattern(name=name, literals=(check_user_literal(literal),))
    return LogPattern(name=name, regex=compile_user_regex(regex or ""))


def catalogue(user: Iterable[LogPattern] = ()) -> tuple[LogPattern, ...]:
    """Defaults first, then user patterns by name.

    A user pattern named like a default replaces how it matches but keeps the default's
    severity and advice, so redefining `emfile` for a custom log format still pages.
    """
    chosen: dict[str, LogPattern] = {p.name: p for p in default_patterns()}
    extra: Mapping[str, LogPattern] = {p.name: p for p in user}
    for name in sorted(extra):
        default = chosen.get(name)
        pattern = extra[name]
        if default is not None:
            pattern = dataclasses.replace(
                pattern, severity=default.severity, meaning=default.meaning, hint=default.hint
            )
        chosen[name] = pattern
    return tuple(chosen.values())
