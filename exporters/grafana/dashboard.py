"""The mongooseim-agent Grafana dashboard, built with Grafana's grafana-foundation-sdk.

`python exporters/generate.py` writes it to mongooseim-agent.json beside this file, which is
what users import. Every query selects the `mongooseim-agent` job and the dashboard's
`cluster`/`instance` variables (`node` narrows the instances by Erlang node name).
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

UID = "mongooseim-agent"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every agent series of the selected cluster(s) and instance(s).
SEL = 'job="mongooseim-agent", cluster=~"$cluster", instance=~"$instance"'

Panel = timeseries.Panel | stat.Panel | table.Panel
REF_IDS = "ABCDEFGH"


def query(expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        built = built.legend_format(legend)
    if instant:
        built = built.instant().format(PromQueryFormat.TABLE)
    return built


def graph(title: str, description: str, *targets: prometheus.Dataquery, unit: str = "short",
          width: int = 12, height: int = 8) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
             .unit(unit).span(width).height(height))
    for ref_id, target in zip(REF_IDS, targets, strict=False):
        panel = panel.with_target(target.ref_id(ref_id))
    return panel


def single(title: str, description: str, target: prometheus.Dataquery, *, width: int = 4,
           height: int = 4) -> stat.Panel:
    return (stat.Panel().title(title).description(description).datasource(DATASOURCE)
            .span(width).height(height).with_target(target.ref_id("A")))


def grid(title: str, description: str, *targets: prometheus.Dataquery, width: int = 12,
         height: int = 8) -> table.Panel:
    panel = (table.Panel().title(title).description(description).datasource(DATASOURCE)
             .span(width).height(height))
    for ref_id, target in zip(REF_IDS, targets, strict=False):
        panel = panel.with_target(target.ref_id(ref_id))
    return panel


def rows() -> list[tuple[str, list[Panel]]]:
    return [
        ("Overview", [
            single("Agents up", "Agents Prometheus scrapes successfully.",
                   query(f"sum(up{{{SEL}}})")),
            single("Nodes up", "MongooseIM nodes whose beam.smp the agents find.",
                   query(f"sum(mongooseim_node_up{{{SEL}}})")),
            single("Nodes ready", "Nodes /node/ready lets the load balancer use.",
                   query(f"sum(mongooseim_node_ready{{{SEL}}})")),
            grid("Firing alerts", "MongooseIM alerts firing now, by severity.",
                 query('sum by (alertname, severity, instance) (ALERTS{alertstate="firing", '
                       'alertname=~"MongooseIM.*", cluster=~"$cluster"})', instant=True),
                 height=4),
        ]),
        ("File descriptors", [
            graph("Open fds against the nofile limits",
                  "Open descriptors of the node's process against its own soft and hard "
                  "nofile limits (/proc/PID/limits), not the shell's ulimit -n.",
                  query(f"mongooseim_process_open_fds{{{SEL}}}", "{{instance}} open"),
                  query(f"mongooseim_process_max_fds{{{SEL}}}", "{{instance}} soft limit"),
                  query(f"mongooseim_process_max_fds_hard{{{SEL}}}",
                        "{{instance}} hard limit")),
            graph("Use of the soft limit", "Alerts: warning above 80% with under 100000 left, "
                  "critical above 90% with under 25000 left.",
                  query(f"instance:mongooseim_process_fds:usage_ratio{{{SEL}}}",
                        "{{instance}}"),
                  unit="percentunit"),
            graph("Headroom", "Descriptors left under the soft limit.",
                  query(f"instance:mongooseim_process_fds:headroom{{{SEL}}}", "{{instance}}"),
                  width=8),
            graph("Predicted time to exhaustion",
                  "At the last hour's growth rate; empty while fd use is flat or falling.",
                  query(f"instance:mongooseim_process_fds:seconds_to_exhaustion{{{SEL}}}",
                        "{{instance}}"),
                  unit="s", width=8),
            graph("Host file table", "file-nr allocated against fs.file-max (enfile when full).",
                  query(f"mongooseim_host_fds_allocated{{{SEL}}} / "
                        f"mongooseim_host_fds_max{{{SEL}}}", "{{instance}}"),
                  unit="percentunit", width=8),
        ]),
        ("Logs", [
            graph("Fault lines by pattern", "Log lines matching emfile, enfile, system_limit, "
                  "partition, nodedown, cookie_rejected, eaddrinuse ... per second.",
                  query(f"sum by (instance, pattern) "
                        f"(rate(mongooseim_log_matches_total{{{SEL}}}[$__rate_interval]))",
                        "{{instance}} {{pattern}}"),
                  unit="ops"),
            graph("Log watcher", "Lines read per second, and content lost before it was read.",
                  query(f"rate(mongooseim_log_lines_total{{{SEL}}}[$__rate_interval])",
                        "{{instance}} lines/s"),
                  query(f"increase(mongooseim_log_losses_total{{{SEL}}}[$__rate_interval])",
                        "{{instance}} losses")),
        ]),
        ("Erlang VM", [
            graph("Port table", "Ports in use against the port table size (ERL_MAX_PORTS / "
                  "+Q, rounded up to a power of two).",
                  query(f"mongooseim_vm_ports{{{SEL}}}", "{{instance}} ports"),
                  query(f"mongooseim_vm_port_limit{{{SEL}}}", "{{instance}} limit"),
                  width=8),
            graph("Process table", "Processes against +P.",
                  query(f"mongooseim_vm_processes{{{SEL}}}", "{{instance}} processes"),
                  query(f"mongooseim_vm_process_limit{{{SEL}}}", "{{instance}} limit"),
                  width=8),
            graph("MongooseIM's own port count", "From MongooseIM's :9091 endpoint (6.3+), "
                  "when it is scraped as job mongooseim.",
                  query('system_info_port_count{job="mongooseim", cluster=~"$cluster"}',
                        "{{instance}} ports"),
                  query('system_info_port_limit{job="mongooseim", cluster=~"$cluster"}',
                        "{{instance}} limit"),
                  width=8),
        ]),
        ("Probes and peers", [
            grid("Listener, epmd and dist probes", "1: the TCP probe succeeded.",
                 query(f"mongooseim_probe_success{{{SEL}}}", instant=True)),
            graph("Probe duration", "How long each probe took.",
                  query(f"mongooseim_probe_duration_seconds{{{SEL}}}",
                        "{{instance}} {{name}}"),
                  unit="s"),
            grid("Distribution", "epmd answering, the dist port inside its range, and the "
                 "node accepting the agent's cookie.",
                 query(f"mongooseim_epmd_up{{{SEL}}}", instant=True),
                 query(f"mongooseim_dist_port_in_range{{{SEL}}}", instant=True),
                 query(f"mongooseim_dist_auth_success{{{SEL}}}", instant=True)),
            grid("Peers", "Per peer: epmd registration, dist port accepting, cookie accepted.",
                 query(f"mongooseim_cluster_peer_up{{{SEL}}}", instant=True)),
        ]),
        ("Cluster", [
            grid("Views side by side", "Each agent's hash of its node's running set: "
                 "different views in one cluster mean a partition.",
                 query(f"mongooseim_cluster_view_info{{{SEL}}}", instant=True),
                 query(f"mongooseim_cluster_source_info{{{SEL}}}", instant=True)),
            graph("Membership as each node sees it", "Mnesia db_nodes, running and stopped.",
                  query(f"mongooseim_cluster_db_nodes{{{SEL}}}", "{{instance}} members"),
                  query(f"mongooseim_cluster_running_nodes{{{SEL}}}", "{{instance}} running"),
                  query(f"mongooseim_cluster_stopped_nodes{{{SEL}}}", "{{instance}} stopped")),
            grid("Members", "Per member, as each node sees it: running, connected, expected "
                 "and present.",
                 query(f"mongooseim_cluster_node_running{{{SEL}}}", instant=True),
                 query(f"mongooseim_cluster_member_connected{{{SEL}}}", instant=True),
                 query(f"mongooseim_cluster_expected_node_present{{{SEL}}}", instant=True)),
            graph("Partition signals", "Distinct views per cluster and nodes that see "
                  "themselves partitioned.",
                  query('cluster:mongooseim_cluster_views:count{cluster=~"$cluster"}',
                        "{{cluster}} views"),
                  query(f"mongooseim_cluster_partitioned{{{SEL}}}",
                        "{{instance}} partitioned")),
            graph("CETS nodes", "CETS view by state, and whether discovery works.",
                  query(f"mongooseim_cets_nodes{{{SEL}}}", "{{instance}} {{state}}"),
                  query(f"mongooseim_cets_discovery_works{{{SEL}}}",
                        "{{instance}} discovery works")),
        ]),
        ("Load balancing", [
            graph("Ready and drained", "What /node/ready answers, and the drain flag.",
                  query(f"mongooseim_node_ready{{{SEL}}}", "{{instance}} ready"),
                  query(f"mongooseim_node_drained{{{SEL}}}", "{{instance}} drained"),
                  width=8),
            graph("Drained for", "Time since the node was drained.",
                  query(f"time() - mongooseim_node_drained_since_timestamp_seconds{{{SEL}}}",
                        "{{instance}}"),
                  unit="s", width=8),
            graph("Listener connections", "Established connections per listener.",
                  query(f"mongooseim_listener_connections{{{SEL}}}", "{{instance}} {{name}}"),
                  width=8),
        ]),
        ("Agent", [
            grid("Collectors", "1: the collector's last run succeeded.",
                 query(f"mongooseim_agent_collector_success{{{SEL}}}", instant=True),
                 width=8),
            graph("Collector duration", "How long each collector's last run took.",
                  query(f"mongooseim_agent_collector_duration_seconds{{{SEL}}}",
                        "{{instance}} {{collector}}"),
                  unit="s", width=8),
            grid("Configuration audit", "The guide's checklist on each host: 1 passes.",
                 query(f"mongooseim_config_check_ok{{{SEL}}}", instant=True),
                 query(f"mongooseim_agent_build_info{{{SEL}}}", instant=True), width=8),
        ]),
    ]


def label_variable(name: str, label: str, expr: str) -> db.QueryVariable:
    """A multi-value variable over a label's values, `All` matching every value (or none)."""
    return (db.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query({"query": expr, "refId": name})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(".*")
            .current(model.VariableOption(selected=True, text="All", value="$__all")))


def variables() -> list[db.DatasourceVariable | db.QueryVariable]:
    return [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        label_variable("cluster", "Cluster",
                       'label_values(mongooseim_agent_build_info{job="mongooseim-agent"}, '
                       "cluster)"),
        label_variable("node", "Node",
                       'label_values(mongooseim_node_info{job="mongooseim-agent", '
                       'cluster=~"$cluster"}, erlang_node)'),
        label_variable("instance", "Instance",
                       'label_values(mongooseim_node_info{job="mongooseim-agent", '
                       'cluster=~"$cluster", erlang_node=~"$node"}, instance)'),
    ]


def build() -> dict[str, Any]:
    """The dashboard as the JSON object Grafana imports."""
    board = (db.Dashboard("MongooseIM agent").uid(UID).tags(["mongooseim", "xmpp"])
             .description("File descriptors against nofile, emfile and cluster faults in the "
                          "logs, epmd and listener probes, cluster membership and views, "
                          "readiness: what mongooseim-agent watches.")
             .refresh("30s").time("now-6h", "now").timezone("utc").editable())
    for variable in variables():
        board = board.with_variable(variable)
    ids = iter(range(1, 1000))
    for title, panels in rows():
        board = board.with_row(db.Row(title).id(next(ids)))
        for panel in panels:
            board = board.with_panel(panel.id(next(ids)))
    encoded: dict[str, Any] = JSONEncoder().default(board.build())
    return encoded
