"""The shipped alerting and recording rules: promtool accepts and unit-tests them, they follow
the monitoring-mixin conventions, and the PrometheusRule is generated from the same source."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.exporters import (
    PROMETHEUS_RULE,
    REQUIRED_ALERTS,
    RULES,
    RULES_TEST,
    SCRAPE,
    alert_rules,
    generator,
    load_yaml,
)
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

SEVERITIES = {"critical", "warning", "info"}
RUNBOOK_BASE = "https://github.com/mongooseim-agent/mongooseim-agent/blob/main/docs/runbooks.md#"


def test_promtool_check_rules_is_clean() -> None:
    """promtool parses every expression and template and finds nothing to complain about."""
    promtool = require_binary("promtool")
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert "WARNING" not in done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    """Every case in rules_test.yml holds: alerts fire, stay silent and resolve as written."""
    promtool = require_binary("promtool")
    done = subprocess.run([promtool, "test", "rules", str(RULES_TEST)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_required_alert_exists_once_per_severity() -> None:
    """The issue's alert names are all there, and no name repeats within one severity."""
    seen = [(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()]
    assert len(seen) == len(set(seen))
    names = {name for name, _ in seen}
    assert set(REQUIRED_ALERTS) <= names, set(REQUIRED_ALERTS) - names
    assert names <= set(REQUIRED_ALERTS), names - set(REQUIRED_ALERTS)


def _rule_id(rule: dict[str, Any]) -> str:
    return f"{rule['alert']}-{rule['labels']['severity']}"


@pytest.mark.parametrize("rule", alert_rules(), ids=_rule_id)
def test_alert_follows_mixin_conventions(rule: dict[str, Any]) -> None:
    """Severity, a static summary, a templated description, a runbook link to its section."""
    name = rule["alert"]
    assert name.startswith("MongooseIM") and name.isidentifier()
    assert set(rule["labels"]) == {"severity"}
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert "{{" not in annotations["summary"] and annotations["summary"].endswith(".")
    assert "{{" in annotations["description"]
    assert "$value" in annotations["description"] or "$labels" in annotations["description"]
    assert annotations["runbook_url"] == RUNBOOK_BASE + name.lower()


def _cases() -> dict[str, list[tuple[int, str, bool]]]:
    """alertname -> [(test group index, eval_time in seconds, fired?)] from rules_test.yml."""
    cases: dict[str, list[tuple[int, str, bool]]] = {}
    for index, group in enumerate(load_yaml(RULES_TEST)["tests"]):
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(
                (index, _seconds(case["eval_time"]), bool(case["exp_alerts"]))
            )
    return cases


def _seconds(duration: str) -> int:
    total, number = 0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for char in duration:
        if char.isdigit():
            number += char
        else:
            total += int(number) * units[char]
            number = ""
    return total


@pytest.mark.parametrize("name", REQUIRED_ALERTS)
def test_every_alert_has_fire_boundary_and_resolve_cases(name: str) -> None:
    """In one test group the alert is silent first (boundary), then fires, then is silent
    again (resolved)."""
    by_group: dict[int, list[tuple[int, bool]]] = {}
    for group, when, fired in _cases().get(name, []):
        by_group.setdefault(group, []).append((when, fired))
    for timeline in by_group.values():
        timeline.sort()
        fired_at = [when for when, fired in timeline if fired]
        if not fired_at:
            continue
        silent_before = any(w < fired_at[0] and not f for w, f in timeline)
        silent_after = any(w > fired_at[-1] and not f for w, f in timeline)
        if silent_before and silent_after:
            return
    pytest.fail(f"{name}: no test group with silent, firing, then resolved cases")


def test_prometheus_rule_is_generated_from_rules_yml() -> None:
    """prometheusrule.yaml holds exactly the groups of rules.yml and is up to date."""
    generate = generator()
    assert PROMETHEUS_RULE.read_text() == generate.render_prometheus_rule(), (
        "stale: run python exporters/generate.py"
    )
    resource = load_yaml(PROMETHEUS_RULE)
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == load_yaml(RULES)["groups"]


def test_scrape_example_passes_promtool_check_config(tmp_path: Path) -> None:
    """scrape.yml is a valid Prometheus config once its rule file path points at the rules;
    its agent job carries the `cluster` label and the HA pair drops `replica` from alerts."""
    promtool = require_binary("promtool")
    config = load_yaml(SCRAPE)
    config["rule_files"] = [str(RULES)]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    done = subprocess.run([promtool, "check", "config", str(copy)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [agent_job] = [j for j in config["scrape_configs"] if j["job_name"] == "mongooseim-agent"]
    assert all("cluster" in target["labels"] for target in agent_job["static_configs"])
    assert {"action": "labeldrop", "regex": "replica"} in (
        config["alerting"]["alert_relabel_configs"]
    )
    assert "replica" in config["global"]["external_labels"]
