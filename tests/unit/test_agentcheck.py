"""HAProxy agent-check answers and the listener's bounds (real sockets on loopback)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from structlog.testing import capture_logs

from mongooseim_agent.config import ConfigError, LoadBalancerSection, parse_config
from mongooseim_agent.loadbalancer.agentcheck import (
    AgentCheckServer,
    agent_reply,
    fd_headroom_weight,
    store_weight,
)
from mongooseim_agent.loadbalancer.readiness import Condition, Verdict
from mongooseim_agent.snapshot import Sample, Snapshot
from mongooseim_agent.store import Store
from tests.support.mimnode import free_port

DRAINED = Condition("drained", False, "kernel upgrade", "drained")
FDS = Condition("node_fds", False, "950 of 1024 fds open\n#evil", "critical")


def test_replies_for_ready_drained_and_down() -> None:
    assert agent_reply(Verdict(True), 100) == "up ready 100%\n"
    assert agent_reply(Verdict(True), 37) == "up ready 37%\n"
    assert agent_reply(Verdict(False, (DRAINED,), drained=True), 100) == "drain\n"
    # Down wins over drain, and the reason stays on one printable line.
    assert agent_reply(Verdict(False, (DRAINED, FDS), drained=True), 100) == (
        "down #node_fds: 950 of 1024 fds open #evil (critical)\n"
    )


def test_long_reason_is_cut() -> None:
    long = Condition("cluster_members", False, "x" * 500, "critical")
    reply = agent_reply(Verdict(False, (long,)), 100)
    assert len(reply) == len("down #") + 200 + 1 and reply.endswith("...\n")


@pytest.mark.parametrize(
    ("open_fds", "expected"), [(0, 100), (512, 100), (640, 75), (896, 25), (1024, 1), (4000, 1)]
)
def test_weight_falls_from_start_ratio_to_one_at_the_limit(open_fds: int, expected: int) -> None:
    assert fd_headroom_weight(open_fds, 1024, 0.5) == expected


def test_store_weight_only_when_enabled_and_known() -> None:
    store = Store()
    on = LoadBalancerSection(weight_by_fd_headroom=True)
    assert store_weight(store, on) == 100
    store.put(Snapshot("fds", samples=(
        Sample("mongooseim_process_open_fds", 768), Sample("mongooseim_process_max_fds", 1024),
    )))
    assert store_weight(store, on) == 50
    assert store_weight(store, LoadBalancerSection()) == 100


async def _read_all(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = await reader.read()
    writer.close()
    return data


async def test_listener_answers_and_closes_then_moves_and_stops() -> None:
    """One line then EOF; apply() with a new address rebinds; None closes."""
    server = AgentCheckServer(lambda: "up ready 100%\n")
    first = free_port()
    await server.apply(LoadBalancerSection(agent_check_address=f"127.0.0.1:{first}"))
    try:
        assert await asyncio.wait_for(_read_all(first), 5) == b"up ready 100%\n"
        second = free_port()
        await server.apply(LoadBalancerSection(agent_check_address=f"127.0.0.1:{second}"))
        assert await asyncio.wait_for(_read_all(second), 5) == b"up ready 100%\n"
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", first)
        await server.apply(LoadBalancerSection())
        assert server.bound is None
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", second)
    finally:
        await server.close()


async def test_connection_cap_and_deadline_bound_idle_clients() -> None:
    """Clients that never hang up hold a slot at most agent_check_timeout; beyond the cap
    they are closed unanswered, and the listener keeps answering afterwards."""
    server = AgentCheckServer(lambda: "drain\n")
    port = free_port()
    await server.apply(LoadBalancerSection(
        agent_check_address=f"127.0.0.1:{port}", agent_check_max_connections=4,
        agent_check_timeout=0.5,
    ))
    try:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        for reader, _ in idle:
            assert await asyncio.wait_for(reader.readline(), 5) == b"drain\n"
        # The server half-closes after its line, then waits for the client to hang up.
        started = time.monotonic()
        extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(extra_reader.read(), 5) == b""
        assert server.refused == 1
        # The held connections are closed at their 0.5 s deadline, which frees the slots.
        while (answer := await asyncio.wait_for(_read_all(port), 5)) != b"drain\n":
            assert answer == b"" and time.monotonic() - started < 3
        assert time.monotonic() - started >= 0.4
        for _, writer in [*idle, (extra_reader, extra_writer)]:
            writer.close()
    finally:
        await server.close()


async def test_port_zero_binds_a_free_port_and_logs_it() -> None:
    server = AgentCheckServer(lambda: "up ready 100%\n")
    with capture_logs() as logs:
        await server.apply(LoadBalancerSection(agent_check_address="127.0.0.1:0"))
    try:
        assert server.bound is not None and server.bound[1] > 0
        assert logs[0]["address"] == f"127.0.0.1:{server.bound[1]}"
        assert await asyncio.wait_for(_read_all(server.bound[1]), 5) == b"up ready 100%\n"
    finally:
        await server.close()


def test_agent_check_address_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"load_balancer.agent_check_address: .*'nowhere'"):
        parse_config({"load_balancer": {"agent_check_address": "nowhere"}})


async def test_address_in_use_names_the_key() -> None:
    """The daemon then exits 1 with this text ("cannot serve"), before serving anything."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        server = AgentCheckServer(lambda: "drain\n")
        with pytest.raises(OSError, match=rf"load_balancer.agent_check_address {address}: "):
            await server.apply(LoadBalancerSection(agent_check_address=address))
        assert server.bound is None
