"""Least privilege, proven: the agent as its own unprivileged user against another user's node.

The node (the stand-in, as root) keeps its cookie in a private HOME, its vm.args in a
root-only etc/, and its logs in a directory only the `adm` group may enter. The agent runs
as nobody with `adm` as a supplementary group (as the package adds the agent's user to
MongooseIM's group) and the cookie handed over as a systemd credential would be
($CREDENTIALS_DIRECTORY, `cookie_file = "erlang-cookie"`). It must still report

- fds and both limits (stat(/proc/PID/fd) and /proc/PID/limits need no capability),
- the log's fault lines (by the group),
- the VM's port and process tables (over distribution, by the credential),

while ERL_MAX_PORTS, which only /proc/PID/environ or the unreadable vm.args hold, falls back
visibly: the configured limit is absent, the live one is there. A second agent without the
group and without the credential shows that those two are what grant the access.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agentproc import AgentProcess, Series, value
from tests.support.mimnode import MimNode, MimNodeSpec, free_port, stop_nodes, unique_sname
from tests.support.public_install import PublicInstall, make_public_install
from tests.support.require import in_ci, require_binary

pytestmark = pytest.mark.integration

NOBODY = 65534


@pytest.fixture
def base() -> Iterator[Path]:
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("CI=true and this test needs root to switch users")
        pytest.skip("needs root to switch users")
    path = Path(tempfile.mkdtemp(prefix="agent-least-priv-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def node(base: Path) -> Iterator[MimNode]:
    require_binary("erl")
    home = base / "node-home"
    home.mkdir(mode=0o700)
    (home / ".erlang.cookie").write_text("least_privilege_cookie_0123456789")
    (home / ".erlang.cookie").chmod(0o400)
    mim = MimNode(MimNodeSpec(sname=unique_sname("leastpriv"), c2s_port=free_port(),
                              home=home, erl_max_ports=65536), base / "node")
    mim.start()
    yield mim
    stop_nodes([mim])


@pytest.fixture
def install() -> Iterator[PublicInstall]:
    public = make_public_install()
    yield public
    shutil.rmtree(public.root, ignore_errors=True)


def _lock_down(node: MimNode, log_group: int) -> None:
    (node.rel_root / "etc").chmod(0o700)
    os.chown(node.log_dir, 0, log_group)
    node.log_dir.chmod(0o750)


def _config(install: PublicInstall, node: MimNode, name: str) -> Path:
    state = install.root / f"state-{name}"
    state.mkdir()
    os.chown(state, NOBODY, NOBODY)
    config = install.root / f"{name}.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{state}"\n'
        f'[node]\nname = "{node.node_name}"\ncookie_file = "erlang-cookie"\n'
        f'[probes]\nlisteners = {{ c2s = "127.0.0.1:{node.spec.c2s_port}" }}\n'
        f'[logs]\npaths = ["{node.log_dir}/mongooseim.log*"]\nstart_at = "beginning"\n'
        '[fds]\ninterval = "500ms"\ntimeout = "500ms"\n'
        '[vm]\ninterval = "1s"\ntimeout = "1s"\n'
    )
    config.chmod(0o644)
    return config


def _credentials(base: Path, node: MimNode) -> Path:
    """What systemd makes of LoadCredential=: a directory only the service's user reads."""
    directory = base / "credentials"
    directory.mkdir()
    cookie = directory / "erlang-cookie"
    shutil.copyfile(node.spec.home / ".erlang.cookie", cookie)  # type: ignore[operator]
    for path, mode in ((cookie, 0o400), (directory, 0o500)):
        os.chown(path, NOBODY, NOBODY)
        path.chmod(mode)
    return directory


def _limits(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/limits").read_text()
    match = re.search(r"Max open files\s+(\d+)\s+(\d+)", text)
    assert match is not None
    return int(match.group(1)), int(match.group(2))


def _sees_everything(series: Series) -> bool:
    return (value(series, "mongooseim_process_open_fds") or 0) > 0 and (
        (value(series, "mongooseim_log_matches_total", pattern="emfile") or 0) >= 1
    ) and value(series, "mongooseim_vm_ports") is not None


def test_unprivileged_agent_sees_fds_logs_and_vm_tables_of_another_users_node(
    base: Path, node: MimNode, install: PublicInstall
) -> None:
    setpriv = require_binary("setpriv")
    log_group = grp.getgrnam("adm").gr_gid
    _lock_down(node, log_group)
    node.log_emfile_storm(3)
    credentials = _credentials(base, node)
    soft, hard = _limits(node.pid)

    agent = AgentProcess(
        _config(install, node, "granted"),
        prefix=[setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", f"--groups={log_group}"],
        python=install.python,
        env={**install.env, "CREDENTIALS_DIRECTORY": str(credentials)},
    )
    try:
        series = agent.poll_metrics(_sees_everything, timeout=30)
    finally:
        agent.stop()
    print(f"\nas nobody+adm with the credential: open_fds "
          f"{value(series, 'mongooseim_process_open_fds')}, nofile "
          f"{value(series, 'mongooseim_process_max_fds')}/"
          f"{value(series, 'mongooseim_process_max_fds_hard')}, emfile lines "
          f"{value(series, 'mongooseim_log_matches_total', pattern='emfile')}, ports "
          f"{value(series, 'mongooseim_vm_ports')}/{value(series, 'mongooseim_vm_port_limit')}, "
          f"configured port limit {value(series, 'mongooseim_vm_port_limit_configured')}")
    assert value(series, "mongooseim_process_max_fds") == soft
    assert value(series, "mongooseim_process_max_fds_hard") == hard
    assert value(series, "mongooseim_log_matches_total", pattern="emfile") == 3
    assert value(series, "mongooseim_dist_auth_success") == 1
    assert (value(series, "mongooseim_vm_process_limit") or 0) > 0
    # ERL_MAX_PORTS lives in the node's environment and its root-only vm.args: the live
    # table size (over distribution) is there, the configured one is not claimed.
    assert value(series, "mongooseim_vm_port_limit") == 65536
    assert value(series, "mongooseim_vm_port_limit_configured") is None

    denied = AgentProcess(
        _config(install, node, "denied"),
        prefix=[setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"],
        python=install.python, env=install.env,
    )
    try:
        series = denied.poll_metrics(_every_collector_ran, timeout=30)
        assert _every_collector_ran(series)
    finally:
        denied.stop()
    print(f"as nobody alone: fds still {value(series, 'mongooseim_process_open_fds')}, "
          f"emfile lines {value(series, 'mongooseim_log_matches_total', pattern='emfile')}, "
          f"auth {value(series, 'mongooseim_dist_auth_success')}, "
          f"ports {value(series, 'mongooseim_vm_ports')}")
    assert (value(series, "mongooseim_process_open_fds") or 0) > 0  # no privilege needed
    assert not (value(series, "mongooseim_log_matches_total", pattern="emfile") or 0)
    assert value(series, "mongooseim_vm_ports") is None
    assert value(series, "mongooseim_dist_auth_success") != 1


def _every_collector_ran(series: Series) -> bool:
    return all(
        value(series, "mongooseim_agent_collector_success", collector=name) is not None
        for name in ("fds", "vm", "logs")
    ) and (value(series, "mongooseim_process_open_fds") or 0) > 0
