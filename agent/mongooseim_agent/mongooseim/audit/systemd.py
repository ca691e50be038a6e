"""systemd unit files and drop-ins, as systemd merges them, for one setting (LimitNOFILE=).

The unit file is the first found along the search path; drop-ins (`UNIT.d/*.conf`, prefix
`foo-.service.d/`, `service.d/`) come from every directory of the path, a same-named file
in an earlier directory hiding later ones, applied in file-name order. The last assignment
wins; an empty one resets to the default (DefaultLimitNOFILE= of system.conf).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# systemd's system unit search path, highest priority first (systemd.unit(5)); /lib last for
# Debian layouts whose /lib is not a link to /usr/lib.
UNIT_PATH: tuple[str, ...] = (
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
    "/lib/systemd/system",
)
# system.conf, then system.conf.d drop-ins (systemd-system.conf(5)).
MANAGER_CONF = "/etc/systemd/system.conf"
MANAGER_DROPIN_DIRS: tuple[str, ...] = (
    "/etc/systemd/system.conf.d",
    "/run/systemd/system.conf.d",
    "/usr/local/lib/systemd/system.conf.d",
    "/usr/lib/systemd/system.conf.d",
    "/lib/systemd/system.conf.d",
)
# DefaultLimitNOFILE= when nothing sets it (systemd 240 and later).
BUILTIN_DEFAULT_NOFILE = (1024, 524288)


@dataclass(frozen=True, slots=True)
class Assignment:
    section: str
    key: str
    value: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class UnitProblem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def parse_unit(text: str, path: str) -> tuple[list[Assignment], list[UnitProblem]]:
    """An INI-style unit file: `[Section]`, `Key=Value`, `#`/`;` comments, `\\` continuation."""
    out: list[Assignment] = []
    problems: list[UnitProblem] = []
    section = ""
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if pending is not None:
            start, head = pending
            stripped = raw.strip()
            if stripped.startswith(("#", ";")):
                continue
            line, start_line = head + " " + stripped, start
        else:
            line, start_line = raw.strip(), number
            if not line or line.startswith(("#", ";")):
                continue
        if line.endswith("\\"):
            pending = (start_line, line[:-1].rstrip())
            continue
        pending = None
        if line.startswith("["):
            if not line.endswith("]"):
                problems.append(UnitProblem(path, start_line, "section header without ']'"))
                continue
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if not sep:
            problems.append(UnitProblem(path, start_line, "line is not Key=Value"))
            continue
        out.append(Assignment(section, key.strip(), value.strip(), path, start_line))
    if pending is not None:
        start, head = pending
        key, sep, value = head.partition("=")
        if sep:
            out.append(Assignment(section, key.strip(), value.strip(), path, start))
    return out, problems


def last_setting(assignments: Iterable[Assignment], section: str, key: str) -> Assignment | None:
    """The assignment in force: the last; None when none, or the last is an empty reset."""
    found: Assignment | None = None
    for item in assignments:
        if item.section == section and item.key == key:
            found = item if item.value else None
    return found


@dataclass(frozen=True, slots=True)
class RLimit:
    """soft:hard; None means infinity (the kernel caps nofile at fs.nr_open)."""

    soft: int | None
    hard: int | None

    def __str__(self) -> str:
        def show(value: int | None) -> str:
            return "infinity" if value is None else str(value)

        if self.soft == self.hard:
            return show(self.soft)
        return f"{show(self.soft)}:{show(self.hard)}"


def parse_rlimit(value: str) -> RLimit:
    """`N`, `soft:hard` or `infinity`, as LimitNOFILE= takes them; ValueError otherwise."""

    def one(text: str) -> int | None:
        text = text.strip()
        if text == "infinity":
            return None
        if not text.isdigit():
            raise ValueError(f"{text!r} is not a number or 'infinity'")
        return int(text)

    soft_text, sep, hard_text = value.partition(":")
    soft = one(soft_text)
    hard = one(hard_text) if sep else soft
    if soft is not None and hard is not None and soft > hard:
        raise ValueError(f"soft {soft} exceeds hard {hard}")
    return RLimit(soft, hard)


def dropin_dir_names(unit: str) -> list[str]:
    """`UNIT.d` plus the prefix and type-wide drop-in directories systemd reads for it."""
    stem, dot, kind = unit.rpartition(".")
    if not dot:
        return [f"{unit}.d"]
    names = [f"{unit}.d"]
    if "@" in stem:
        template = stem.split("@", 1)[0] + "@"
        names.append(f"{template}.{kind}.d")
        stem = stem.split("@", 1)[0]
    parts = stem.split("-")
    for cut in range(len(parts) - 1, 0, -1):
        names.append("-".join(parts[:cut]) + f"-.{kind}.d")
    names.append(f"{kind}.d")
    return names


def order_dropins(found: Sequence[tuple[str, str]]) -> list[str]:
    """`found` is (directory, file name) in search order: the first of each name wins, and
    the survivors apply in file-name order."""
    chosen: dict[str, str] = {}
    for directory, name in found:
        if name.endswith(".conf") and name not in chosen:
            chosen[name] = f"{directory}/{name}"
    return [chosen[name] for name in sorted(chosen)]


def service_user(assignments: Iterable[Assignment]) -> str | None:
    found = last_setting(assignments, "Service", "User")
    return found.value if found is not None else None


def unit_from_cgroup(text: str) -> str | None:
    """The system service a process runs in, from /proc/PID/cgroup; None outside one.

    A process in a user's session (`session-3.scope`, `user@1000.service/...`) is not in a
    system service: it was started from a login shell.
    """
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy != "0" and controllers != "name=systemd":
            continue
        components = [c for c in path.split("/") if c]
        if any(c.startswith("user@") or c.endswith(".scope") for c in components):
            return None
        services = [c for c in components if c.endswith(".service")]
        if services:
            return services[-1]
    return None
