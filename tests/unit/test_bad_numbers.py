"""One unusable number never fails /metrics or `check`: it is dropped and counted."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest

from mongooseim_agent.collectors.registry import contract
from mongooseim_agent.commands.check import collect_once, headline, overall, render_table, to_json
from mongooseim_agent.exposition import StoreCollector, agent_samples
from mongooseim_agent.metrics import MetricSpec
from mongooseim_agent.snapshot import Check, Sample, Snapshot, Status


class Hostile:
    """A collector whose node answered absurd numbers."""

    name = "vm"
    interval = 15.0
    timeout = 5.0
    metrics: tuple[MetricSpec, ...] = ()

    async def collect(self) -> Snapshot:
        return Snapshot(self.name, (Sample("mongooseim_vm_ports", 10**400),
                                    Sample("mongooseim_vm_port_limit", 65536)),
                        (Check("vm_port_table", Status.OK, "x",
                               perfdata={"port_count": 10**400, "port_limit": 65536}),))


async def test_metrics_render_without_the_bad_sample_and_count_it() -> None:
    """The scrape succeeds, the sane series is there, the bad one is not, and
    mongooseim_agent_samples_dropped_total{collector="vm"} says 1."""
    store = await collect_once([Hostile()])

    def samples() -> list[Sample]:
        return [*(s for snap in store for s in snap.samples),
                *agent_samples(store, True, dropped=store.dropped),
                Sample("mongooseim_vm_processes", float("inf"))]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(contract(), samples))
    text = generate_latest(registry).decode()
    assert "mongooseim_vm_port_limit 65536.0" in text
    assert "mongooseim_vm_ports " not in text
    assert "mongooseim_vm_processes " not in text
    assert 'mongooseim_agent_samples_dropped_total{collector="vm"} 1.0' in text


async def test_check_renders_every_format() -> None:
    """`check` prints its headline, table and JSON with the bad perfdata left out."""
    store = await collect_once([Hostile()])
    checks, snaps = store.checks(), list(store)
    status = overall(checks, snaps)
    assert "port_limit=65536" in headline(status, checks, snaps)
    assert "vm_port_table" in render_table(checks, snaps)
    assert json.loads(to_json(status, checks, snaps))["checks"][0]["perfdata"] == {
        "port_limit": 65536}
