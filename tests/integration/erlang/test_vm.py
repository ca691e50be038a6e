"""VM table metrics read over distribution from a real node."""

from __future__ import annotations

import time

import pytest

from mongooseim_agent.collectors.vm import METRICS, VmCollector
from mongooseim_agent.config import VmSection
from mongooseim_agent.erlang.dist import DistSettings
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.nodelink import NodeLink
from mongooseim_agent.snapshot import Status
from tests.integration.erlang.erlnodes import (
    Epmd,
    ErlNode,
    assert_not_leaked,
    frozen,
    new_cookie,
)

pytestmark = pytest.mark.integration


def link(node: NodeProcess | None, epmd: Epmd) -> NodeLink:
    return NodeLink(lambda: node, settings=DistSettings(epmd_port=epmd.port, connect_timeout=1))


async def test_tables_match_the_node(epmd: Epmd, node_a: ErlNode) -> None:
    """Limits are the node's live values; counts are plausible; checks are OK."""
    node_link = link(node_a.process(), epmd)
    try:
        snapshot = await VmCollector(VmSection(), node_link).collect()
    finally:
        await node_link.close()
    samples = {s.metric: s.value for s in snapshot.samples}
    assert set(samples) == {m.name for m in METRICS}
    assert all(not s.labels for s in snapshot.samples)
    assert samples["mongooseim_vm_port_limit"] == node_a.eval("erlang:system_info(port_limit).")
    assert samples["mongooseim_vm_process_limit"] == node_a.eval(
        "erlang:system_info(process_limit).")
    assert 0 < samples["mongooseim_vm_ports"] < samples["mongooseim_vm_port_limit"]
    assert 0 < samples["mongooseim_vm_processes"] < samples["mongooseim_vm_process_limit"]
    assert samples["mongooseim_dist_auth_success"] == 1
    assert {c.name: c.status for c in snapshot.checks} == {
        "vm_port_table": Status.OK, "vm_process_table": Status.OK}


async def test_wrong_cookie_is_critical(epmd: Epmd, node_a: ErlNode) -> None:
    """A rejected cookie: auth 0 and no table samples, a critical check that says so
    (without the cookie)."""
    real = node_a.process()
    wrong = new_cookie()
    process = NodeProcess(pid=real.pid, name=real.name, longnames=False, uid=real.uid,
                          start_ticks=0, cookie=wrong)
    node_link = link(process, epmd)
    try:
        snapshot = await VmCollector(VmSection(), node_link).collect()
    finally:
        await node_link.close()
    assert [(s.metric, s.value) for s in snapshot.samples] == [
        ("mongooseim_dist_auth_success", 0)]
    (only,) = snapshot.checks
    assert only.status is Status.CRITICAL
    assert "cookie" in only.summary
    assert_not_leaked([only.summary, only.hint], wrong, node_a.spec.cookie)


async def test_no_node_and_node_down(epmd: Epmd, node_a: ErlNode) -> None:
    """Nothing discovered, or a node epmd does not know: UNKNOWN, no samples."""
    for process in (None, NodeProcess(pid=1, name="gone_x@127.0.0.1", longnames=True,
                                      uid=0, start_ticks=0, cookie=Secret("x"))):
        node_link = link(process, epmd)
        try:
            snapshot = await VmCollector(VmSection(), node_link).collect()
        finally:
            await node_link.close()
        assert snapshot.samples == ()
        assert [c.status for c in snapshot.checks] == [Status.UNKNOWN]


async def test_wedged_node_ends_within_timeout(epmd: Epmd, fresh_node: ErlNode) -> None:
    """A frozen VM: the collector answers UNKNOWN inside its timeout, not cancelled."""
    node_link = link(fresh_node.process(), epmd)
    collector = VmCollector(VmSection(interval=5, timeout=1), node_link)
    try:
        assert len((await collector.collect()).samples) == 5
        with frozen(fresh_node.pid):
            start = time.monotonic()
            snapshot = await collector.collect()
            assert time.monotonic() - start < collector.timeout
        assert snapshot.samples == ()
        assert snapshot.checks[0].status is Status.UNKNOWN
        assert "no answer" in snapshot.checks[0].summary
        assert len((await collector.collect()).samples) == 5
    finally:
        await node_link.close()
