"""One source for the metric contract: the registry's collector types and their declarations."""

from __future__ import annotations

from pathlib import Path

from mongooseim_agent import metricsdoc
from mongooseim_agent.collectors.registry import COLLECTOR_TYPES, build, contract
from mongooseim_agent.config import Config
from mongooseim_agent.metrics import AGENT_METRICS
from mongooseim_agent.mongooseim.discovery import NodeLocator, NodeTracker
from mongooseim_agent.mongooseim.nodewatch import NodeWatch

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_committed_doc_is_the_generated_one() -> None:
    """docs/metrics.md equals what the declarations generate (regenerate, never hand-edit)."""
    assert DOC.read_text() == metricsdoc.render(), (
        "docs/metrics.md is stale: run "
        ".venv/bin/python -m mongooseim_agent.metricsdoc --write docs/metrics.md"
    )


def test_check_mode_reports_a_stale_doc(tmp_path: Path) -> None:
    """--check exits 1 on a differing file and 0 on the generated one."""
    stale = tmp_path / "metrics.md"
    stale.write_text("# Metrics\n")
    assert metricsdoc.main(["--check", str(stale)]) == 1
    metricsdoc.main(["--write", str(stale)])
    assert metricsdoc.main(["--check", str(stale)]) == 0


async def test_contract_is_what_the_built_collectors_declare() -> None:
    """build() makes exactly the registry's collector types, and the contract is their
    `metrics` plus the agent's own: no second list to drift."""
    watch = NodeWatch(NodeTracker(NodeLocator(), "nobody-here@nowhere"))
    assembly = build(Config(), watch)
    try:
        assert [type(c) for c in assembly.collectors] == list(COLLECTOR_TYPES)
        declared = {spec.name for c in assembly.collectors for spec in c.metrics}
        declared |= {spec.name for spec in AGENT_METRICS}
        assert set(contract()) == declared
    finally:
        await assembly.close()
