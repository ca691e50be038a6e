"""The shipped monitoring files (exporters/) and helpers to read them in tests."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXPORTERS = ROOT / "exporters"
RULES = EXPORTERS / "prometheus" / "rules.yml"
RULES_TEST = EXPORTERS / "prometheus" / "rules_test.yml"
PROMETHEUS_RULE = EXPORTERS / "prometheus" / "prometheusrule.yaml"
SCRAPE = EXPORTERS / "prometheus" / "scrape.yml"
ALERTMANAGER = EXPORTERS / "alertmanager" / "alertmanager.yml"
DASHBOARD = EXPORTERS / "grafana" / "mongooseim-agent.json"
RUNBOOKS = ROOT / "docs" / "runbooks.md"

# The alert names issue 10 asks for, exactly.
REQUIRED_ALERTS = (
    "MongooseIMAgentDown",
    "MongooseIMNodeDown",
    "MongooseIMFileDescriptorsNearLimit",
    "MongooseIMFileDescriptorsExhaustionPredicted",
    "MongooseIMEmfileErrors",
    "MongooseIMEnfileErrors",
    "MongooseIMPortTableNearLimit",
    "MongooseIMNofileLimitBelowRecommendation",
    "MongooseIMEpmdDown",
    "MongooseIMListenerDown",
    "MongooseIMDistPortOutOfRange",
    "MongooseIMClusterNodeStopped",
    "MongooseIMClusterMemberMissing",
    "MongooseIMClusterPartitioned",
    "MongooseIMClusterPeerUnreachable",
    "MongooseIMCookieMismatch",
    "MongooseIMCETSUnavailableNodes",
    "MongooseIMCETSDiscoveryBroken",
    "MongooseIMNodeNotReady",
    "MongooseIMAgentCollectorFailing",
    "MongooseIMLogLinesLost",
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = load_yaml(RULES)["groups"]
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def generator() -> ModuleType:
    """exporters/generate.py, imported from its path (exporters/ is not a package)."""
    spec = importlib.util.spec_from_file_location("exporters_generate", EXPORTERS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


# Grafana's variables, as the dashboard's queries use them, replaced by what "All" selects.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$cluster": ".*",
    "$instance": ".*",
    "$node": ".*",
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without",
                       "on", "ignoring", "group_left", "group_right", "atan2"})


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions,
    aggregations, keywords, labels in grouping clauses, or inside strings, matchers or ranges."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.groups()
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def promql_matchers(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names matched on it) for every `metric{...}` selector."""
    text = _STRING.sub('""', expr)
    return [(m.group(1), set(_MATCHER.findall(m.group(2)))) for m in _SELECTOR.finditer(text)]


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def dashboard_json() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard_json()["panels"] if p["type"] != "row"]


def dashboard_queries() -> list[str]:
    """Every panel target's expression, with the variables as "All" sets them."""
    return [grafana_to_promql(t["expr"]) for p in dashboard_panels() for t in p["targets"]]


def dashboard_variable_queries() -> list[str]:
    """The selectors inside the variables' label_values(selector, label) queries."""
    selectors = []
    for variable in dashboard_json()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["query"]["query"])
        assert inner is not None, variable["query"]
        selectors.append(grafana_to_promql(inner.group(1)))
    return selectors


def all_rule_exprs() -> list[str]:
    return [rule["expr"] for rule in alert_rules() + recording_rules()]
