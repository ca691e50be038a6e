"""The shipped Grafana dashboard: generated from its source, well formed, every query parses,
and it shows what the issue asks for."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.exporters import (
    DASHBOARD,
    dashboard_json,
    dashboard_panels,
    dashboard_queries,
    dashboard_variable_queries,
    generator,
    promql_metric_names,
)
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


def test_dashboard_json_is_generated_from_its_source() -> None:
    """mongooseim-agent.json is what grafana/dashboard.py builds: nobody edited it by hand."""
    assert DASHBOARD.read_text() == generator().render_dashboard(), (
        "stale: run python exporters/generate.py"
    )


def test_variables_datasource_cluster_node_instance() -> None:
    """Datasource, cluster, node and instance variables; All matches a missing cluster too."""
    variables = {v["name"]: v for v in dashboard_json()["templating"]["list"]}
    assert list(variables) == ["datasource", "cluster", "node", "instance"]
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("cluster", "node", "instance"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
        assert variables[name]["datasource"]["uid"] == "${datasource}"


def test_panels_are_well_formed() -> None:
    """Unique ids, the datasource variable everywhere, unique refIds, no overlapping tiles."""
    panels = dashboard_json()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
    for panel in dashboard_panels():
        assert panel["title"] and panel["description"], panel
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)) and all(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert "$cluster" in target["expr"], (panel["title"], target["expr"])


def test_every_query_parses(tmp_path: Path) -> None:
    """promtool parses every panel and variable query (as recording rules, variables set)."""
    promtool = require_binary("promtool")
    exprs = dashboard_queries() + dashboard_variable_queries()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(exprs)
    ]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


def test_shows_what_the_issue_asks_for() -> None:
    """fd use against soft and hard limits with headroom and time to exhaustion, log pattern
    rates, port and process tables, probes and peers, membership and views, readiness and
    drain, firing alerts."""
    shown = set().union(*(promql_metric_names(e) for e in dashboard_queries()))
    assert shown >= {
        "mongooseim_process_open_fds", "mongooseim_process_max_fds",
        "mongooseim_process_max_fds_hard", "instance:mongooseim_process_fds:headroom",
        "instance:mongooseim_process_fds:seconds_to_exhaustion",
        "mongooseim_log_matches_total", "mongooseim_vm_ports", "mongooseim_vm_port_limit",
        "mongooseim_vm_processes", "mongooseim_vm_process_limit", "mongooseim_probe_success",
        "mongooseim_cluster_peer_up", "mongooseim_cluster_running_nodes",
        "mongooseim_cluster_view_info", "mongooseim_node_ready", "mongooseim_node_drained",
        "ALERTS",
    }
