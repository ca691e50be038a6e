"""pam_limits' configuration: /etc/security/limits.conf, then limits.d/*.conf in C order.

Resolution follows pam_limits.c: an entry for the user by name (or a single uid) beats one
for a group (`@group`, `@gid` ranges), which beats a uid range, which beats `*`; between
entries of equal rank the later one wins (later line, later file). Group, range and
wildcard entries do not apply to root. Type `-` sets soft and hard together.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

UNLIMITED_WORDS = frozenset({"unlimited", "infinity", "-1"})
TYPES = frozenset({"soft", "hard", "-"})


class Rank(enum.IntEnum):
    """pam_limits' LIMITS_DEF_*: lower wins."""

    USER = 0
    GROUP = 1
    RANGE = 2
    DEFAULT = 3


@dataclass(frozen=True, slots=True)
class LimitRule:
    domain: str
    kind: str
    item: str
    # None: unlimited (pam_limits gives nofile the value of fs.nr_open then).
    value: int | None
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def text(self) -> str:
        shown = "unlimited" if self.value is None else str(self.value)
        return f"{self.domain} {self.kind} {self.item} {shown}"


@dataclass(frozen=True, slots=True)
class LimitsProblem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParsedLimits:
    rules: tuple[LimitRule, ...]
    problems: tuple[LimitsProblem, ...]


def parse_limits_conf(text: str, path: str) -> ParsedLimits:
    """One limits.conf-format file: `domain type item value`, `#` starts a comment."""
    rules: list[LimitRule] = []
    problems: list[LimitsProblem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 4:
            problems.append(LimitsProblem(path, number, f"expected 'domain type item value', "
                                                        f"got {len(fields)} fields"))
            continue
        domain, kind, item, value_text = fields
        if kind not in TYPES:
            problems.append(LimitsProblem(path, number, f"type {kind!r} is not soft, hard or -"))
            continue
        value: int | None
        if value_text.lower() in UNLIMITED_WORDS:
            value = None
        elif value_text.isdigit():
            value = int(value_text)
        else:
            problems.append(LimitsProblem(path, number, f"value {value_text!r} is not a number"))
            continue
        rules.append(LimitRule(domain, kind, item.lower(), value, path, number))
    return ParsedLimits(tuple(rules), tuple(problems))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who the limits are resolved for: the service user, its uid and all its groups."""

    user: str
    uid: int | None
    groups: frozenset[str]
    gids: frozenset[int]


def _range(text: str) -> tuple[int | None, int | None] | None:
    """`a:b`, `a:`, `:b` or `a` as bounds; None when not a uid/gid expression."""
    low, sep, high = text.partition(":")
    if not sep:
        return (int(low), int(low)) if low.isdigit() else None
    if (low and not low.isdigit()) or (high and not high.isdigit()) or not (low or high):
        return None
    return (int(low) if low else None, int(high) if high else None)


def _in(value: int | None, bounds: tuple[int | None, int | None]) -> bool:
    if value is None:
        return False
    low, high = bounds
    return (low is None or value >= low) and (high is None or value <= high)


def rank_for(domain: str, who: Principal) -> Rank | None:
    """The rank at which `domain` applies to `who`, None when it does not."""
    root = who.uid == 0 or who.user == "root"
    if domain == who.user:
        return Rank.USER
    if domain.startswith("%"):
        return None  # maxsyslogins only
    if domain.startswith("@"):
        if root:
            return None
        name = domain[1:]
        bounds = _range(name)
        if bounds is None:
            return Rank.GROUP if name in who.groups else None
        return Rank.GROUP if any(_in(gid, bounds) for gid in who.gids) else None
    if domain == "*":
        return None if root else Rank.DEFAULT
    bounds = _range(domain)
    if bounds is None:
        return None
    if bounds[0] is not None and bounds[0] == bounds[1]:
        return Rank.USER if who.uid == bounds[0] else None
    if root:
        return None
    return Rank.RANGE if _in(who.uid, bounds) else None


@dataclass(frozen=True, slots=True)
class Resolved:
    """The soft and hard values pam_limits would set; None where no entry applies."""

    soft: LimitRule | None
    hard: LimitRule | None

    @property
    def is_set(self) -> bool:
        return self.soft is not None or self.hard is not None


def resolve(rules: Iterable[LimitRule], item: str, who: Principal) -> Resolved:
    """Apply `rules` (in file order) for `item` as pam_limits does."""
    best: dict[str, tuple[Rank, LimitRule]] = {}
    for rule in rules:
        if rule.item != item:
            continue
        rank = rank_for(rule.domain, who)
        if rank is None:
            continue
        for kind in ("soft", "hard") if rule.kind == "-" else (rule.kind,):
            current = best.get(kind)
            if current is None or rank <= current[0]:
                best[kind] = (rank, rule)
    soft = best.get("soft")
    hard = best.get("hard")
    return Resolved(soft[1] if soft else None, hard[1] if hard else None)


def ordered_files(limits_conf: str, dropins: Sequence[str]) -> list[str]:
    """limits.conf first, then limits.d files ending in .conf in C-locale order."""
    return [limits_conf, *sorted((d for d in dropins if d.endswith(".conf")),
                                  key=lambda p: p.rsplit("/", 1)[-1].encode())]
