"""docs/runbooks.md has a section for every alert, where each alert's runbook_url points,
saying what it means, its impact, how to confirm and fix it, and the `for:` the rule has."""

from __future__ import annotations

import re

import pytest

from tests.support.exporters import REQUIRED_ALERTS, RUNBOOKS, alert_rules, github_anchor


def _sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_every_runbook_url_lands_on_a_section() -> None:
    """The anchor of every alert's runbook_url is a heading of docs/runbooks.md."""
    anchors = {github_anchor(title) for title in _sections()}
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].rpartition("docs/runbooks.md#")[2]
        assert anchor in anchors, rule["alert"]


@pytest.mark.parametrize("name", REQUIRED_ALERTS)
def test_section_explains_confirms_and_fixes(name: str) -> None:
    """Meaning, user impact, how to confirm (with PromQL), how to fix, why its `for:`."""
    body = _sections()[name]
    for part in ("**Meaning**", "**User impact**", "**Confirm**", "**Fix**", "**Why"):
        assert part in body, f"{name}: no {part}"
    assert "PromQL" in body, name
    assert "mongooseim-agent" in body or "mongooseimctl" in body, name


@pytest.mark.parametrize("name", REQUIRED_ALERTS)
def test_section_states_the_rules_for_and_severity(name: str) -> None:
    """The durations and severities the runbook defends are the ones the rules have."""
    body = _sections()[name]
    for rule in (r for r in alert_rules() if r["alert"] == name):
        severity = rule["labels"]["severity"]
        assert severity in body, (name, severity)
        duration = rule.get("for")
        if duration is None:
            assert "**no for**" in body, name
        else:
            assert re.search(rf"\*\*for\*\* {duration}\b|\(.*for {duration}\)", body), (
                name, duration)
