"""/etc/passwd and /etc/group, for an image whose users are not this host's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...]


def parse_passwd(text: str) -> list[User]:
    users = []
    for raw in text.splitlines():
        fields = raw.split(":")
        if len(fields) < 7 or raw.startswith("#") or not fields[2].isdigit() \
                or not fields[3].isdigit():
            continue
        users.append(User(fields[0], int(fields[2]), int(fields[3]), fields[5]))
    return users


def parse_group(text: str) -> list[Group]:
    groups = []
    for raw in text.splitlines():
        fields = raw.split(":")
        if len(fields) < 4 or raw.startswith("#") or not fields[2].isdigit():
            continue
        members = tuple(m for m in fields[3].split(",") if m)
        groups.append(Group(fields[0], int(fields[2]), members))
    return groups


def groups_of(user: User, groups: list[Group]) -> list[Group]:
    """The primary group and every group listing the user as a member."""
    return [g for g in groups if g.gid == user.gid or user.name in g.members]
