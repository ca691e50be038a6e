"""Cluster membership as this node sees it: mnesia (and CETS) members, who runs, who is
connected, and the partition mnesia never heals by itself.

Sources, by `[cluster] source`: `dist` (the agent's own distribution link, nothing but the
cookie), `graphql` (MongooseIM 6's admin API), `ctl` (mongooseimctl); `auto` takes the
first that answers, in that order, on every run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from mongooseim_agent.config import ClusterSection
from mongooseim_agent.credentials import credential_path
from mongooseim_agent.erlang.connection import Query, reply_nodes
from mongooseim_agent.erlang.cookie import CookieUnavailable
from mongooseim_agent.erlang.errors import RpcError, WireError
from mongooseim_agent.erlang.etf import Atom
from mongooseim_agent.metrics import MetricSpec, gauge
from mongooseim_agent.mongooseim.ctl import CtlClient, RunCtl, run_subprocess
from mongooseim_agent.mongooseim.graphql import GraphqlClient, Post, aiohttp_post
from mongooseim_agent.mongooseim.membership import (
    MAX_MEMBERS,
    CetsState,
    CetsView,
    Membership,
    MembershipError,
    MnesiaView,
    Source,
    cets_from_status,
    member_names,
    partitioned_members,
    view_hash,
)
from mongooseim_agent.mongooseim.nodelink import NodeLink
from mongooseim_agent.snapshot import Check, Sample, Snapshot, Status

METRICS: tuple[MetricSpec, ...] = (
    gauge("mongooseim_cluster_db_nodes", "Mnesia cluster members (db_nodes) as this node sees "
          "them."),
    gauge("mongooseim_cluster_running_nodes", "Members running in the mnesia cluster "
          "(running_db_nodes)."),
    gauge("mongooseim_cluster_stopped_nodes", "Members not running: db_nodes minus "
          "running_db_nodes, the guide's \"stopped db nodes\"."),
    gauge("mongooseim_cluster_node_running", "1 if the member runs in this node's view of "
          "the cluster, 0 if it is a member that does not.", "member"),
    gauge("mongooseim_cluster_member_connected", "1 if the member is connected to this node "
          "over Erlang distribution (in its nodes()).", "member"),
    gauge("mongooseim_cluster_expected_node_present", "1 if an expected member ([cluster] "
          "expected_members, else every member seen since the agent started) is running.",
          "member"),
    gauge("mongooseim_cluster_view_info", "1; view is a short hash of the sorted running set: "
          "agents on different nodes showing different views = split brain.", "view"),
    gauge("mongooseim_cluster_partitioned", "1 when a member is connected over distribution "
          "but missing from running_db_nodes on two runs in a row (mnesia stays partitioned "
          "after the network heals); dist source only."),
    gauge("mongooseim_cluster_source_info", "1; which source answered the membership "
          "(dist, graphql, ctl).", "source"),
    gauge("mongooseim_cets_nodes", "CETS nodes by state (joined, available, unavailable, "
          "discovered, conflict, without_disco).", "state"),
    gauge("mongooseim_cets_discovery_works", "1 if CETS's last discovery attempt succeeded."),
)

_AUTO_ORDER = (Source.DIST, Source.GRAPHQL, Source.CTL)
_MNESIA_STATES = {"yes", "no", "starting", "stopping"}


class ClusterCollector:
    name = "cluster"
    metrics = METRICS

    def __init__(
        self,
        settings: ClusterSection,
        link: NodeLink,
        *,
        release_root: Callable[[], Path | None] = lambda: None,
        post: Post = aiohttp_post,
        run_ctl: RunCtl = run_subprocess,
    ) -> None:
        self.interval = settings.interval
        self._settings = settings
        self._link = link
        self._release_root = release_root
        self._graphql = (
            GraphqlClient(settings.graphql_url, user=settings.graphql_user,
                          password_file=(credential_path(settings.graphql_password_file)
                                         if settings.graphql_password_file else None),
                          host=settings.graphql_host, post=post)
            if settings.graphql_url is not None else None
        )
        self._ctl = CtlClient(self._ctl_path, run=run_ctl)
        self._order = _AUTO_ORDER if settings.source == "auto" else (Source(settings.source),)
        budgets = {Source.DIST: settings.timeout, Source.GRAPHQL: settings.timeout,
                   Source.CTL: 2 * settings.ctl_timeout}
        # Every source in turn, each under its own budget, plus scheduling slack.
        self.timeout = sum(budgets[source] for source in self._order) + 1.0
        self._budgets = budgets
        self._seen: set[str] = set()
        # Members flagged as partitioned on the previous run: the flag needs two runs in a
        # row, so a peer that is connected but still starting mnesia is not a partition.
        self._suspects: frozenset[str] = frozenset()

    def _ctl_path(self) -> Path | None:
        if self._settings.ctl_path is not None:
            return self._settings.ctl_path
        root = self._release_root()
        return root / "bin" / "mongooseimctl" if root is not None else None

    async def collect(self) -> Snapshot:
        membership, tried = await self._read()
        if membership is None:
            return Snapshot(self.name, checks=self._unknown_checks(tried))
        return Snapshot(self.name, *self._evaluate(membership, tried))

    async def _read(self) -> tuple[Membership | None, list[str]]:
        tried: list[str] = []
        for source in self._order:
            if not self._usable(source):
                if self._settings.source != "auto":
                    tried.append(f"{source.value}: not configured")
                continue
            budget = self._budgets[source]
            try:
                async with asyncio.timeout(budget):
                    return await self._read_from(source, budget), tried
            except TimeoutError:
                tried.append(f"{source.value}: no answer in {budget:g}s")
            except (MembershipError, WireError, CookieUnavailable) as exc:
                tried.append(f"{source.value}: {exc}")
        return None, tried

    def _usable(self, source: Source) -> bool:
        if source is Source.GRAPHQL:
            return self._graphql is not None
        if source is Source.CTL:
            return self._settings.source == "ctl" or self._ctl.available()
        return True

    async def _read_from(self, source: Source, budget: float) -> Membership:
        if source is Source.DIST:
            return await self._read_dist(budget)
        if source is Source.GRAPHQL and self._graphql is not None:
            return await self._graphql.membership(budget)
        return await self._ctl.membership(self._settings.ctl_timeout)

    async def _read_dist(self, budget: float) -> Membership:
        call = self._link.call
        is_running = await call(Query.MNESIA_IS_RUNNING, budget)
        if not isinstance(is_running, Atom) or is_running not in _MNESIA_STATES:
            raise MembershipError(f"{Query.MNESIA_IS_RUNNING} returned an unexpected value")
        db_nodes = reply_nodes(Query.DB_NODES, await call(Query.DB_NODES, budget))
        running = reply_nodes(Query.RUNNING_DB_NODES, await call(Query.RUNNING_DB_NODES, budget))
        connected = reply_nodes(Query.NODES, await call(Query.NODES, budget))
        try:
            cets: CetsView | None = cets_from_status(await call(Query.CETS_STATUS, budget))
        except RpcError:
            # badrpc: no CETS on this node (undef) or its discovery is not running (noproc).
            cets = None
        view = MnesiaView(member_names(db_nodes, "db_nodes"),
                          member_names(running, "running_db_nodes"), str(is_running))
        return Membership(Source.DIST, view, member_names(connected, "nodes()"), cets)

    # -- what the membership means -----------------------------------------------------

    def _evaluate(
        self, membership: Membership, tried: list[str]
    ) -> tuple[tuple[Sample, ...], tuple[Check, ...]]:
        node = self._link.node()
        own = node.name if node is not None else None
        mnesia, cets = membership.mnesia, membership.cets
        # A CETS-only MongooseIM does not run mnesia at all: that is not a fault.
        if mnesia is not None and not mnesia.running and cets is not None:
            mnesia = None
        samples = [Sample("mongooseim_cluster_source_info", 1,
                          {"source": membership.source.value})]
        checks = [self._source_check(membership.source, tried)]
        members, running = _members_and_running(mnesia, cets, own)
        # Bounded like a reply: members coming and going under new names (autoscaling)
        # must not grow the series without end.
        if len(self._seen) < MAX_MEMBERS:
            self._seen.update(members)
        expected = self._settings.expected_members or tuple(sorted(self._seen))
        known = sorted(set(members) | set(expected))
        if mnesia is not None:
            samples += [
                Sample("mongooseim_cluster_db_nodes", len(mnesia.db_nodes)),
                Sample("mongooseim_cluster_running_nodes", len(mnesia.running_db_nodes)),
                Sample("mongooseim_cluster_stopped_nodes", len(mnesia.stopped_db_nodes)),
            ]
        if mnesia is not None or cets is not None:
            samples += [Sample("mongooseim_cluster_node_running", int(m in running),
                               {"member": m}) for m in known]
            samples += [Sample("mongooseim_cluster_expected_node_present", int(m in running),
                               {"member": m}) for m in expected]
            samples.append(Sample("mongooseim_cluster_view_info", 1,
                                  {"view": view_hash(running)}))
        if membership.connected is not None:
            linked = set(membership.connected)
            samples += [Sample("mongooseim_cluster_member_connected", int(m in linked),
                               {"member": m}) for m in known if m != own]
        checks.append(_mnesia_check(mnesia, cets, membership.server_running))
        checks.append(self._partition_check(mnesia, membership.connected, own, samples))
        checks.append(self._members_check(running, expected))
        if cets is not None:
            samples += [Sample("mongooseim_cets_nodes", cets.count(state),
                               {"state": state.value}) for state in CetsState]
            samples.append(Sample("mongooseim_cets_discovery_works", int(cets.discovery_works)))
            checks.append(_cets_check(cets))
        return tuple(samples), tuple(checks)

    def _source_check(self, source: Source, tried: list[str]) -> Check:
        summary = f"membership read through {source.value}"
        if tried:
            summary += " (" + "; ".join(tried) + ")"
        return Check("cluster_source", Status.OK, summary,
                     perfdata={f"source_{source.value}": 1})

    def _unknown_checks(self, tried: list[str]) -> tuple[Check, ...]:
        self._suspects = frozenset()
        why = "; ".join(tried) or "no source configured"
        hint = ("the agent reads membership over Erlang distribution (cookie), MongooseIM's "
                "GraphQL admin API ([cluster] graphql_url) or mongooseimctl ([cluster] ctl_path)")
        unread = "membership not read"
        return (
            Check("cluster_source", Status.CRITICAL, f"no source answered: {why}", hint=hint),
            Check("cluster_mnesia", Status.UNKNOWN, unread, affects_readiness=True),
            Check("cluster_partition", Status.UNKNOWN, unread, affects_readiness=True),
            Check("cluster_members", Status.UNKNOWN, unread, affects_readiness=True),
        )

    def _partition_check(
        self,
        mnesia: MnesiaView | None,
        connected: Sequence[str] | None,
        own: str | None,
        samples: list[Sample],
    ) -> Check:
        if mnesia is None:
            self._suspects = frozenset()
            return Check("cluster_partition", Status.OK, "mnesia not in use: no mnesia "
                         "partition possible", affects_readiness=True)
        if connected is None:
            self._suspects = frozenset()
            return Check("cluster_partition", Status.UNKNOWN,
                         "not checked: only a distribution source sees which members are "
                         "connected", affects_readiness=True)
        suspects = frozenset(partitioned_members(mnesia, connected, own))
        confirmed = sorted(suspects & self._suspects)
        self._suspects = suspects
        samples.append(Sample("mongooseim_cluster_partitioned", int(bool(confirmed))))
        if confirmed:
            return Check(
                "cluster_partition", Status.CRITICAL,
                f"partitioned: {', '.join(confirmed)} connected but not running with this node "
                "in mnesia",
                hint="mnesia will not merge the halves by itself (inconsistent_database): "
                "drain this side, restart the nodes of the side to discard so they rejoin, "
                "and check the log for the partition event",
                affects_readiness=True,
            )
        detail = "no partition"
        if suspects:
            detail += f" ({', '.join(sorted(suspects))} connected but not yet running: "
            detail += "a partition if it persists on the next run)"
        return Check("cluster_partition", Status.OK, detail, affects_readiness=True)

    def _members_check(self, running: Sequence[str], expected: Sequence[str]) -> Check:
        need = self._settings.min_running_members
        missing = [m for m in expected if m not in set(running)]
        summary = f"{len(running)} members running (minimum {need})"
        if missing:
            summary += f"; not running: {', '.join(missing)}"
        if len(running) < need:
            return Check("cluster_members", Status.CRITICAL, summary,
                         hint="too few members run for this node to take traffic: start the "
                         "stopped members or check their logs",
                         perfdata={"running_members": len(running)}, affects_readiness=True)
        status = Status.WARNING if missing else Status.OK
        return Check("cluster_members", status, summary,
                     hint="an expected member is not running: start it, or remove it from "
                     "the cluster (mongooseimctl remove_from_cluster) if it is gone for good"
                     if missing else "",
                     perfdata={"running_members": len(running)}, affects_readiness=True)


def _members_and_running(
    mnesia: MnesiaView | None, cets: CetsView | None, own: str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if mnesia is not None:
        return mnesia.db_nodes, mnesia.running_db_nodes
    if cets is not None:
        nodes = {own} if own is not None else set()
        available = set(cets.nodes.get(CetsState.AVAILABLE, ())) | nodes
        for state in (CetsState.DISCOVERED, CetsState.JOINED, CetsState.UNAVAILABLE):
            nodes.update(cets.nodes.get(state, ()))
        return tuple(sorted(nodes | available)), tuple(sorted(available))
    return (), ()


def _mnesia_check(mnesia: MnesiaView | None, cets: CetsView | None,
                  server_running: bool | None) -> Check:
    if server_running is False:
        return Check("cluster_mnesia", Status.CRITICAL, "MongooseIM reports NOT_RUNNING",
                     hint="the VM is up but the application is not: check the log",
                     affects_readiness=True)
    if mnesia is None:
        summary = "mnesia not in use (CETS)" if cets is not None else "mnesia not reported"
        return Check("cluster_mnesia", Status.OK, summary, affects_readiness=True)
    if not mnesia.running:
        return Check("cluster_mnesia", Status.CRITICAL, f"mnesia is_running = {mnesia.is_running}",
                     hint="the node is not in its cluster: check the log for mnesia errors; "
                     "a node that cannot load its tables waits for the other members",
                     affects_readiness=True)
    return Check("cluster_mnesia", Status.OK,
                 f"mnesia running; {len(mnesia.running_db_nodes)} of {len(mnesia.db_nodes)} "
                 "members running" + (f", stopped: {', '.join(mnesia.stopped_db_nodes)}"
                                      if mnesia.stopped_db_nodes else ""),
                 perfdata={"db_nodes": len(mnesia.db_nodes),
                           "running_db_nodes": len(mnesia.running_db_nodes)},
                 affects_readiness=True)


def _cets_check(cets: CetsView) -> Check:
    if cets.healthy:
        return Check("cluster_cets", Status.OK,
                     f"CETS: {cets.count(CetsState.JOINED)} joined, "
                     f"{cets.count(CetsState.AVAILABLE)} available, discovery works")
    problems = []
    if not cets.discovery_works:
        problems.append("discovery does not work")
    for state in (CetsState.UNAVAILABLE, CetsState.CONFLICT, CetsState.WITHOUT_DISCO):
        if cets.nodes.get(state):
            problems.append(f"{state.value}: {', '.join(cets.nodes[state])}")
    if cets.remote_table_trouble:
        problems.append(f"tables differ on {', '.join(cets.remote_table_trouble)}")
    return Check("cluster_cets", Status.WARNING, "CETS: " + "; ".join(problems),
                 hint="check the discovery backend (RDBMS table or node list file) and the "
                 "log for what=nodedown / node_reconnects")
