"""The hidden-node client against real OTP nodes, and the faults the issue lists."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from mongooseim_agent.collectors.vm import VmCollector
from mongooseim_agent.config import VmSection
from mongooseim_agent.erlang.connection import Query
from mongooseim_agent.erlang.dist import DistClient, DistSettings, check_auth, connect
from mongooseim_agent.erlang.errors import (
    ConnectionLost,
    CookieRejected,
    DistTimeout,
    HandshakeFailed,
    NodeNotRegistered,
)
from mongooseim_agent.erlang.etf import Atom
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.cookie import resolve_cookie
from mongooseim_agent.mongooseim.nodelink import NodeLink
from tests.integration.erlang.erlnodes import (
    Epmd,
    ErlNode,
    NodeSpec,
    assert_not_leaked,
    frozen,
    new_cookie,
    unique,
)

pytestmark = pytest.mark.integration

CALL_TIMEOUT = 2.0


def settings(epmd: Epmd, **overrides: float) -> DistSettings:
    values: dict[str, float] = {"connect_timeout": 1.0, **overrides}
    return DistSettings(epmd_port=epmd.port, **values)  # type: ignore[arg-type]


async def test_sname_node_with_setcookie(
    epmd: Epmd, node_a: ErlNode, cluster_cookie: Secret
) -> None:
    """Every allow-listed call answers, with the values the node itself reports."""
    client = DistClient(node_a.name, cluster_cookie, settings=settings(epmd))
    try:
        for query, expression in [
            (Query.PORT_LIMIT, "erlang:system_info(port_limit)."),
            (Query.PROCESS_LIMIT, "erlang:system_info(process_limit)."),
            (Query.DB_NODES, "mnesia:system_info(db_nodes)."),
            (Query.RUNNING_DB_NODES, "mnesia:system_info(running_db_nodes)."),
            (Query.MNESIA_IS_RUNNING, "mnesia:system_info(is_running)."),
        ]:
            assert await client.call(query, CALL_TIMEOUT) == node_a.eval(expression)
        for query in (Query.PORT_COUNT, Query.PROCESS_COUNT):
            assert isinstance(await client.call(query, CALL_TIMEOUT), int)
        assert client.own_name == "mongooseim_agent_1@" + node_a.name.split("@")[1]
        # Hidden: the node lists us only among hidden nodes.
        assert Atom(client.own_name) not in node_a.eval("nodes().")  # type: ignore[operator]
        assert Atom(client.own_name) in node_a.eval("nodes(hidden).")  # type: ignore[operator]
        assert client.own_name not in await client.call(Query.NODES, CALL_TIMEOUT)  # type: ignore[operator]
    finally:
        await client.close()


async def test_name_node_with_home_cookie(epmd: Epmd, node_b: ErlNode) -> None:
    """A -name node whose cookie is its user's ~/.erlang.cookie: found and accepted."""
    process = node_b.process()
    assert process.cookie is None
    cookie = resolve_cookie(process, None, home=lambda uid: node_b.home)
    link = NodeLink(lambda: process, settings=settings(epmd),
                    cookie=lambda node, path: resolve_cookie(node, path,
                                                             home=lambda uid: node_b.home))
    try:
        limit = await link.call(Query.PROCESS_LIMIT, CALL_TIMEOUT)
        assert limit == node_b.eval("erlang:system_info(process_limit).")
        same = cookie == Secret(str(node_b.eval("erlang:get_cookie().")))
        assert same, "resolved cookie differs from the node's"
        hidden = node_b.eval("nodes(hidden).")
        assert Atom("mongooseim_agent_1@127.0.0.1") in hidden  # type: ignore[operator]
    finally:
        await link.close()


async def test_wrong_cookie_is_rejected(epmd: Epmd, node_c: ErlNode) -> None:
    """A wrong cookie is CookieRejected, within the timeout, and the node logs the rejection."""
    wrong = new_cookie()
    start = time.monotonic()
    with pytest.raises(CookieRejected) as caught:
        await check_auth(node_c.name, wrong, settings=settings(epmd))
    assert time.monotonic() - start < 1.0
    assert_not_leaked([str(caught.value), repr(caught.value)], wrong, node_c.spec.cookie)
    deadline = time.monotonic() + 5
    while not any("rejected" in line for line in node_c.drain_output()):
        assert time.monotonic() < deadline, "the node did not log the rejection"


async def test_wrong_cookie_backs_off(epmd: Epmd, node_c: ErlNode) -> None:
    """After a rejection the client does not retry until the backoff has passed."""
    now = [100.0]
    client = DistClient(node_c.name, new_cookie(), settings=settings(epmd),
                        clock=lambda: now[0])
    with pytest.raises(CookieRejected):
        await client.call(Query.PORT_COUNT, CALL_TIMEOUT)
    before = len([line for line in node_c.drain_output() if "rejected" in line])
    with pytest.raises(CookieRejected, match="next attempt in"):
        await client.call(Query.PORT_COUNT, CALL_TIMEOUT)
    assert len([line for line in node_c.drain_output() if "rejected" in line]) == before
    now[0] += 1.0
    with pytest.raises(CookieRejected, match="does not match"):
        await client.call(Query.PORT_COUNT, CALL_TIMEOUT)


async def test_peer_refusing_mid_handshake(epmd: Epmd, fresh_node: ErlNode) -> None:
    """A node whose allow list excludes us sends not_allowed and closes: HandshakeFailed."""
    assert fresh_node.eval("net_kernel:allow(['nobody@nowhere']).") == "ok"
    assert fresh_node.spec.cookie is not None
    with pytest.raises(HandshakeFailed, match="not_allowed") as caught:
        await check_auth(fresh_node.name, fresh_node.spec.cookie, settings=settings(epmd))
    assert not isinstance(caught.value, CookieRejected)


async def test_peer_dying_mid_handshake(epmd: Epmd, fresh_node: ErlNode) -> None:
    """A node killed while we wait for its status frame: HandshakeFailed, not a hang."""
    assert fresh_node.spec.cookie is not None
    dist_port = epmd.names()[fresh_node.name.split("@")[0]]
    connected = asyncio.Event()

    async def open_connection(host: str, port: int) -> tuple[Any, Any]:
        streams = await asyncio.open_connection(host, port)
        if port == dist_port:
            connected.set()
        return streams

    with frozen(fresh_node.pid):
        attempt = asyncio.create_task(check_auth(
            fresh_node.name, fresh_node.spec.cookie, settings=settings(epmd),
            open_connection=open_connection))
        # The kernel accepts for the frozen VM; the client then writes its name at once.
        await asyncio.wait_for(connected.wait(), 2)
        await asyncio.sleep(0)
        assert not attempt.done()
        fresh_node.proc.kill()
    fresh_node.proc.wait(5)
    with pytest.raises(HandshakeFailed, match="closed the connection while we waited for "
                                              "the status"):
        await attempt


async def test_frozen_node(epmd: Epmd, fresh_node: ErlNode) -> None:
    """A wedged VM: a connect times out in connect_timeout, an rpc in its own limit."""
    assert fresh_node.spec.cookie is not None
    client = DistClient(fresh_node.name, fresh_node.spec.cookie,
                        settings=settings(epmd, connect_timeout=0.5))
    try:
        await client.call(Query.PORT_COUNT, CALL_TIMEOUT)
        with frozen(fresh_node.pid):
            start = time.monotonic()
            with pytest.raises(DistTimeout, match=r"no reply in 0\.3s"):
                await client.call(Query.PORT_COUNT, 0.3)
            assert time.monotonic() - start < 0.6
            start = time.monotonic()
            with pytest.raises(DistTimeout, match="handshaking"):
                await check_auth(fresh_node.name, fresh_node.spec.cookie,
                                 settings=settings(epmd, connect_timeout=0.5))
            assert time.monotonic() - start < 1.0
        # Thawed, the same connection serves again.
        assert isinstance(await client.call(Query.PORT_COUNT, CALL_TIMEOUT), int)
        assert client.connects == 1
    finally:
        await client.close()


async def test_ticks_keep_an_idle_connection(epmd: Epmd, erl_workdir: Path,
                                             cluster_cookie: Secret) -> None:
    """With net_ticktime 1 s, an idle connection survives 3 s because we answer ticks."""
    node = ErlNode(NodeSpec(unique("tick"), cluster_cookie,
                            extra_args=("-kernel", "net_ticktime", "1")), epmd, erl_workdir)
    client = DistClient(node.name, cluster_cookie, settings=settings(epmd))
    try:
        await client.call(Query.PORT_COUNT, CALL_TIMEOUT)
        await asyncio.sleep(3.0)
        assert client.connected
        assert Atom(client.own_name or "") in node.eval("nodes(hidden).")  # type: ignore[operator]
        await client.call(Query.PORT_COUNT, CALL_TIMEOUT)
        assert client.connects == 1
    finally:
        await client.close()
        node.stop()


async def test_silent_peer_is_dropped_after_tick_timeout(epmd: Epmd, fresh_node: ErlNode) -> None:
    """A peer that sends nothing (not even ticks) for tick_timeout is declared lost."""
    assert fresh_node.spec.cookie is not None
    client = DistClient(fresh_node.name, fresh_node.spec.cookie,
                        settings=settings(epmd, tick_timeout=0.5))
    try:
        await client.call(Query.PORT_COUNT, CALL_TIMEOUT)
        with frozen(fresh_node.pid):
            deadline = time.monotonic() + 3
            while client.connected:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        assert isinstance(await client.call(Query.PORT_COUNT, CALL_TIMEOUT), int)
        assert client.connects == 2
    finally:
        await client.close()


async def test_reconnects_after_node_restart(epmd: Epmd, erl_workdir: Path,
                                             cluster_cookie: Secret) -> None:
    """Node gone: ConnectionLost, then NodeNotRegistered with backoff; back: reconnected."""
    spec = NodeSpec(unique("restart"), cluster_cookie)
    node = ErlNode(spec, epmd, erl_workdir)
    now = [0.0]
    client = DistClient(node.name, cluster_cookie, settings=settings(epmd),
                        clock=lambda: now[0])
    try:
        await client.call(Query.PORT_COUNT, CALL_TIMEOUT)
        node.stop()
        deadline = time.monotonic() + 5
        while client.connected:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        with pytest.raises((NodeNotRegistered, ConnectionLost)):
            await client.call(Query.PORT_COUNT, CALL_TIMEOUT)
        node = ErlNode(spec, epmd, erl_workdir)
        with pytest.raises((NodeNotRegistered, ConnectionLost), match="next attempt"):
            await client.call(Query.PORT_COUNT, CALL_TIMEOUT)
        now[0] += 60
        assert isinstance(await client.call(Query.PORT_COUNT, CALL_TIMEOUT), int)
        assert client.connects == 2
    finally:
        await client.close()
        node.stop()


async def test_frame_size_limit(epmd: Epmd, node_a: ErlNode, cluster_cookie: Secret) -> None:
    """A frame over the limit drops the connection instead of being read."""
    client = DistClient(node_a.name, cluster_cookie,
                        settings=settings(epmd, max_frame=40))
    try:
        with pytest.raises(ConnectionLost, match="limit 40"):
            await client.call(Query.DB_NODES, CALL_TIMEOUT)
    finally:
        await client.close()


async def test_name_pool_shares_a_node(epmd: Epmd, node_a: ErlNode, cluster_cookie: Secret) -> None:
    """Two agents on one host take different pool names instead of evicting each other."""
    first = DistClient(node_a.name, cluster_cookie, settings=settings(epmd))
    second = DistClient(node_a.name, cluster_cookie, settings=settings(epmd))
    try:
        await first.call(Query.PORT_COUNT, CALL_TIMEOUT)
        await second.call(Query.PORT_COUNT, CALL_TIMEOUT)
        assert first.own_name != second.own_name
        await first.call(Query.PORT_COUNT, CALL_TIMEOUT)
        assert (first.connects, second.connects) == (1, 1)
    finally:
        await first.close()
        await second.close()


async def test_full_pool_takes_over_the_first_name(epmd: Epmd, fresh_node: ErlNode) -> None:
    """With every name taken, the client replaces the connection of its preferred name."""
    assert fresh_node.spec.cookie is not None
    one = DistSettings(epmd_port=epmd.port, pool_size=1, connect_timeout=1.0)
    cookie = fresh_node.spec.cookie
    held, _ = await connect(fresh_node.name, cookie, settings=one)
    try:
        taker, _ = await connect(fresh_node.name, cookie, settings=one)
        assert taker.own_name == held.own_name
        assert isinstance(await taker.call(Query.PORT_COUNT, CALL_TIMEOUT), int)
        await taker.close()
    finally:
        await held.close()


async def test_atoms_do_not_leak_over_1000_polls(epmd: Epmd, fresh_node: ErlNode) -> None:
    """1,000 polls with reconnects (ours and the node's) add at most pool-size atoms, and
    nodes() never lists the agent."""
    pool = 4
    node = fresh_node
    process = node.process()
    link = NodeLink(lambda: process,
                    settings=DistSettings(epmd_port=epmd.port, pool_size=pool))
    collector = VmCollector(VmSection(), link)
    atom_count = "erlang:system_info(atom_count)."
    # Load what the polls and the oracle touch before counting: the first incoming connection
    # loads dist_util (~57 atoms of its own), which is not a leak.
    for expression in (atom_count, "code:ensure_loaded(dist_util).", "nodes().",
                       "nodes(hidden).", "erlang:disconnect_node(x@y)."):
        node.eval(expression)
    before = node.eval(atom_count)
    assert isinstance(before, int)
    try:
        for poll in range(1000):
            snapshot = await collector.collect()
            assert len(snapshot.samples) == 5, snapshot.checks
            if poll % 100 == 50:
                await link.close()
            if poll % 100 == 99:
                assert node.eval("nodes().") == []
                hidden = node.eval("nodes(hidden).")
                assert isinstance(hidden, list)
                assert len(hidden) == 1
                assert str(hidden[0]).startswith("mongooseim_agent_")
                assert node.eval(f"erlang:disconnect_node('{hidden[0]}').") == "true"
        after = node.eval(atom_count)
        assert isinstance(after, int)
        # At least our first name is new to the node (the count is live), at most the pool.
        assert 1 <= after - before <= pool, f"{after - before} atoms added"
    finally:
        await link.close()
