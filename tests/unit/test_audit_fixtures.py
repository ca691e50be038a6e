"""The audit on committed Debian/Ubuntu and RHEL fixture trees, as `audit --root` sees them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mongooseim_agent.collectors.audit import AuditCollector
from mongooseim_agent.config import parse_config
from mongooseim_agent.mongooseim.audit.findings import CHECK_NAMES, Finding, Verdict
from mongooseim_agent.mongooseim.audit.host import HostFiles

TREES = Path(__file__).resolve().parent.parent / "fixtures" / "audit"


async def audit(root: Path, **section: Any) -> dict[str, Finding]:
    config = parse_config({"audit": {"measure_port_memory": False, **section}})
    collector = AuditCollector(config, lambda: None, None, files=HostFiles(root), live=False)
    findings = await collector.audit()
    assert [f.name for f in findings] == list(CHECK_NAMES)
    return {f.name: f for f in findings}


def tree(tmp_path: Path, name: str) -> Path:
    """A writable copy of a fixture tree whose `mongooseim` user is the uid running the test,
    so file ownership can be made right without root."""
    root = tmp_path / name
    shutil.copytree(TREES / name, root, symlinks=True)
    passwd = root / "etc" / "passwd"
    passwd.write_text(passwd.read_text().replace("mongooseim:x:999:999:",
                                                 f"mongooseim:x:{os.getuid()}:999:"))
    return root


def statuses(found: dict[str, Finding]) -> dict[str, str]:
    return {name: f.status.value for name, f in found.items()}


async def test_debian_trap_limits_conf_under_systemd_without_limitnofile() -> None:
    """limits.conf raised for the user, the unit sets no LimitNOFILE: the trap is named, with
    the systemd fix; the default cookie fails; live checks skip with a reason."""
    found = await audit(TREES / "debian_trap")
    assert statuses(found) == {
        "nofile": "skip", "nofile_source": "fail", "erl_max_ports": "warn", "node_name": "pass",
        "dist_port_range": "warn", "epmd": "skip", "cookie": "fail", "kernel_limits": "pass",
        "cluster": "skip"}
    source = found["nofile_source"]
    assert "the trap" in source.observed
    assert "'mongooseim soft nofile 1000000' (/etc/security/limits.d/90-mongooseim.conf:2)" \
        in source.observed
    assert "DefaultLimitNOFILE=1024:524288" in source.observed
    assert "LimitNOFILE=1000000" in source.fix and "systemctl edit mongooseim.service" in source.fix
    assert source.observed_value == 1024 and source.recommended_value == 1_000_000
    ports = found["erl_max_ports"]
    assert "250000 from -env ERL_MAX_PORTS" in ports.observed
    assert "nofile (1024" in ports.observed and "caps connections first" in ports.observed
    assert ports.recommended.startswith("at least 350000 (with TLS")
    cookie = found["cookie"]
    assert "release default" in cookie.observed and "openssl rand" in cookie.fix
    assert "mode 0644" in cookie.observed
    for name in ("nofile", "epmd", "cluster"):
        assert found[name].observed.startswith("skipped: a live check")


async def test_debian_good_dropins_in_systemd_precedence(tmp_path: Path) -> None:
    """The /etc drop-in hides the same-named /lib one and applies after 05-reset.conf; with the
    cookie file 0400 and owned by the user, every file check passes."""
    root = tree(tmp_path, "debian_good")
    (root / "var/lib/mongooseim/.erlang.cookie").chmod(0o400)
    found = await audit(root)
    assert set(statuses(found).values()) == {"pass", "skip"}
    source = found["nofile_source"]
    assert "LimitNOFILE=1000000 (/etc/systemd/system/mongooseim.service.d/10-limits.conf:3)" \
        in source.observed
    assert found["kernel_limits"].observed.startswith(
        "fs.nr_open 2000000 (/etc/sysctl.d/60-mongooseim.conf:3)")
    assert found["node_name"].observed.startswith("mongooseim@xmpp1 ")
    assert found["dist_port_range"].observed_value == 11


async def test_debian_good_reset_without_override_falls_back_to_default(tmp_path: Path) -> None:
    """Without the /etc override, 05-reset.conf empties LimitNOFILE= and the /lib drop-in's
    4096 applies after it."""
    root = tree(tmp_path, "debian_good")
    (root / "etc/systemd/system/mongooseim.service.d/10-limits.conf").unlink()
    found = await audit(root)
    assert found["nofile_source"].status is Verdict.FAIL
    assert "LimitNOFILE=4096 (/lib/systemd/system/mongooseim.service.d/10-limits.conf:3)" \
        in found["nofile_source"].observed
    (root / "lib/systemd/system/mongooseim.service.d/10-limits.conf").unlink()
    found = await audit(root)
    assert "nothing sets LimitNOFILE= for mongooseim.service" in found["nofile_source"].observed


@pytest.mark.parametrize(("mode", "verdict"), [(0o400, "pass"), (0o600, "warn"),
                                               (0o640, "fail"), (0o644, "fail")])
async def test_cookie_file_mode(tmp_path: Path, mode: int, verdict: str) -> None:
    """0400 passes; owner-only but writable warns; readable by group or others fails."""
    root = tree(tmp_path, "debian_good")
    (root / "var/lib/mongooseim/.erlang.cookie").chmod(mode)
    found = await audit(root)
    assert found["cookie"].status.value == verdict
    assert f"mode {mode:04o}" in found["cookie"].observed
    assert "NPJEFGXMKWZQTVRAYHLD" not in repr(found)


async def test_cookie_file_owned_by_another_user_fails(tmp_path: Path) -> None:
    """A cookie the service user does not own: the node cannot read it."""
    root = tree(tmp_path, "debian_good")
    (root / "var/lib/mongooseim/.erlang.cookie").chmod(0o400)
    passwd = root / "etc/passwd"
    passwd.write_text(passwd.read_text().replace(f"mongooseim:x:{os.getuid()}:",
                                                 f"mongooseim:x:{os.getuid() + 1}:"))
    found = await audit(root)
    assert found["cookie"].status is Verdict.FAIL
    assert "chown mongooseim" in found["cookie"].fix


async def test_rhel_group_rule_through_system_auth() -> None:
    """RHEL layout, no unit: `@mongooseim - nofile` applies through pam_limits in system-auth
    (password-auth includes it); the ephemeral range overlapping the dist range warns."""
    found = await audit(TREES / "rhel_limits")
    assert statuses(found) == {
        "nofile": "skip", "nofile_source": "pass", "erl_max_ports": "pass", "node_name": "pass",
        "dist_port_range": "pass", "epmd": "skip", "cookie": "warn", "kernel_limits": "warn",
        "cluster": "skip"}
    assert "@mongooseim - nofile 1000000" in found["nofile_source"].observed
    assert "400000 from +Q" in found["erl_max_ports"].observed
    assert "without TLS" in found["erl_max_ports"].recommended
    assert "overlaps the distribution range 9100..9100" in found["kernel_limits"].observed
    assert "ip_local_reserved_ports = 9100-9100" in found["kernel_limits"].fix
    assert "QWERTYZXCVBNMASDFGHJ" not in repr(found)


async def test_rhel_without_pam_limits_and_broken_vm_args() -> None:
    """limits.conf never applied (no pam_limits.so), no node name, an inverted port range,
    a small port table, nr_open below the configured nofile: each fails with its fix."""
    found = await audit(TREES / "rhel_nopam")
    assert statuses(found) == {
        "nofile": "skip", "nofile_source": "fail", "erl_max_ports": "fail", "node_name": "fail",
        "dist_port_range": "fail", "epmd": "skip", "cookie": "warn", "kernel_limits": "fail",
        "cluster": "skip"}
    assert "pam_limits.so is not in /etc/pam.d/system-auth" in found["nofile_source"].observed
    assert found["nofile_source"].fix.startswith("add `session required pam_limits.so`")
    assert "above it, and so silently not applied: 1000000" in found["kernel_limits"].observed
    assert "1001 ports" in found["kernel_limits"].observed
    assert found["node_name"].fix.startswith("add `-sname")


async def test_expected_connections_scale_the_recommendations() -> None:
    """20000 expected connections: nofile 35000 and ports 250000 (never below the guide's
    per-100k figure); 400000: 510000 and 1000000."""
    found = await audit(TREES / "rhel_limits", expected_connections=20000)
    assert found["nofile_source"].recommended_value == 35000
    assert found["erl_max_ports"].recommended_value == 250000
    found = await audit(TREES / "rhel_limits", expected_connections=400000)
    assert found["nofile_source"].recommended_value == 510000
    assert found["erl_max_ports"].recommended_value == 1_000_000
    # 400000 ports hold the 400000 connections, short of the headroom: a warning.
    assert found["erl_max_ports"].status is Verdict.WARN
    found = await audit(TREES / "rhel_limits", expected_connections=500000)
    assert found["erl_max_ports"].status is Verdict.FAIL


async def test_empty_root_reports_missing_files_clearly(tmp_path: Path) -> None:
    """Nothing there: no crash; nothing configures nofile, no vm.args, no PAM stack."""
    found = await audit(tmp_path)
    assert found["nofile_source"].status is Verdict.WARN
    assert "nothing configures nofile for mongooseim" in found["nofile_source"].observed
    for name in ("erl_max_ports", "node_name", "dist_port_range"):
        assert found[name].status is Verdict.SKIP
        assert "vm.args" in found[name].observed
    assert found["cookie"].status is Verdict.FAIL
    assert found["cookie"].observed.startswith("no cookie found")


async def test_unreadable_files_are_findings_not_crashes(tmp_path: Path) -> None:
    """A limits.d entry that is a directory, a symlink loop, and (unprivileged) a mode-000
    file: each is named in the finding, and the rest of the audit still runs."""
    root = tree(tmp_path, "debian_trap")
    limits_d = root / "etc/security/limits.d"
    (limits_d / "50-dir.conf").mkdir()
    (limits_d / "60-loop.conf").symlink_to("60-loop.conf")
    locked = limits_d / "70-locked.conf"
    locked.write_text("mongooseim - nofile 5\n")
    locked.chmod(0)
    try:
        found = await audit(root)
    finally:
        locked.chmod(0o644)
    observed = found["nofile_source"].observed
    assert "could not read: " in observed
    assert "/etc/security/limits.d/50-dir.conf: Is a directory" in observed
    assert "/etc/security/limits.d/60-loop.conf: too many levels of symbolic links" in observed
    if os.geteuid() != 0:
        assert "/etc/security/limits.d/70-locked.conf: Permission denied" in observed
    assert found["nofile_source"].status is Verdict.FAIL
    assert found["kernel_limits"].status is not Verdict.SKIP


async def test_unreadable_unit_and_pam_directory(tmp_path: Path) -> None:
    """A unit file that cannot be read and a PAM file that is a directory are named."""
    root = tree(tmp_path, "debian_trap")
    unit = root / "lib/systemd/system/mongooseim.service"
    unit.unlink()
    unit.mkdir()
    pam_file = root / "etc/pam.d/common-session-noninteractive"
    pam_file.unlink()
    pam_file.mkdir()
    found = await audit(root)
    observed = found["nofile_source"].observed
    assert "/lib/systemd/system/mongooseim.service: Is a directory" in observed
    assert "/etc/pam.d/common-session-noninteractive: Is a directory" in observed


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path}"\n[audit]\nmeasure_port_memory = false\n')
    return subprocess.run([sys.executable, "-m", "mongooseim_agent", "--config", str(config),
                           "audit", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_command_on_an_image(tmp_path: Path) -> None:
    """`audit --root` on the Debian trap tree: exit 2, the JSON shape, the same verdicts as
    the collector, and a report naming the failures; a missing root is UNKNOWN (3)."""
    done = _cli("--root", str(TREES / "debian_trap"), "--json", tmp_path=tmp_path)
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "fail" and report["live"] is False
    assert {c["name"]: c["status"] for c in report["checks"]}["nofile_source"] == "fail"
    text = _cli("--root", str(TREES / "debian_trap"), tmp_path=tmp_path)
    assert text.stdout.startswith("MONGOOSEIM AUDIT CRITICAL - image at ")
    assert "FAIL  nofile_source\n" in text.stdout and "the trap" in text.stdout
    assert "\x1b[" not in text.stdout
    missing = _cli("--root", str(tmp_path / "nowhere"), tmp_path=tmp_path)
    assert missing.returncode == 3 and "not a directory" in missing.stdout


async def test_default_limit_from_system_conf_d_and_infinity(tmp_path: Path) -> None:
    """No LimitNOFILE= in the unit: DefaultLimitNOFILE= from system.conf.d applies (and
    passes at 1000000); LimitNOFILE=infinity gives fs.nr_open."""
    root = tree(tmp_path, "debian_trap")
    (root / "etc/security/limits.conf").write_text("# nothing\n")
    (root / "etc/security/limits.d/90-mongooseim.conf").unlink()
    manager = root / "etc/systemd/system.conf.d"
    manager.mkdir(parents=True)
    (manager / "50-limits.conf").write_text("[Manager]\nDefaultLimitNOFILE=1000000\n")
    found = await audit(root)
    assert found["nofile_source"].status is Verdict.PASS
    assert "DefaultLimitNOFILE=1000000 (/etc/systemd/system.conf.d/50-limits.conf:2)" \
        in found["nofile_source"].observed
    dropin = root / "etc/systemd/system/mongooseim.service.d"
    dropin.mkdir(parents=True)
    (dropin / "limits.conf").write_text("[Service]\nLimitNOFILE=infinity\n")
    found = await audit(root)
    assert "LimitNOFILE=infinity" in found["nofile_source"].observed
    assert found["nofile_source"].observed_value == 1048576
    assert found["nofile_source"].status is Verdict.PASS


async def test_masked_unit_is_named(tmp_path: Path) -> None:
    """A unit linked to /dev/null is not a service the node runs in; it is said so."""
    # A plain copy: the group rule does not apply if the user's uid were 0 (root).
    root = tmp_path / "rhel"
    shutil.copytree(TREES / "rhel_limits", root)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "mongooseim.service").symlink_to("/dev/null")
    found = await audit(root)
    assert "/etc/systemd/system/mongooseim.service is masked" in found["nofile_source"].observed
    assert found["nofile_source"].status is Verdict.PASS
