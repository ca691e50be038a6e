"""The PromQL a runbook tells on-call to paste parses and names only declared metrics."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mongooseim_agent.collectors.registry import contract
from tests.support.exporters import RUNBOOKS, promql_metric_names, recording_rules
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


_NEXT_SPAN = re.compile(r"\s*(?:,?\s*and\s+|,\s*)?`([^`]+)`")


def runbook_queries() -> list[str]:
    """The `code` spans right after each "PromQL:" of docs/runbooks.md (a list of them
    joined by commas or "and")."""
    queries = []
    for chunk in RUNBOOKS.read_text().split("PromQL:")[1:]:
        position = 0
        while (span := _NEXT_SPAN.match(chunk, position)) is not None:
            queries.append(" ".join(span.group(1).split()))
            position = span.end()
    return queries


def test_runbook_promql_parses_and_names_declared_metrics(tmp_path: Path) -> None:
    """promtool parses each query; each metric in it is in the agent's contract (or a
    recording rule, or Prometheus's `up`)."""
    promtool = require_binary("promtool")
    queries = runbook_queries()
    assert len(queries) >= 21
    rules = {"groups": [{"name": "runbooks", "rules": [
        {"record": f"runbook:query_{i}", "expr": q} for i, q in enumerate(queries)]}]}
    path = tmp_path / "runbook-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    known = set(contract()) | {r["record"] for r in recording_rules()} | {"up"}
    for query in queries:
        assert promql_metric_names(query) <= known, query
