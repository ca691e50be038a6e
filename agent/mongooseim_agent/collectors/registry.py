"""Which collectors exist, how config builds them, and the metric contract they declare."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mongooseim_agent.collectors import fds, logs, probes, vm
from mongooseim_agent.collectors.base import Collector
from mongooseim_agent.config import Config
from mongooseim_agent.erlang.dist import DistSettings
from mongooseim_agent.metrics import AGENT_METRICS, Contract, MetricSpec
from mongooseim_agent.mongooseim.discovery import NodeLocator, NodeTracker
from mongooseim_agent.mongooseim.nodelink import NodeLink

METRIC_GROUPS: tuple[tuple[MetricSpec, ...], ...] = (
    AGENT_METRICS,
    fds.METRICS,
    vm.METRICS,
    probes.METRICS,
    logs.METRICS,
)


def contract() -> Contract:
    return Contract(METRIC_GROUPS)


@dataclass
class Assembly:
    """The collectors built from one config and what must be closed with them.

    The first collector refreshes node discovery, which the others read: runners start it
    first.
    """

    collectors: list[Collector]
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for close in self.closers:
            await close()


def build(config: Config, tracker: NodeTracker) -> Assembly:
    link = NodeLink(
        lambda: tracker.current,
        config.node.cookie_file,
        settings=DistSettings(
            epmd_port=config.probes.epmd_port, connect_timeout=config.probes.timeout
        ),
    )
    collectors: list[Collector] = [
        fds.FdCollector(config.fds, tracker),
        vm.VmCollector(config.vm, link),
        probes.ProbesCollector(config.probes, link),
        logs.LogsCollector(
            config.logs,
            config.agent.state_dir,
            release_root=lambda: config.node.release_root or (
                tracker.current.release_root if tracker.current is not None else None
            ),
        ),
    ]
    return Assembly(collectors, [link.close])


def default_assembly(config: Config) -> Assembly:
    locator = NodeLocator(release_root=config.node.release_root)
    return build(config, NodeTracker(locator, config.node.name))
