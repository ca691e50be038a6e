"""The metric contract: every exposed name is declared once, with its type, help and labels."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass


class Kind(enum.Enum):
    GAUGE = "gauge"
    COUNTER = "counter"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A declared metric. Counter names carry their `_total` suffix here, as exposed."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


def gauge(name: str, help_text: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, Kind.GAUGE, help_text, labels)


def counter(name: str, help_text: str, *labels: str) -> MetricSpec:
    if not name.endswith("_total"):
        raise ValueError(f"counter {name} must end in _total")
    return MetricSpec(name, Kind.COUNTER, help_text, labels)


AGENT_METRICS: tuple[MetricSpec, ...] = (
    gauge("mongooseim_agent_build_info", "Agent version; always 1.", "version"),
    gauge(
        "mongooseim_agent_collector_success",
        "1 if the collector's last run succeeded, 0 if it failed or timed out.",
        "collector",
    ),
    gauge(
        "mongooseim_agent_collector_duration_seconds",
        "Duration of the collector's last run.",
        "collector",
    ),
    counter(
        "mongooseim_agent_samples_dropped_total",
        "Samples a collector produced with an unusable value (not finite, or beyond 2^63), "
        "dropped instead of failing the scrape.",
        "collector",
    ),
    gauge(
        "mongooseim_agent_config_reload_success",
        "1 if the last configuration reload (SIGHUP) succeeded.",
    ),
    gauge(
        "mongooseim_agent_config_last_reload_success_timestamp_seconds",
        "When the configuration was last loaded successfully.",
    ),
    gauge("mongooseim_node_ready", "What /node/ready answers: 1 ready, 0 not ready or drained."),
    gauge("mongooseim_node_drained",
          "1 while the node is drained (mongooseim-agent drain): /node/ready answers 503."),
    gauge("mongooseim_node_drained_since_timestamp_seconds",
          "When the node was drained (Unix seconds); 0 while it is not."),
    gauge("mongooseim_agent_http_connections", "HTTP connections open to the agent."),
    gauge(
        "mongooseim_agent_http_connections_max",
        "HTTP connections allowed at once ([web] max_connections, below nofile - fd_reserve).",
    ),
    counter(
        "mongooseim_agent_http_connections_closed_total",
        "HTTP connections closed by the agent's defences, by reason (header_timeout, evicted, "
        "refused, tls_handshake_failed).",
        "reason",
    ),
    counter(
        "mongooseim_agent_http_accept_errors_total",
        "accept() failures on the HTTP listeners (EMFILE, ENFILE, ENOBUFS, ENOMEM).",
    ),
    counter(
        "mongooseim_agent_http_requests_refused_total",
        "HTTP requests refused by the web config, by reason (unauthorized, rate_limited).",
        "reason",
    ),
    gauge(
        "mongooseim_agent_web_config_reload_success",
        "1 if the web config file (--web.config.file) last loaded, 0 if a change was refused.",
    ),
)


@dataclass(frozen=True, slots=True)
class Rename:
    """A metric name users may have in dashboards or alerts that the agent no longer exposes."""

    old: str
    new: str
    why: str


# Listed in docs/metrics.md so that users can update their queries.
RENAMED: tuple[Rename, ...] = (
    Rename(
        '`{node="..."}` on mongooseim_node_up, mongooseim_node_start_time_seconds, '
        "mongooseim_process_*, mongooseim_vm_*",
        "the same names without the label; `mongooseim_node_info{erlang_node}` names the node",
        "one agent watches one node (`instance` identifies it), and `node` collides with the "
        "label Kubernetes users relabel in",
    ),
    Rename(
        "mongooseim_vm_port_count",
        "mongooseim_vm_ports",
        "promtool check metrics rejects a gauge ending in `_count` (a histogram/summary suffix)",
    ),
    Rename("mongooseim_vm_process_count", "mongooseim_vm_processes", "as above"),
    Rename(
        '`{host="..."}` on mongooseim_epmd_up',
        "mongooseim_epmd_up",
        "an agent probes its own host's epmd: the label carried nothing",
    ),
    Rename(
        '`{node="..."}` on mongooseim_dist_port, mongooseim_dist_port_in_range',
        "the same names without the label",
        "one agent watches one node, as above",
    ),
    Rename(
        'mongooseim_probe_success / _duration_seconds `{name="peer_epmd"|"peer_dist"|'
        '"peer_auth", target=PEER}`',
        'mongooseim_cluster_peer_up{peer=PEER, check="epmd"|"dist"|"auth"}',
        "one series per peer state instead of two names for it; probe_* keeps the listeners, "
        "epmd and dist",
    ),
)


class Contract(Mapping[str, MetricSpec]):
    """All declared metrics by name; a name declared twice is a programming error."""

    def __init__(self, groups: Iterable[Iterable[MetricSpec]]) -> None:
        specs: dict[str, MetricSpec] = {}
        for group in groups:
            for spec in group:
                if spec.name in specs:
                    raise ValueError(f"metric {spec.name} declared twice")
                specs[spec.name] = spec
        self._specs = specs

    def __getitem__(self, name: str) -> MetricSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)
