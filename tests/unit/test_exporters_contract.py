"""Every metric a shipped rule, recording rule, alert template or dashboard panel names is one
the agent declares (its contract) or one MongooseIM documents for its own endpoint; every label
matched on an agent metric is one it declares."""

from __future__ import annotations

import re

import pytest

from mongooseim_agent.collectors.registry import contract
from tests.support.exporters import (
    alert_rules,
    all_rule_exprs,
    dashboard_queries,
    dashboard_variable_queries,
    promql_matchers,
    promql_metric_names,
    recording_rules,
)

# MongooseIM's own Prometheus endpoint (6.3+, :9091), as its documentation lists the gauges
# (see /work/shared MONGOOSEIM.md): the rules may use them, never require them.
MONGOOSEIM_DOCUMENTED = frozenset({
    *(f"system_info_{table}_{kind}" for table in ("port", "process", "ets")
      for kind in ("count", "limit")),
    "system_tcp_ports_count", "system_dist_data_connections", "system_up_time_seconds",
    "sm_node_sessions_count", "tls_cert_remaining_days",
    "mnesia_info_running_db_nodes", "mnesia_info_db_nodes",
    *(f"cets_info_{name}" for name in (
        "available_nodes", "unavailable_nodes", "joined_nodes", "discovered_nodes",
        "remote_nodes_without_disco", "remote_nodes_with_unknown_tables",
        "remote_nodes_with_missing_tables", "remote_unknown_tables", "remote_missing_tables",
        "conflict_nodes", "conflict_tables", "discovery_works")),
})
# Series Prometheus itself makes: the scrape's `up`, the rule manager's ALERTS.
PROMETHEUS_BUILTIN = frozenset({"up", "ALERTS"})
# Target labels every agent series carries besides its declared ones.
TARGET_LABELS = frozenset({"job", "instance", "cluster"})
_TEMPLATE_QUERY = re.compile(r'printf\s+"([a-zA-Z_:][a-zA-Z0-9_:]*)\{')


def _named_everywhere() -> dict[str, set[str]]:
    """metric name -> where it is named (rule, alert template, dashboard)."""
    where: dict[str, set[str]] = {}
    for rule in alert_rules() + recording_rules():
        source = rule.get("alert") or rule["record"]
        for name in promql_metric_names(rule["expr"]):
            where.setdefault(name, set()).add(source)
        for text in rule.get("annotations", {}).values():
            for name in _TEMPLATE_QUERY.findall(text):
                where.setdefault(name, set()).add(f"{source} annotation")
    for expr in dashboard_queries() + dashboard_variable_queries():
        for name in promql_metric_names(expr):
            where.setdefault(name, set()).add("dashboard")
    return where


def test_name_extraction_finds_selectors_not_functions_labels_or_strings() -> None:
    """The extractor this test relies on: metric names only."""
    expr = ('count by (cluster, view) (rate(a_total{pattern="b_total"}[5m])) > 1 '
            'or on (job) label_replace(c, "peer", "$1", "member", "(.*)") '
            "and sum(d) without (x) unless time() - e:rec offset 5m")
    assert promql_metric_names(expr) == {"a_total", "c", "d", "e:rec"}
    assert promql_matchers('x{a="1", b=~"2"} / y') == [("x", {"a", "b"})]


def test_rules_and_dashboard_name_only_declared_metrics() -> None:
    """Nothing the rules or the dashboard query is missing from the agent's contract."""
    known = (set(contract()) | MONGOOSEIM_DOCUMENTED | PROMETHEUS_BUILTIN
             | {rule["record"] for rule in recording_rules()})
    where = _named_everywhere()
    unknown = {name: sorted(sources) for name, sources in where.items() if name not in known}
    assert unknown == {}, "named but not declared in the contract"
    # The test cannot pass vacuously: most of the contract is watched by something.
    assert len(set(where) & set(contract())) >= 30


@pytest.mark.parametrize("expr", all_rule_exprs() + dashboard_queries())
def test_labels_matched_are_declared(expr: str) -> None:
    """A matcher on an agent metric uses one of its declared labels (or a target label)."""
    specs = contract()
    for metric, labels in promql_matchers(expr):
        if metric in specs:
            assert labels <= set(specs[metric].labels) | TARGET_LABELS, (metric, labels)
