"""The metric contract: exposition drops undeclared or mislabelled samples, and says so."""

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from mongooseim_agent.collectors.registry import contract
from mongooseim_agent.exposition import StoreCollector
from mongooseim_agent.metrics import Contract, counter, gauge
from mongooseim_agent.snapshot import Sample


def _render(samples: list[Sample], specs: Contract) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(specs, lambda: samples))
    return generate_latest(registry).decode()


def test_declared_metrics_render_with_type_and_help() -> None:
    """Gauges and counters come out with their declared type, help and labels."""
    specs = Contract([(gauge("a_up", "Up.", "node"), counter("a_hits_total", "Hits.", "p"))])
    text = _render([Sample("a_up", 1, {"node": "n"}), Sample("a_hits_total", 3, {"p": "x"})],
                   specs)
    assert "# TYPE a_up gauge\na_up{node=\"n\"} 1.0" in text
    assert "# HELP a_hits_total Hits." in text
    assert "counter\na_hits_total{p=\"x\"} 3.0" in text


def test_undeclared_and_mislabelled_samples_are_dropped_and_logged_once() -> None:
    """A sample outside the contract never reaches /metrics; the bug is logged once."""
    specs = Contract([(gauge("a_up", "Up.", "node"),)])
    with capture_logs() as logs:
        text = _render([Sample("zzz", 1), Sample("zzz", 2), Sample("a_up", 1, {"nod": "x"})],
                       specs)
        _render([Sample("zzz", 1)], specs)
    assert "zzz" not in text and "a_up" not in text
    assert [e["event"] for e in logs].count("undeclared metric dropped") == 2
    assert [e["event"] for e in logs].count("metric with wrong labels dropped") == 1


def test_duplicate_declaration_is_rejected() -> None:
    """One name, one declaration."""
    with pytest.raises(ValueError, match="declared twice"):
        Contract([(gauge("a", "x"),), (gauge("a", "y"),)])
    with pytest.raises(ValueError, match="_total"):
        counter("a_hits", "x")


def test_contract_names_follow_conventions() -> None:
    """Every declared name has the project prefix; counters end in _total, gauges do not."""
    for name, spec in contract().items():
        assert name.startswith("mongooseim_"), name
        assert spec.help.endswith("."), name
        assert name.endswith("_total") == (spec.kind.value == "counter"), name
