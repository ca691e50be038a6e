"""The shipped unit file passes systemd-analyze verify (with ExecStart pointed at this build)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.require import require_binary

pytestmark = pytest.mark.integration

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "mongooseim-agent.service"


def test_unit_verifies_clean(tmp_path: Path) -> None:
    """No warnings or errors from systemd-analyze verify."""
    analyze = require_binary("systemd-analyze")
    agent = shutil.which("mongooseim-agent", path=str(Path(sys.executable).parent))
    assert agent is not None
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/bin/mongooseim-agent", agent))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit.read_text()
