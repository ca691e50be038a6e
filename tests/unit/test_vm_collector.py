"""VM table checks from given readings (the real node is in the integration tests)."""

from __future__ import annotations

from mongooseim_agent.collectors.vm import VmCollector
from mongooseim_agent.config import VmSection
from mongooseim_agent.erlang.connection import Query
from mongooseim_agent.erlang.etf import Atom, Term
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.snapshot import Sample, Status

NODE = NodeProcess(pid=1, name="mongooseim@h", longnames=False, uid=0, start_ticks=0)


class Readings:
    """Answers the allow-listed queries from a table: stands in for NodeLink."""

    def __init__(self, answers: dict[Query, Term]) -> None:
        self.answers = answers

    def node(self) -> NodeProcess:
        return NODE

    async def call(self, query: Query, time_limit: float) -> Term:
        return self.answers[query]


def collector(port_count: int, process_count: int = 10, port_limit: Term = 1000) -> VmCollector:
    readings = Readings({Query.PORT_COUNT: port_count, Query.PORT_LIMIT: port_limit,
                         Query.PROCESS_COUNT: process_count, Query.PROCESS_LIMIT: 1000})
    return VmCollector(VmSection(), readings)  # type: ignore[arg-type]


async def test_port_table_thresholds() -> None:
    """80% warns, 90% is critical and takes the node out of load balancing."""
    for used, status in [(100, Status.OK), (800, Status.WARNING), (950, Status.CRITICAL)]:
        snapshot = await collector(used).collect()
        port = next(c for c in snapshot.checks if c.name == "vm_port_table")
        assert port.status is status
        assert port.affects_readiness
        assert f"{used} of 1000 ports" in port.summary


async def test_process_table_check() -> None:
    """The process table is checked the same way, without touching readiness."""
    snapshot = await collector(1, process_count=999).collect()
    check = next(c for c in snapshot.checks if c.name == "vm_process_table")
    assert check.status is Status.CRITICAL
    assert not check.affects_readiness


async def test_unexpected_reply_is_unknown() -> None:
    """A reply of the wrong shape is reported, not raised."""
    snapshot = await collector(1, port_limit=Atom("undefined")).collect()
    assert snapshot.samples == (Sample("mongooseim_dist_auth_success", 1),)
    assert snapshot.checks[0].status is Status.UNKNOWN
    assert "expected an integer" in snapshot.checks[0].summary


async def test_out_of_range_reply_drops_only_that_reading() -> None:
    """port_count answered as 10**400: that reading is dropped and counted, the port check is
    UNKNOWN, and every other reading and check stands."""
    snapshot = await collector(10**400).collect()
    values = {s.metric: s.value for s in snapshot.samples}
    assert "mongooseim_vm_ports" not in values
    assert values["mongooseim_vm_port_limit"] == 1000
    assert values["mongooseim_vm_processes"] == 10
    assert snapshot.dropped == 1
    checks = {c.name: c.status for c in snapshot.checks}
    assert checks == {"vm_port_table": Status.UNKNOWN, "vm_process_table": Status.OK}
