"""Which collectors exist, how config builds them, and the metric contract they declare."""

from __future__ import annotations

from mongooseim_agent.collectors import fds
from mongooseim_agent.collectors.base import Collector
from mongooseim_agent.config import Config
from mongooseim_agent.metrics import AGENT_METRICS, Contract, MetricSpec
from mongooseim_agent.mongooseim.discovery import NodeTracker

METRIC_GROUPS: tuple[tuple[MetricSpec, ...], ...] = (
    AGENT_METRICS,
    fds.METRICS,
)


def contract() -> Contract:
    return Contract(METRIC_GROUPS)


def build_collectors(config: Config, tracker: NodeTracker) -> list[Collector]:
    """Every collector for `config`; the fd collector refreshes `tracker` for the others."""
    return [
        fds.FdCollector(config.fds, tracker),
    ]
