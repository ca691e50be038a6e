"""Reading the host's configuration files under a root (`/`, or a mounted image).

Every read reports a missing or unreadable file as data (a problem text naming the path and
the reason), never as an exception: an audit of a half-readable host still reports. Symbolic
links are followed inside the root, so an image's absolute links stay in the image.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mongooseim_agent.mongooseim.audit import limits, pam, sysctl, systemd
from mongooseim_agent.mongooseim.audit.accounts import (
    Group,
    User,
    groups_of,
    parse_group,
    parse_passwd,
)
from mongooseim_agent.mongooseim.audit.checks import FileFacts, NofileSource, PamStatus
from mongooseim_agent.mongooseim.vmargs import VmArgs, parse_vm_args_file

MAX_FILE_BYTES = 1024 * 1024
MAX_LINK_HOPS = 40
RELEASE_ROOTS = ("/usr/lib/mongooseim", "/opt/mongooseim", "/usr/local/lib/mongooseim")


class Unreadable(Exception):
    """str() names the path and the reason."""


class HostFiles:
    """The files of one root. Blocking IO: call off the event loop."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root

    def real(self, path: str) -> Path:
        """`path` (absolute, as seen inside the root) as a host path, links resolved inside."""
        parts = [p for p in path.split("/") if p]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            if part == ".":
                continue
            candidate = self.root.joinpath(*resolved, part)
            if candidate.is_symlink():
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise Unreadable(f"{path}: too many levels of symbolic links")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p] + parts
                continue
            resolved.append(part)
        return self.root.joinpath(*resolved)

    def link_target(self, path: str) -> str | None:
        try:
            return os.readlink(self.root / path.lstrip("/"))
        except OSError:
            return None

    def read(self, path: str) -> str | None:
        """The text of `path`; None when it does not exist; Unreadable otherwise."""
        try:
            with self.real(path).open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise Unreadable(f"{path}: {exc.strerror or type(exc).__name__}") from None
        if len(data) > MAX_FILE_BYTES:
            raise Unreadable(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        return data.decode("utf-8", "replace")

    def listdir(self, path: str) -> list[str]:
        """Names in a directory; [] when it does not exist; Unreadable otherwise."""
        try:
            return sorted(os.listdir(self.real(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise Unreadable(f"{path}: {exc.strerror or type(exc).__name__}") from None

    def exists(self, path: str) -> bool:
        try:
            return self.real(path).exists()
        except (OSError, Unreadable):
            return False

    def stat(self, path: str) -> os.stat_result | None:
        try:
            return os.stat(self.real(path))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                return None
            raise Unreadable(f"{path}: {exc.strerror or type(exc).__name__}") from None


class Accounts(Protocol):
    def by_name(self, name: str) -> User | None: ...

    def by_uid(self, uid: int) -> User | None: ...

    def groups(self, user: User) -> list[Group]: ...


class FileAccounts:
    """Users and groups from the root's /etc/passwd and /etc/group (an image's own)."""

    def __init__(self, files: HostFiles) -> None:
        self._files = files
        self._users: list[User] | None = None
        self._groups: list[Group] | None = None

    def _load(self) -> tuple[list[User], list[Group]]:
        if self._users is None or self._groups is None:
            try:
                self._users = parse_passwd(self._files.read("/etc/passwd") or "")
                self._groups = parse_group(self._files.read("/etc/group") or "")
            except Unreadable:
                self._users, self._groups = [], []
        return self._users, self._groups

    def by_name(self, name: str) -> User | None:
        return next((u for u in self._load()[0] if u.name == name), None)

    def by_uid(self, uid: int) -> User | None:
        return next((u for u in self._load()[0] if u.uid == uid), None)

    def groups(self, user: User) -> list[Group]:
        return groups_of(user, self._load()[1])


class SystemAccounts:
    """This host's users through NSS (LDAP and sssd users included)."""

    @staticmethod
    def _user(entry: pwd.struct_passwd) -> User:
        return User(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    def by_name(self, name: str) -> User | None:
        try:
            return self._user(pwd.getpwnam(name))
        except KeyError:
            return None

    def by_uid(self, uid: int) -> User | None:
        try:
            return self._user(pwd.getpwuid(uid))
        except KeyError:
            return None

    def groups(self, user: User) -> list[Group]:
        found = []
        for gid in os.getgrouplist(user.name, user.gid):
            try:
                entry = grp.getgrgid(gid)
            except KeyError:
                continue
            found.append(Group(entry.gr_name, entry.gr_gid, tuple(entry.gr_mem)))
        return found


def principal(user: User | None, name: str, accounts: Accounts) -> limits.Principal:
    if user is None:
        return limits.Principal(name, None, frozenset(), frozenset())
    groups = accounts.groups(user)
    return limits.Principal(user.name, user.uid, frozenset(g.name for g in groups),
                            frozenset(g.gid for g in groups) | {user.gid})


# -- limits.conf, systemd, PAM -----------------------------------------------------------


def read_limits(files: HostFiles) -> tuple[list[limits.LimitRule], list[str]]:
    problems: list[str] = []
    try:
        dropins = [f"/etc/security/limits.d/{n}" for n in files.listdir("/etc/security/limits.d")]
    except Unreadable as exc:
        dropins = []
        problems.append(str(exc))
    rules: list[limits.LimitRule] = []
    for path in limits.ordered_files("/etc/security/limits.conf", dropins):
        try:
            text = files.read(path)
        except Unreadable as exc:
            problems.append(str(exc))
            continue
        if text is None:
            continue
        parsed = limits.parse_limits_conf(text, path)
        rules.extend(parsed.rules)
        problems.extend(str(p) for p in parsed.problems if _mentions_nofile(p.message, text, p))
    return rules, problems


def _mentions_nofile(_message: str, text: str, problem: limits.LimitsProblem) -> bool:
    """Only broken lines that concern nofile are the audit's business."""
    lines = text.splitlines()
    return 0 < problem.line <= len(lines) and "nofile" in lines[problem.line - 1]


@dataclass(frozen=True, slots=True)
class UnitConfig:
    name: str
    path: str | None
    masked: bool
    assignments: tuple[systemd.Assignment, ...]
    problems: tuple[str, ...]


def load_unit(files: HostFiles, unit: str) -> UnitConfig:
    problems: list[str] = []
    path: str | None = None
    masked = False
    for directory in systemd.UNIT_PATH:
        candidate = f"{directory}/{unit}"
        target = files.link_target(candidate)
        if target == "/dev/null":
            return UnitConfig(unit, candidate, True, (), ())
        if files.exists(candidate):
            path = candidate
            break
    found: list[tuple[str, str]] = []
    for directory in systemd.UNIT_PATH:
        for dropin_dir in systemd.dropin_dir_names(unit):
            where = f"{directory}/{dropin_dir}"
            try:
                found.extend((where, name) for name in files.listdir(where))
            except Unreadable as exc:
                problems.append(str(exc))
    assignments: list[systemd.Assignment] = []
    sources = ([path] if path is not None else []) + systemd.order_dropins(found)
    for source in sources:
        if files.link_target(source) == "/dev/null":
            continue
        try:
            text = files.read(source)
        except Unreadable as exc:
            problems.append(str(exc))
            continue
        if text is None:
            continue
        parsed, unit_problems = systemd.parse_unit(text, source)
        assignments.extend(parsed)
        problems.extend(str(p) for p in unit_problems)
    return UnitConfig(unit, path, masked, tuple(assignments), tuple(problems))


def _listed(
    files: HostFiles, directories: Iterable[str], problems: list[str]
) -> list[tuple[str, str]]:
    """(directory, name) of every entry in `directories`; an unreadable one becomes a problem."""
    found: list[tuple[str, str]] = []
    for directory in directories:
        try:
            found.extend((directory, name) for name in files.listdir(directory))
        except Unreadable as exc:
            problems.append(str(exc))
    return found


def default_nofile(files: HostFiles) -> tuple[systemd.RLimit, str, list[str]]:
    problems: list[str] = []
    found = _listed(files, systemd.MANAGER_DROPIN_DIRS, problems)
    assignments: list[systemd.Assignment] = []
    for source in [systemd.MANAGER_CONF, *systemd.order_dropins(found)]:
        try:
            text = files.read(source)
        except Unreadable as exc:
            problems.append(str(exc))
            continue
        if text is not None:
            assignments.extend(systemd.parse_unit(text, source)[0])
    setting = systemd.last_setting(assignments, "Manager", "DefaultLimitNOFILE")
    if setting is not None:
        try:
            return systemd.parse_rlimit(setting.value), setting.where, problems
        except ValueError as exc:
            problems.append(f"{setting.where}: DefaultLimitNOFILE={setting.value}: {exc}")
    return systemd.RLimit(*systemd.BUILTIN_DEFAULT_NOFILE), "systemd's built-in default", problems


def pam_status(files: HostFiles) -> tuple[PamStatus, list[str]]:
    problems: list[str] = []
    try:
        names = files.listdir("/etc/pam.d")
    except Unreadable as exc:
        return PamStatus(None), [str(exc)]
    debian = [n for n in names if n.startswith("common-session")]
    if debian:
        layout, chosen = "Debian/Ubuntu", debian
    elif "system-auth" in names:
        layout, chosen = "RHEL", [n for n in pam.RHEL_FILES if n in names]
    else:
        return PamStatus(None), ["no /etc/pam.d/common-session* or system-auth: "
                                 "no PAM session stack applies limits.conf"]
    result: dict[str, str | None] = {}
    for name in chosen:
        path = f"/etc/pam.d/{name}"
        try:
            result[path] = _find_pam_limits(files, path, depth=0)
        except Unreadable as exc:
            problems.append(str(exc))
            result[path] = None
    return PamStatus(layout, result), problems


def _find_pam_limits(files: HostFiles, path: str, depth: int) -> str | None:
    text = files.read(path)
    if text is None or depth > 5:
        return None
    parsed = pam.parse_pam(text)
    line = pam.has_pam_limits(parsed)
    if line is not None:
        return f"{path}:{line.line}"
    for include in parsed.includes:
        target = include if include.startswith("/") else f"/etc/pam.d/{include}"
        found = _find_pam_limits(files, target, depth + 1)
        if found is not None:
            return found
    return None


def nofile_source(
    files: HostFiles,
    accounts: Accounts,
    *,
    user_name: str | None,
    unit: str,
    under_systemd: bool | None,
) -> NofileSource:
    """Everything the files say about the service user's nofile."""
    problems: list[str] = []
    unit_config = load_unit(files, unit)
    problems.extend(unit_config.problems)
    if under_systemd is None and unit_config.path is not None and not unit_config.masked:
        under_systemd = True
    name = user_name or systemd.service_user(unit_config.assignments) or "mongooseim"
    user = accounts.by_name(name)
    rules, limit_problems = read_limits(files)
    problems.extend(limit_problems)
    resolved = limits.resolve(rules, "nofile", principal(user, name, accounts))
    setting = systemd.last_setting(unit_config.assignments, "Service", "LimitNOFILE")
    unit_limit = None
    if setting is not None:
        try:
            unit_limit = systemd.parse_rlimit(setting.value)
        except ValueError as exc:
            problems.append(f"{setting.where}: LimitNOFILE={setting.value}: {exc}")
    default, default_where, default_problems = default_nofile(files)
    problems.extend(default_problems)
    pam_result, pam_problems = pam_status(files)
    problems.extend(p for p in pam_problems if pam_result.layout is not None or resolved.is_set)
    return NofileSource(
        user=name,
        under_systemd=under_systemd,
        unit=unit if unit_config.path is not None or under_systemd else None,
        unit_path=unit_config.path,
        unit_limit=unit_limit,
        unit_limit_where=setting.where if setting is not None else None,
        default_limit=default,
        default_where=default_where,
        limits=resolved,
        pam=pam_result,
        problems=tuple(problems),
        unit_masked=unit_config.masked,
    )


def find_unit(files: HostFiles, candidates: tuple[str, ...]) -> str | None:
    for unit in candidates:
        if any(files.exists(f"{d}/{unit}") for d in systemd.UNIT_PATH):
            return unit
    return None


# -- sysctl, release files ---------------------------------------------------------------


def sysctl_files(files: HostFiles) -> tuple[dict[str, sysctl.SysctlValue], list[str]]:
    problems: list[str] = []
    found = _listed(files, sysctl.SYSCTL_DIRS, problems)
    values: list[sysctl.SysctlValue] = []
    for source in [*systemd.order_dropins(found), sysctl.SYSCTL_CONF]:
        try:
            text = files.read(source)
        except Unreadable as exc:
            problems.append(str(exc))
            continue
        if text is not None:
            values.extend(sysctl.parse_sysctl(text, source))
    return sysctl.merge(values), problems


def find_release_root(files: HostFiles, configured: Path | None) -> str | None:
    candidates = (str(configured),) if configured is not None else RELEASE_ROOTS
    for root in candidates:
        if files.exists(f"{root}/etc/vm.args"):
            return root
    return None


def read_vm_args(files: HostFiles, release_root: str) -> tuple[VmArgs | None, str | None]:
    path = f"{release_root}/etc/vm.args"
    try:
        text = files.read(path)
    except Unreadable as exc:
        return None, str(exc)
    if text is None:
        return None, f"{path}: no such file"
    try:
        return parse_vm_args_file(text), None
    except ValueError as exc:
        return None, f"{path}: {exc}"


def tls_configured(text: str) -> bool | None:
    """Whether any listener in mongooseim.toml has a `tls` table; None when unreadable."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    listen = document.get("listen")
    if not isinstance(listen, dict):
        return False
    for entries in listen.values():
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict) and "tls" in entry:
                return True
    return False


def file_facts(
    files: HostFiles, path: str, owner: Callable[[int], str]
) -> FileFacts | None:
    found = files.stat(path)
    if found is None or not stat.S_ISREG(found.st_mode):
        return None
    return FileFacts(path, found.st_mode, found.st_uid, owner(found.st_uid))
