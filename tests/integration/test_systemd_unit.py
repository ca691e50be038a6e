"""The shipped unit: systemd-analyze verify clean, security exposure <= 2.0, what it promises."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.require import require_binary

pytestmark = pytest.mark.integration

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "mongooseim-agent.service"


def _unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this build (verify wants the binary to exist)."""
    agent = shutil.which("mongooseim-agent", path=str(Path(sys.executable).parent))
    assert agent is not None
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/bin/mongooseim-agent", agent))
    return unit


def _settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_verifies_clean(tmp_path: Path) -> None:
    """No warnings or errors from systemd-analyze verify."""
    analyze = require_binary("systemd-analyze")
    result = subprocess.run([analyze, "verify", str(_unit_here(tmp_path))], capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert "ExecReload=/bin/kill -HUP $MAINPID" in UNIT.read_text()


def test_unit_security_exposure_at_most_2(tmp_path: Path) -> None:
    """systemd-analyze security --offline=true rates the unit 2.0 or better."""
    analyze = require_binary("systemd-analyze")
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(_unit_here(tmp_path))],
        capture_output=True, text=True, check=False, timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    exposure = float(match.group(1))
    print(f"systemd-analyze security exposure: {exposure} (limit 2.0; 10.0 = unhardened)")
    assert exposure <= 2.0, result.stdout


def test_unit_is_notify_with_watchdog_credentials_and_its_own_user() -> None:
    """Type=notify and a watchdog; secrets as credentials; /proc of other users stays readable."""
    settings = _settings()
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert settings["WatchdogSec"] and settings["Restart"] == ["on-failure"]
    assert settings["User"] == ["mongooseim-agent"]
    assert settings["StateDirectory"] == ["mongooseim-agent"]
    credentials = {v.split(":", 1)[0] for v in settings["LoadCredential"]}
    assert credentials == {"erlang-cookie", "graphql-password"}
    assert int(settings["LimitNOFILE"][0]) >= 4096
    assert settings["CapabilityBoundingSet"] == [""]
    assert "@system-service" in settings["SystemCallFilter"]
    for breaks_node_reading in ("ProtectProc", "ProcSubset", "PrivateUsers"):
        assert breaks_node_reading not in settings, breaks_node_reading
    assert "Environment" not in settings  # no secret ever goes through the environment
