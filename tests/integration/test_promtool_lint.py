"""The lint the contract test applies to a live scrape does catch what issue 8 saw."""

from __future__ import annotations

import pytest

from tests.support.promtool import naming_problems, promtool_problems

pytestmark = pytest.mark.integration

OLD = (
    "# HELP mongooseim_vm_port_count Ports in use.\n# TYPE mongooseim_vm_port_count gauge\n"
    'mongooseim_vm_port_count{node="mongooseim@db1"} 12.0\n'
)
NEW = (
    "# HELP mongooseim_vm_ports Ports in use.\n# TYPE mongooseim_vm_ports gauge\n"
    "mongooseim_vm_ports 12.0\n"
)


def test_promtool_and_naming_rules_flag_the_old_names_and_pass_the_new() -> None:
    """`_count` on a gauge fails promtool; a node label fails the naming rules."""
    assert any('"_count" suffix' in line for line in promtool_problems(OLD))
    assert naming_problems(OLD) == [
        'mongooseim_vm_port_count carries a node label: '
        'mongooseim_vm_port_count{node="mongooseim@db1"} 12.0',
        "mongooseim_vm_port_count: _count suffix on a gauge",
    ]
    assert promtool_problems(NEW) == [] and naming_problems(NEW) == []
