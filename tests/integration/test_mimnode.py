"""The MongooseIM stand-in node behaves as MONGOOSEIM.md documents the real one."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.mimnode import (
    MimNode,
    MimNodeSpec,
    build_ebin,
    free_port,
    random_cookie,
    stop_nodes,
    unique_sname,
)
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

RANCH_EMFILE = 'unstructured_log="Ranch acceptor reducing accept rate: out of file descriptors\\n"'
LINE_HEAD = re.compile(
    r"when=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 level=(?P<level>\w+)"
    r"(?: what=(?P<what>\S+))?(?: reason=(?P<reason>\"[^\"]*\"|\S+))? pid=<0\.\d+\.0>"
    r" at=(?P<at>\S*) (?P<rest>.*)$"
)


def fd_count(pid: int) -> int:
    return os.stat(f"/proc/{pid}/fd").st_size


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {predicate.__doc__}")
        time.sleep(0.01)


def settled_fd_count(pid: int) -> int:
    """The fd count once it holds still: each hook call's distribution connection is closed
    by the node a moment after erl_call exits."""
    last, stable_since = fd_count(pid), time.monotonic()
    while time.monotonic() - stable_since < 0.15:
        time.sleep(0.01)
        now = fd_count(pid)
        if now != last:
            last, stable_since = now, time.monotonic()
    return last


def log_lines(node: MimNode) -> list[str]:
    """Every line in the wrap files mongooseim.log.1..N (not .idx/.siz), oldest file first."""
    files = sorted(node.log_dir.glob("mongooseim.log.[0-9]*"), key=lambda p: p.stat().st_mtime)
    return [line for path in files for line in path.read_text().splitlines()]


def spec(**overrides: object) -> MimNodeSpec:
    defaults: dict[str, object] = {
        "sname": unique_sname(),
        "c2s_port": free_port(),
        "cookie": random_cookie(),
    }
    return MimNodeSpec(**{**defaults, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ebin() -> Path:
    require_binary("erl")
    return build_ebin()


@pytest.fixture
def nodes(ebin: Path, tmp_path: Path) -> Iterator[Callable[[MimNodeSpec], MimNode]]:
    started: list[MimNode] = []

    def start(node_spec: MimNodeSpec) -> MimNode:
        node = MimNode(node_spec, tmp_path / node_spec.sname, ebin=ebin)
        started.append(node)
        node.start()
        return node

    yield start
    stop_nodes(started)


@pytest.fixture(scope="module")
def mim(ebin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MimNode]:
    """One node shared by the read-mostly tests, configured like a tuned production node."""
    low = free_port()
    node = MimNode(
        spec(
            erl_max_ports=70000,
            max_processes=500000,
            dist_range=(low, low + 20),
            home=tmp_path_factory.mktemp("home"),
        ),
        tmp_path_factory.mktemp("rel") / "mongooseim",
        ebin=ebin,
    )
    node.start()
    yield node
    node.stop()


def test_beam_argv_has_vm_args_flags_but_env_goes_to_environ(mim: MimNode) -> None:
    """vm.args reaches beam.smp's argv, except -env ERL_MAX_PORTS which is only in environ."""
    require_binary("erl")
    assert Path(f"/proc/{mim.pid}/comm").read_text().strip() == "beam.smp"
    argv = Path(f"/proc/{mim.pid}/cmdline").read_bytes().decode().split("\0")
    assert argv[argv.index("-sname") + 1] == mim.spec.sname
    assert argv[argv.index("-progname") + 1] == "mongooseim"
    # erlexec rewrites +P into an emulator flag -P ahead of the first `--`.
    assert argv[argv.index("-P") + 1] == "500000"
    assert argv[argv.index("-P") :].index("--") > 0
    low, high = mim.spec.dist_range or (0, 0)
    kernel = argv.index("-kernel")
    assert argv[kernel : kernel + 5] == [
        "-kernel",
        "inet_dist_listen_min",
        str(low),
        "inet_dist_listen_max",
        str(high),
    ]
    cookie_in_argv = argv[argv.index("-setcookie") + 1] == mim.spec.cookie
    assert cookie_in_argv, "-setcookie in beam's argv is not the spec's cookie"
    assert not any("ERL_MAX_PORTS" in arg for arg in argv)
    environ = Path(f"/proc/{mim.pid}/environ").read_bytes().split(b"\0")
    assert b"ERL_MAX_PORTS=70000" in environ
    assert Path(os.readlink(f"/proc/{mim.pid}/cwd")) == mim.rel_root


def test_port_and_process_limits_round_up_to_powers_of_two(mim: MimNode) -> None:
    """ERL_MAX_PORTS 70000 gives a port table of 131072; +P 500000 gives 524288 processes."""
    require_binary("erl")
    assert mim.call("erlang:system_info(port_limit)") == "131072"
    assert mim.call("erlang:system_info(process_limit)") == "524288"


def test_release_root_layout_and_status(mim: MimNode) -> None:
    """The release root has etc/vm.args, etc/app.config, log/, a mnesia dir and var/status."""
    require_binary("erl")
    assert mim.read_status() == "started"
    assert mim.status() == "started"
    assert "-env ERL_MAX_PORTS 70000" in mim.vm_args_file.read_text().splitlines()
    assert "logger_disk_log_h" in mim.app_config_file.read_text()
    assert (mim.rel_root / f"Mnesia.{mim.node_name}" / "schema.DAT").is_file()
    assert mim.call("mnesia:table_info(schema, storage_type)") == "disc_copies"


def test_structured_log_line_format(mim: MimNode) -> None:
    """A ?LOG_WARNING report comes out in MongooseIM's logfmt, lifted fields first."""
    require_binary("erl")
    mim.log(
        "warning",
        "mimnode_format_check",
        {"reason": "bad thing", "text": "quoted when it has spaces", "key": "value", "n": 5},
    )
    mim.log("info", "mimnode_below_level")
    lines = [line for line in log_lines(mim) if "what=mimnode_" in line]
    assert len(lines) == 1, "info is below the warning primary level and must not be written"
    head = LINE_HEAD.fullmatch(lines[0])
    assert head is not None, lines[0]
    assert head["level"] == "warning"
    assert head["what"] == "mimnode_format_check"
    assert head["reason"] == '"bad thing"'
    assert re.fullmatch(r"mim_hooks:log/3:\d+", head["at"])
    assert head["rest"] == 'text="quoted when it has spaces" n=5 key=value '


def test_emfile_storm_lines_look_like_ranch(mim: MimNode) -> None:
    """log_emfile_storm(n) writes n ranch warnings, unstructured, without a location."""
    require_binary("erl")
    before = sum(RANCH_EMFILE in line for line in log_lines(mim))
    mim.log_emfile_storm(20)
    lines = [line for line in log_lines(mim) if RANCH_EMFILE in line]
    assert len(lines) - before == 20
    head = LINE_HEAD.fullmatch(lines[-1])
    assert head is not None, lines[-1]
    assert (head["level"], head["what"], head["at"]) == ("warning", None, ":")
    assert head["rest"] == RANCH_EMFILE + " "


def test_c2s_holds_each_connection_as_one_fd(mim: MimNode) -> None:
    """Every open client connection on the c2s port costs the node one fd until it closes."""
    require_binary("erl")
    base = settled_fd_count(mim.pid)
    clients = [socket.create_connection(("127.0.0.1", mim.spec.c2s_port)) for _ in range(5)]
    try:
        wait_for(lambda: fd_count(mim.pid) == base + 5)
    finally:
        for client in clients:
            client.close()
    wait_for(lambda: fd_count(mim.pid) == base)


def test_open_fds_raises_the_fd_count_by_exactly_n(mim: MimNode) -> None:
    """open_fds(n) adds n fds (and n ports); close_fds() gives them back."""
    require_binary("erl")
    base = settled_fd_count(mim.pid)
    ports = int(mim.call("erlang:system_info(port_count)"))
    assert mim.open_fds(300) == 300
    assert settled_fd_count(mim.pid) == base + 300
    assert int(mim.call("erlang:system_info(port_count)")) == ports + 300
    assert mim.close_fds() == 300
    assert settled_fd_count(mim.pid) == base


def test_ctl_status_and_mnesia_output(mim: MimNode) -> None:
    """mongooseimctl status, mnesia info and mnesia systemInfo print what MongooseIM prints."""
    require_binary("erl")
    status = mim.ctl("status")
    assert status.returncode == 0
    assert status.stdout.startswith(f"MongooseIM node {mim.node_name}:\n")
    assert f"    operating system pid: {mim.pid}\n" in status.stdout
    assert "    Erlang VM status: started (of: starting | started | stopping)\n" in status.stdout

    info = mim.ctl("mnesia", "info")
    assert info.returncode == 0
    assert f"running db nodes   = [{mim.node_name}]\n" in info.stdout
    assert "stopped db nodes   = [] \n" in info.stdout

    keys = mim.ctl("mnesia", "systemInfo", "--keys", '["db_nodes","running_db_nodes"]')
    assert keys.returncode == 0
    assert json.loads(keys.stdout) == {
        "data": {
            "mnesia": {
                "systemInfo": [
                    {"key": "db_nodes", "result": [mim.node_name]},
                    {"key": "running_db_nodes", "result": [mim.node_name]},
                ]
            }
        }
    }
    bad = mim.ctl("mnesia", "systemInfo", "--keys", '["no_such_key"]')
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["errors"][0]["extensions"]["code"] == "bad_key_error"


def test_cookie_stays_out_of_reprs_and_ctl_output(mim: MimNode) -> None:
    """Neither the spec, the node nor mongooseimctl's output shows the cookie."""
    require_binary("erl")
    cookie = mim.spec.cookie or ""
    outputs = [repr(mim.spec), repr(mim), mim.ctl("status").stdout, mim.ctl("bogus").stderr]
    leaked = [text for text in outputs if cookie in text]
    assert not leaked, f"{len(leaked)} outputs contain the cookie"


def test_disk_log_wraps_through_every_file(nodes: Callable[[MimNodeSpec], MimNode]) -> None:
    """With tiny max_no_bytes the wrap log cycles .1 .. .N and drops the oldest lines."""
    require_binary("erl")
    node = nodes(spec(log_max_bytes=2048, log_max_files=3))
    for seq in range(60):
        node.log("warning", "mimnode_wrap", {"seq": seq})
    names = sorted(p.name for p in node.log_dir.iterdir())
    assert names == [
        "mongooseim.log.1",
        "mongooseim.log.2",
        "mongooseim.log.3",
        "mongooseim.log.idx",
        "mongooseim.log.siz",
    ]
    seqs = sorted(
        int(match[1]) for line in log_lines(node) if (match := re.search(r" seq=(\d+) ", line))
    )
    # 60 lines of ~150 bytes cannot fit in 3 x 2 KiB: the oldest were overwritten, and what
    # is left is the newest stretch without gaps.
    assert seqs[-1] == 59
    assert seqs[0] > 0
    assert seqs == list(range(seqs[0], 60))
    for path in node.log_dir.glob("mongooseim.log.[0-9]"):
        assert path.stat().st_size <= 2048 + 200


def test_stop_restart_kill_and_cluster(nodes: Callable[[MimNodeSpec], MimNode]) -> None:
    """Two nodes join one mnesia cluster; kill, restart and stop show as MongooseIM shows them."""
    require_binary("erl")
    cookie = random_cookie()
    first = nodes(spec(cookie=cookie))
    second = nodes(spec(cookie=cookie))
    second.join_cluster(first.node_name)
    assert sorted(first.running_db_nodes()) == sorted([first.node_name, second.node_name])

    old_pid = second.pid
    second.kill()
    assert second.read_status() == "started", "a killed node leaves its status file behind"
    down = second.ctl("status")
    assert (down.returncode, down.stdout) == (
        3,
        f"Failed RPC connection to the node {second.node_name}: nodedown\n",
    )
    wait_for(lambda: first.running_db_nodes() == [first.node_name])
    info = first.ctl("mnesia", "info").stdout
    assert f"stopped db nodes   = [{second.node_name}] \n" in info

    second.start()
    assert second.pid != old_pid
    assert sorted(second.running_db_nodes()) == sorted([first.node_name, second.node_name])

    pid = second.pid
    second.restart()
    assert second.pid != pid
    second.stop()
    assert second.read_status() == "stopped"


def test_release_variants_longnames_home_cookie_erl_progname(
    nodes: Callable[[MimNodeSpec], MimNode], tmp_path: Path
) -> None:
    """-name, no -setcookie ($HOME/.erlang.cookie of the node's HOME) and -progname erl."""
    require_binary("erl")
    home = tmp_path / "home"
    home.mkdir()
    node = nodes(spec(cookie=None, home=home, longnames=True, progname="erl"))
    argv = Path(f"/proc/{node.pid}/cmdline").read_bytes().decode().split("\0")
    assert argv[argv.index("-name") + 1] == node.node_name == f"{node.spec.sname}@127.0.0.1"
    assert argv[argv.index("-progname") + 1] == "erl"
    assert "-setcookie" not in argv
    assert (home / ".erlang.cookie").stat().st_mode & 0o777 == 0o400
    assert node.call("node()") == f"'{node.node_name}'"
    # Without ERL_MAX_PORTS the table follows nofile but never goes below 65536 (OTP 25).
    assert node.call("erlang:system_info(port_limit)") == "65536"


def test_fd_exhaustion_logs_a_real_ranch_storm(nodes: Callable[[MimNodeSpec], MimNode]) -> None:
    """At its nofile limit the c2s listener logs ranch's warning every 100 ms until fds free."""
    require_binary("erl")
    node = nodes(spec(nofile=(128, 256)))
    limits = Path(f"/proc/{node.pid}/limits").read_text()
    assert re.search(r"Max open files\s+128\s+256\s", limits)
    base = settled_fd_count(node.pid)
    opened = node.exhaust_fds(hold=0.5)
    assert 126 <= base + opened <= 128
    client = socket.create_connection(("127.0.0.1", node.spec.c2s_port))
    try:
        wait_for(lambda: sum(RANCH_EMFILE in line for line in log_lines(node)) >= 2)
        # Once the hold ends the fds are released and the waiting client is accepted.
        wait_for(lambda: fd_count(node.pid) == base + 1)
    finally:
        client.close()
    assert node.call("ok") == "ok"
