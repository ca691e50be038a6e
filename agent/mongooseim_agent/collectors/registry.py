"""Which collectors exist, how config builds them, and the metric contract they declare."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mongooseim_agent import drain
from mongooseim_agent.collectors import (
    audit,
    cluster,
    fds,
    loadbalancer,
    logs,
    probes,
    process,
    vm,
)
from mongooseim_agent.collectors.base import Collector
from mongooseim_agent.config import Config
from mongooseim_agent.erlang.dist import DistSettings
from mongooseim_agent.metrics import AGENT_METRICS, Contract
from mongooseim_agent.mongooseim.audit.erlmem import ErlPortMemory
from mongooseim_agent.mongooseim.discovery import NodeLocator, NodeTracker
from mongooseim_agent.mongooseim.nodelink import NodeLink
from mongooseim_agent.mongooseim.nodewatch import NodeWatch

# Every collector type `build` makes (a test holds the two together). The metric contract is
# what these declare in their `metrics`, plus the agent's own: there is no other list.
COLLECTOR_TYPES: tuple[type[Collector], ...] = (
    fds.FdCollector,
    process.ProcessCollector,
    vm.VmCollector,
    probes.ProbesCollector,
    logs.LogsCollector,
    loadbalancer.LoadBalancerCollector,
    cluster.ClusterCollector,
    audit.AuditCollector,
)


def contract() -> Contract:
    return Contract([AGENT_METRICS, *(kind.metrics for kind in COLLECTOR_TYPES)])


@dataclass
class Assembly:
    """The collectors built from one config, the node watch they read, and what to close.

    Whoever runs the collectors (daemon, `check`) refreshes `watch` before the first of them.
    """

    collectors: list[Collector]
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    watch: NodeWatch | None = None

    async def close(self) -> None:
        for close in self.closers:
            await close()


def build(config: Config, watch: NodeWatch) -> Assembly:
    link = NodeLink(
        lambda: watch.current,
        config.node.cookie_file,
        settings=DistSettings(
            epmd_port=config.probes.epmd_port, connect_timeout=config.probes.timeout
        ),
    )

    def release_root() -> Path | None:
        if config.node.release_root is not None:
            return config.node.release_root
        return watch.current.release_root if watch.current is not None else None

    collectors: list[Collector] = [
        fds.FdCollector(config.fds, watch),
        *([process.ProcessCollector(config.process, watch)] if config.process.enabled else []),
        vm.VmCollector(config.vm, link),
        probes.ProbesCollector(config.probes, link),
        logs.LogsCollector(
            config.logs,
            config.agent.state_dir,
            release_root=lambda: config.node.release_root or (
                watch.current.release_root if watch.current is not None else None
            ),
        ),
        loadbalancer.LoadBalancerCollector(
            config.load_balancer, config.probes.listeners, lambda: watch.current, link,
            drained=lambda: drain.marker(config.agent.state_dir).exists(),
        ),
        cluster.ClusterCollector(config.cluster, link, release_root=release_root),
    ]
    auditor = audit.AuditCollector(
        config, lambda: watch.current, link, node_problem=lambda: watch.discovery.problem,
        port_memory=ErlPortMemory(cache_file=audit.cache_file(config.agent.state_dir)),
        cluster=audit.cluster_source(
            cluster.ClusterCollector(config.cluster, link, release_root=release_root)),
    )
    collectors.append(auditor)
    return Assembly(collectors, [auditor.close, link.close], watch)


def default_assembly(config: Config) -> Assembly:
    locator = NodeLocator(release_root=config.node.release_root)
    return build(config, NodeWatch(NodeTracker(locator, config.node.name), config.node.interval))
