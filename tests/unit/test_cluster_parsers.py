"""Membership parsers for every shape mongooseimctl and the GraphQL API print, and for broken,
truncated and hostile input (a clear MembershipError, never another exception or a hang)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mongooseim_agent.erlang.etf import Atom
from mongooseim_agent.mongooseim.ctl import (
    CtlResult,
    NodeDown,
    UnknownCommand,
    check_common,
    parse_atom_list,
    parse_mnesia_info,
    parse_system_info_json,
)
from mongooseim_agent.mongooseim.graphql import (
    GraphqlError,
    parse_cets,
    parse_mnesia,
    parse_status,
)
from mongooseim_agent.mongooseim.membership import (
    CetsState,
    MembershipError,
    MnesiaView,
    cets_from_status,
    partitioned_members,
    view_hash,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ctl"

# OTP 25's mnesia:info() on a 3-node cluster with one member stopped, as printed by
# `mongooseimctl mnesia info` up to 6.1 (note the trailing space after the stopped list).
LEGACY_INFO = (FIXTURES / "mnesia_info_otp25.txt").read_text()

# ~p wraps a long list over several lines, indented under its first item.
WRAPPED_INFO = (FIXTURES / "mnesia_info_wrapped.txt").read_text()

# The docs' spacing differs from OTP's.
DOCS_INFO = "running db nodes = [mongooseim@a]\nstopped db nodes = [mongooseim@b]\n"

NOT_RUNNING_INFO = (FIXTURES / "mnesia_info_not_running.txt").read_text()

SYSTEM_INFO_JSON = (FIXTURES / "mnesia_system_info_6x.json").read_text()

SYSTEM_INFO_ERROR = json.dumps({
    "errors": [{"extensions": {"code": "bad_key_error", "key": "db_nodez"},
                "message": "Key is not valid", "path": ["mnesia", "systemInfo"]}],
    "data": {"mnesia": {"systemInfo": []}},
})

CETS_JSON = json.dumps({"data": {"cets": {"systemInfo": {
    "availableNodes": ["mongooseim@a", "mongooseim@b"],
    "unavailableNodes": ["mongooseim@c"],
    "joinedNodes": ["mongooseim@a", "mongooseim@b"],
    "discoveredNodes": ["mongooseim@a", "mongooseim@b", "mongooseim@c"],
    "remoteNodesWithoutDisco": [],
    "remoteNodesWithUnknownTables": [],
    "remoteUnknownTables": [],
    "remoteNodesWithMissingTables": [],
    "remoteMissingTables": [],
    "conflictNodes": [],
    "conflictTables": [],
    "discoveryWorks": True,
}}}})


def test_legacy_mnesia_info_quoted_atoms_and_trailing_space() -> None:
    """OTP's own text: plain and quoted atoms, the stopped list with its trailing space."""
    view = parse_mnesia_info(LEGACY_INFO)
    assert view.running_db_nodes == ("mongooseim@node1", "mongooseim@node2")
    assert view.stopped_db_nodes == ("mongooseim@ip-10-0-0-3",)
    assert view.db_nodes == ("mongooseim@ip-10-0-0-3", "mongooseim@node1", "mongooseim@node2")
    assert view.running


def test_legacy_mnesia_info_wrapped_and_docs_spacing() -> None:
    """A list wrapped by ~p and the docs' single-space layout read the same way."""
    wrapped = parse_mnesia_info(WRAPPED_INFO)
    assert len(wrapped.running_db_nodes) == 4
    assert wrapped.stopped_db_nodes == ()
    docs = parse_mnesia_info(DOCS_INFO)
    assert docs.db_nodes == ("mongooseim@a", "mongooseim@b")
    assert docs.stopped_db_nodes == ("mongooseim@b",)


def test_legacy_mnesia_info_when_mnesia_is_not_running() -> None:
    """mnesia:info() of a node whose mnesia is down: nothing running, is_running no."""
    view = parse_mnesia_info(NOT_RUNNING_INFO)
    assert not view.running
    assert view.is_running == "no"
    assert view.stopped_db_nodes == ("mongooseim@h",)


def test_unknown_command_of_6_2() -> None:
    """6.2+ answers `mnesia info` with Unknown command and exit 1."""
    result = CtlResult(1, "Unknown command 'info'\n")
    with pytest.raises(UnknownCommand):
        check_common(result, "mnesia info")
    with pytest.raises(UnknownCommand):
        parse_mnesia_info(result.output)


def test_nodedown_answer() -> None:
    """Exit 3 with `Failed RPC connection` is the node being unreachable."""
    result = CtlResult(3, "Failed RPC connection to the node mongooseim@h: nodedown\n")
    with pytest.raises(NodeDown, match="nodedown"):
        check_common(result, "mnesia info")


def test_system_info_json() -> None:
    """6.x CLI JSON (jiffy's pretty layout), keys in any order."""
    view = parse_system_info_json(SYSTEM_INFO_JSON)
    assert view == MnesiaView(("mongooseim@node1", "mongooseim@node2", "mongooseim@node3"),
                              ("mongooseim@node1", "mongooseim@node2"), "yes")
    assert view.stopped_db_nodes == ("mongooseim@node3",)


def test_system_info_errors_member() -> None:
    """An `errors` member is an error carrying GraphQL's message."""
    with pytest.raises(MembershipError, match="Key is not valid"):
        parse_system_info_json(SYSTEM_INFO_ERROR)


@pytest.mark.parametrize("text", [
    "",
    "running db nodes   = [a@h,b@h",
    "running db nodes   = [a@h,,b@h]\nstopped db nodes = []",
    "running db nodes   = ['a@h\nstopped db nodes = []",
    "running db nodes   = [\"a@h\"]\nstopped db nodes = []",
    "running db nodes   = [a@h]\n",
    "running db nodes   = [{a,b}]\nstopped db nodes = []",
    "running db nodes   = ['a b@h']\nstopped db nodes = []",
    "running db nodes   = [nohost]\nstopped db nodes = []",
    "running db nodes   = [a@h]\nstopped db nodes   = [" + "x@h," * 5000 + "y@h]",
])
def test_broken_mnesia_info(text: str) -> None:
    """Truncated or hostile text: a MembershipError saying what is wrong."""
    with pytest.raises(MembershipError):
        parse_mnesia_info(text)


@pytest.mark.parametrize("text", [
    "",
    "not json",
    "{",
    "[" * 100_000,
    "{" + '"a":[' * 50_000,
    json.dumps({"data": None}),
    json.dumps({"data": {"mnesia": {"systemInfo": "x"}}}),
    json.dumps({"data": {"mnesia": {"systemInfo": [{"key": "db_nodes", "result": ["a@h"]}]}}}),
    json.dumps({"data": {"mnesia": {"systemInfo": [
        {"key": "db_nodes", "result": "a@h"}, {"key": "running_db_nodes", "result": []},
        {"key": "is_running", "result": "yes"}]}}}),
    json.dumps({"data": {"mnesia": {"systemInfo": [
        {"key": "db_nodes", "result": ["a@h"]}, {"key": "running_db_nodes", "result": [1]},
        {"key": "is_running", "result": "yes"}]}}}),
    json.dumps({"data": {"mnesia": {"systemInfo": [
        {"key": "db_nodes", "result": ["a@h"]}, {"key": "running_db_nodes", "result": []},
        {"key": "is_running", "result": ["yes"]}]}}}),
    json.dumps({"data": {"mnesia": {"systemInfo": [
        {"key": "db_nodes", "result": ["a@h\n{evil=\"1\"}"]},
        {"key": "running_db_nodes", "result": []}, {"key": "is_running", "result": "yes"}]}}}),
    "{" + " " * (2 * 1024 * 1024) + "}",
])
def test_broken_system_info_json(text: str) -> None:
    """Deep nesting, wrong types, label injection, oversize: MembershipError every time."""
    with pytest.raises(MembershipError):
        parse_system_info_json(text)


def test_graphql_status() -> None:
    """`server { status }` answers RUNNING or NOT_RUNNING."""
    running = parse_status(json.dumps({"data": {"server": {"status": {
        "statusCode": "RUNNING", "message": "The MongooseIM node is running",
        "version": "6.3.0"}}}}))
    assert running.running
    assert running.version == "6.3.0"
    stopped = parse_status(json.dumps({"data": {"server": {"status": {
        "statusCode": "NOT_RUNNING", "message": "x", "version": None}}}}))
    assert not stopped.running


def test_graphql_mnesia_and_errors() -> None:
    """`mnesia { systemInfo }` as the admin API answers it; its `errors` shape raises."""
    answer = json.loads(SYSTEM_INFO_JSON)
    view = parse_mnesia(json.dumps(answer))
    assert view.running_db_nodes == ("mongooseim@node1", "mongooseim@node2")
    no_mnesia = json.dumps({"data": {"mnesia": None}, "errors": [{
        "message": "Cannot execute query without mnesia", "path": ["mnesia"]}]})
    with pytest.raises(GraphqlError, match="without mnesia"):
        parse_mnesia(no_mnesia)


def test_graphql_cets() -> None:
    """`cets { systemInfo }`: counts per state and discoveryWorks."""
    cets = parse_cets(CETS_JSON)
    assert cets.count(CetsState.AVAILABLE) == 2
    assert cets.count(CetsState.UNAVAILABLE) == 1
    assert cets.count(CetsState.DISCOVERED) == 3
    assert cets.discovery_works
    assert not cets.healthy
    unauthorized = json.dumps({"errors": [{"message": "Request is not authorized",
                                           "extensions": {"code": "no_permissions"}}]})
    with pytest.raises(GraphqlError, match="not authorized"):
        parse_cets(unauthorized)


def test_cets_over_distribution_matches_graphql() -> None:
    """cets_status:status/1's map (atom keys and values) reads as GraphQL's answer does."""
    status = {
        Atom("available_nodes"): [Atom("mongooseim@a"), Atom("mongooseim@b")],
        Atom("unavailable_nodes"): [Atom("mongooseim@c")],
        Atom("joined_nodes"): [Atom("mongooseim@a"), Atom("mongooseim@b")],
        Atom("discovered_nodes"): [Atom(n) for n in ("mongooseim@a", "mongooseim@b",
                                                     "mongooseim@c")],
        Atom("discovery_works"): Atom("true"),
        Atom("remote_nodes_without_disco"): [],
        Atom("remote_nodes_with_unknown_tables"): [],
        Atom("remote_unknown_tables"): [],
        Atom("remote_nodes_with_missing_tables"): [],
        Atom("remote_missing_tables"): [],
        Atom("conflict_nodes"): [],
        Atom("conflict_tables"): [],
    }
    assert cets_from_status(status) == parse_cets(CETS_JSON)
    with pytest.raises(MembershipError):
        cets_from_status({**status, Atom("discovery_works"): Atom("maybe")})
    with pytest.raises(MembershipError):
        cets_from_status([])


def test_view_hash_is_order_free_and_short() -> None:
    """The same running set gives the same view on every host, whatever the order."""
    assert view_hash(["b@h", "a@h"]) == view_hash(["a@h", "b@h", "a@h"])
    assert view_hash(["a@h"]) != view_hash(["a@h", "b@h"])
    assert len(view_hash([])) == 12


def test_partition_needs_a_connected_member_missing_from_running() -> None:
    """Connected but not running = partitioned; merely down (not connected) is not."""
    view = MnesiaView(("a@h", "b@h", "c@h"), ("a@h", "b@h"), "yes")
    assert partitioned_members(view, ["b@h"], "a@h") == ()
    assert partitioned_members(view, ["b@h", "c@h"], "a@h") == ("c@h",)
    stopped = MnesiaView(("a@h", "b@h"), (), "no")
    assert partitioned_members(stopped, ["b@h"], "a@h") == ()


@given(st.text(max_size=400))
def test_mnesia_info_never_crashes(text: str) -> None:
    """Arbitrary text: a view or a MembershipError, nothing else."""
    try:
        view = parse_mnesia_info(text)
    except MembershipError:
        return
    assert set(view.running_db_nodes) <= set(view.db_nodes)


@given(st.binary(max_size=400))
def test_system_info_json_never_crashes(data: bytes) -> None:
    """Arbitrary bytes as JSON: a view or a MembershipError."""
    with contextlib.suppress(MembershipError):
        parse_system_info_json(data.decode("utf-8", errors="replace"))


@given(st.text(max_size=200), st.integers(min_value=0, max_value=200))
def test_truncated_legacy_info_never_crashes(suffix: str, cut: int) -> None:
    """Any prefix of real output plus noise: a view or a MembershipError."""
    with contextlib.suppress(MembershipError):
        parse_mnesia_info(LEGACY_INFO[: len(LEGACY_INFO) - cut] + suffix)


@given(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}@[a-z][a-z0-9.-]{0,8}", fullmatch=True),
                max_size=20))
def test_atom_list_round_trip(names: list[str]) -> None:
    """A list printed the way ~p prints it (quoted when needed) parses back to its names."""
    def show(name: str) -> str:
        plain = all(c.isalnum() or c in "_@." for c in name)
        return name if plain else f"'{name}'"
    text = "[" + ",".join(show(name) for name in names) + "]"
    assert parse_atom_list(text, 0, "test") == names
