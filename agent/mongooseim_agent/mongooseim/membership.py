"""Cluster membership as one node sees it, whichever source answered, and what follows from it.

Pure: the sources (distribution, GraphQL, mongooseimctl) parse their replies into these
values; the cluster collector turns them into samples and checks.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

# A member name as the sources print it. Anything else in a reply is hostile or broken input,
# and must not become a label value.
_MEMBER_RE = re.compile(r"[A-Za-z0-9_.@+-]{1,255}")
# Mnesia clusters are tens of nodes; a reply naming more is broken or hostile.
MAX_MEMBERS = 1024


class MembershipError(ValueError):
    """A source's reply cannot be read as membership; str() says what was wrong."""


class Source(enum.Enum):
    DIST = "dist"
    GRAPHQL = "graphql"
    CTL = "ctl"


def member_names(values: Iterable[object], what: str) -> tuple[str, ...]:
    """Validated, de-duplicated, sorted member names; MembershipError naming `what` otherwise."""
    names: set[str] = set()
    for value in values:
        if not isinstance(value, str) or not _MEMBER_RE.fullmatch(value) or "@" not in value:
            shown = repr(value)[:80]
            raise MembershipError(f"{what}: {shown} is not a node name")
        names.add(value)
        if len(names) > MAX_MEMBERS:
            raise MembershipError(f"{what}: more than {MAX_MEMBERS} nodes")
    return tuple(sorted(names))


@dataclass(frozen=True, slots=True)
class MnesiaView:
    """mnesia:system_info(db_nodes | running_db_nodes | is_running) on the node."""

    db_nodes: tuple[str, ...]
    running_db_nodes: tuple[str, ...]
    # mnesia's own answer: yes, no, starting or stopping.
    is_running: str

    @property
    def running(self) -> bool:
        return self.is_running == "yes"

    @property
    def stopped_db_nodes(self) -> tuple[str, ...]:
        """db_nodes minus running_db_nodes: the guide's "stopped db nodes"."""
        running = set(self.running_db_nodes)
        return tuple(node for node in self.db_nodes if node not in running)


class CetsState(enum.Enum):
    """The `state` label values of mongooseim_cets_nodes."""

    JOINED = "joined"
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"
    DISCOVERED = "discovered"
    CONFLICT = "conflict"
    WITHOUT_DISCO = "without_disco"


@dataclass(frozen=True, slots=True)
class CetsView:
    """cets_status:status(mongoose_cets_discovery), as `cets systemInfo` reports it."""

    nodes: dict[CetsState, tuple[str, ...]]
    discovery_works: bool
    # Nodes with unknown or missing tables, and tables in conflict: unhealthy when non-empty.
    remote_table_trouble: tuple[str, ...] = ()

    def count(self, state: CetsState) -> int:
        return len(self.nodes.get(state, ()))

    @property
    def healthy(self) -> bool:
        return (
            self.discovery_works
            and not self.nodes.get(CetsState.UNAVAILABLE)
            and not self.nodes.get(CetsState.CONFLICT)
            and not self.nodes.get(CetsState.WITHOUT_DISCO)
            and not self.remote_table_trouble
        )


@dataclass(frozen=True, slots=True)
class Membership:
    """What one source answered. Parts a source cannot see are None."""

    source: Source
    # None when mnesia is not used (a CETS-only node) or the source could not read it.
    mnesia: MnesiaView | None
    # The node's nodes(): only distribution sees it.
    connected: tuple[str, ...] | None = None
    # None when the node runs no CETS.
    cets: CetsView | None = None
    # The node's own server status (GraphQL `server { status }`, mongooseimctl status).
    server_running: bool | None = None


def view_hash(running: Iterable[str]) -> str:
    """A short stable name for a running set: equal sets give equal names on every host."""
    text = ",".join(sorted(set(running)))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def partitioned_members(view: MnesiaView, connected: Iterable[str], own: str | None) -> tuple[
    str, ...
]:
    """Members connected over distribution but missing from running_db_nodes.

    After a network split heals, Erlang reconnects the nodes but mnesia does not merge its
    two halves (inconsistent_database): every node then sees the others connected and not
    running. A member merely down is not connected, so it is not counted here.
    """
    if not view.running:
        return ()
    running = set(view.running_db_nodes)
    linked = set(connected)
    return tuple(
        node for node in view.db_nodes if node != own and node in linked and node not in running
    )


# cets_status:status/1's map keys (MongooseIM's mongoose_graphql_cets_admin_query.erl reads
# the same ones to answer `cets { systemInfo }`).
_CETS_STATUS_KEYS = {
    CetsState.AVAILABLE: "available_nodes",
    CetsState.UNAVAILABLE: "unavailable_nodes",
    CetsState.JOINED: "joined_nodes",
    CetsState.DISCOVERED: "discovered_nodes",
    CetsState.WITHOUT_DISCO: "remote_nodes_without_disco",
    CetsState.CONFLICT: "conflict_nodes",
}


def cets_from_status(status: object) -> CetsView:
    """The map cets_status:status(mongoose_cets_discovery) returns, decoded from the wire
    (atom keys and node atoms compare equal to their names)."""
    what = "cets_status:status/1"
    if not isinstance(status, dict):
        raise MembershipError(f"{what}: expected a map")
    nodes = {}
    for state, key in _CETS_STATUS_KEYS.items():
        value = status.get(key, [])
        if not isinstance(value, list):
            raise MembershipError(f"{what}: {key} is not a list")
        nodes[state] = member_names(value, f"{what} {key}")
    trouble: set[str] = set()
    for key in ("remote_nodes_with_unknown_tables", "remote_nodes_with_missing_tables"):
        value = status.get(key, [])
        if not isinstance(value, list):
            raise MembershipError(f"{what}: {key} is not a list")
        trouble.update(member_names(value, f"{what} {key}"))
    works = status.get("discovery_works")
    if works not in ("true", "false") or not isinstance(works, str):
        raise MembershipError(f"{what}: discovery_works is not a boolean")
    if status.get("conflict_tables") and not nodes[CetsState.CONFLICT]:
        trouble.add("(conflicting tables)")
    return CetsView(nodes, works == "true", tuple(sorted(trouble)))
