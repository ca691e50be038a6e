"""docs/metrics.md's Renamed table covers every name and label set 0.1.0 exposed that changed."""

from __future__ import annotations

import re
from pathlib import Path

from mongooseim_agent.collectors.registry import contract
from mongooseim_agent.metrics import RENAMED

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "metrics-0.1.0.txt"


def _old_contract() -> dict[str, tuple[str, ...]]:
    old = {}
    for line in OLD.read_text().splitlines():
        if line and not line.startswith("#"):
            name, labels = line.split()
            old[name] = () if labels == "-" else tuple(labels.split(","))
    return old


def _covered(name: str) -> bool:
    """A Renamed row names the metric, or a family of it (`mongooseim_vm_*`)."""
    for row in RENAMED:
        for token in re.findall(r"mongooseim_[a-z_]+\*?", row.old):
            if token == name or (token.endswith("*") and name.startswith(token[:-1])):
                return True
    return False


def test_every_changed_name_or_label_set_is_in_the_renamed_table() -> None:
    """A dashboard built on 0.1.0 finds each of its series today, or the table says where."""
    now = contract()
    changed = [
        name for name, labels in _old_contract().items()
        if name not in now or set(now[name].labels) != set(labels)
    ]
    assert changed, "0.1.0 differs from today: the fixture is read"
    assert [name for name in changed if not _covered(name)] == []
