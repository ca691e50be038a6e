"""Node discovery on fixture /proc trees: naming, limits sources, restarts, ambiguity."""

from pathlib import Path

from mongooseim_agent.mongooseim.discovery import NodeLocator, NodeTracker
from tests.support.fakeproc import FIXTURES, add_process, beam_argv, make_host


def _locator(root: Path, **kwargs: object) -> NodeLocator:
    return NodeLocator(proc_root=root, hostname=lambda: "host1.example.com", **kwargs)  # type: ignore[arg-type]


def test_sname_gets_short_hostname_and_env_max_ports(tmp_path: Path) -> None:
    """-sname without @ becomes name@shorthost; ERL_MAX_PORTS comes from environ."""
    make_host(tmp_path)
    add_process(tmp_path, 100, beam_argv("-sname", "mongooseim", "-setcookie", "c",
                                         emulator=("-P", "1000")),
                environ={"ERL_MAX_PORTS": "250000"})
    found = NodeTracker(_locator(tmp_path), None).refresh()
    assert found.node is not None
    assert found.node.name == "mongooseim@host1"
    assert found.node.max_ports == 250000
    assert found.node.max_ports_source == "environ"
    assert found.node.max_processes == 1000
    assert str(found.node.cookie) == "***"


def test_plus_q_wins_over_env(tmp_path: Path) -> None:
    """+Q (-Q in beam argv) overrides ERL_MAX_PORTS."""
    make_host(tmp_path)
    add_process(tmp_path, 100, beam_argv("-sname", "m", emulator=("-Q", "65536")),
                environ={"ERL_MAX_PORTS": "250000"})
    node = NodeTracker(_locator(tmp_path), None).refresh().node
    assert node is not None
    assert (node.max_ports, node.max_ports_source) == (65536, "+Q")


def test_unreadable_environ_falls_back_to_release_vm_args(tmp_path: Path) -> None:
    """Another user's environ is unreadable: vm.args of the release root is used."""
    make_host(tmp_path)
    rel = tmp_path / "rel"
    (rel / "etc").mkdir(parents=True)
    (rel / "etc" / "vm.args").write_text((FIXTURES / "vm.args").read_text())
    add_process(tmp_path, 100, beam_argv("-sname", "mongooseim@localhost", "-config",
                                         f"{rel}/etc/app.config"))
    node = NodeTracker(_locator(tmp_path), None).refresh().node
    assert node is not None
    assert node.release_root == rel
    assert (node.max_ports, node.max_ports_source) == (250000, "vm.args")


def test_hidden_and_nameless_beams_are_not_nodes(tmp_path: Path) -> None:
    """mongooseimctl's hidden node and non-distributed beams are ignored."""
    make_host(tmp_path)
    add_process(tmp_path, 100, beam_argv("-sname", "ctl_1", "-hidden"))
    add_process(tmp_path, 101, beam_argv("-noshell"))
    add_process(tmp_path, 102, beam_argv("-sname", "x"), comm="bash")
    found = NodeTracker(_locator(tmp_path), None).refresh()
    assert found.node is None
    assert found.problem == "no distributed Erlang node (beam.smp) is running"


def test_several_nodes_need_a_name_unless_one_is_mongooseim(tmp_path: Path) -> None:
    """Two nodes are ambiguous; progname mongooseim picks one; a configured name picks too."""
    make_host(tmp_path)
    add_process(tmp_path, 100, beam_argv("-sname", "a"))
    add_process(tmp_path, 101, beam_argv("-sname", "b"))
    found = NodeTracker(_locator(tmp_path), None).refresh()
    assert found.node is None
    assert found.problem is not None and "set [node] name" in found.problem
    named = NodeTracker(_locator(tmp_path), "b@host1").refresh()
    assert named.node is not None and named.node.pid == 101
    short = NodeTracker(_locator(tmp_path), "a").refresh()
    assert short.node is not None and short.node.pid == 100
    argv = beam_argv("-sname", "c")
    argv[argv.index("erl")] = "mongooseim"
    add_process(tmp_path, 102, argv)
    picked = NodeTracker(_locator(tmp_path), None).refresh()
    assert picked.node is not None and picked.node.pid == 102


def test_restart_is_followed_and_known_pid_not_rescanned(tmp_path: Path) -> None:
    """A live known PID is re-validated by start time; a new PID is found after a restart."""
    make_host(tmp_path)
    add_process(tmp_path, 100, beam_argv("-sname", "m"))
    tracker = NodeTracker(_locator(tmp_path), "m@host1")
    assert tracker.refresh().node is not None
    # A decoy appearing later is not seen while the known PID lives: no rescan happened.
    add_process(tmp_path, 50, beam_argv("-sname", "m"), start_ticks=1)
    node = tracker.refresh().node
    assert node is not None and node.pid == 100
    for name in ("cmdline", "stat", "status", "comm"):
        (tmp_path / "100" / name).unlink()
    restarted = tracker.refresh().node
    assert restarted is not None and restarted.pid == 50


def test_reused_pid_with_other_start_time_is_rescanned(tmp_path: Path) -> None:
    """Same PID, different start time: the process is re-read, not trusted."""
    make_host(tmp_path)
    add_process(tmp_path, 100, beam_argv("-sname", "m"), start_ticks=10)
    tracker = NodeTracker(_locator(tmp_path), "m@host1")
    assert tracker.refresh().node is not None
    (tmp_path / "100" / "cmdline").write_bytes(b"\0".join(
        a.encode() for a in beam_argv("-sname", "other")) + b"\0")
    (tmp_path / "100" / "stat").write_text("100 (beam.smp) S " + "0 " * 18 + "99 0 0")
    found = tracker.refresh()
    assert found.node is None
    assert tracker.wanted_name == "m@host1"
