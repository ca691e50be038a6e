"""vm.args and beam argv parsing: what the node's command line says about its limits."""

from pathlib import PurePosixPath

from mongooseim_agent.mongooseim.vmargs import (
    parse_beam_argv,
    parse_vm_args_file,
    release_root_from_args,
)
from tests.support.fakeproc import FIXTURES, beam_argv


def test_release_vm_args_defaults() -> None:
    """MongooseIM's shipped vm.args: name, +P, ERL_MAX_PORTS from -env, commented range."""
    args = parse_vm_args_file((FIXTURES / "vm.args").read_text())
    assert args.node_name == "mongooseim@localhost"
    assert args.max_processes == 10_000_000
    assert args.env["ERL_MAX_PORTS"] == "250000"
    assert args.dist_port_range is None
    assert args.max_ports is None


def test_beam_argv_emulator_flags_and_kernel_range() -> None:
    """+P/+Q appear as -P/-Q before the first '--'; -kernel pairs give the dist range."""
    argv = beam_argv(
        "-sname", "mim", "-setcookie", "c", "-kernel", "inet_dist_listen_min", "50000",
        "inet_dist_listen_max", "50010",
        emulator=("-P", "500000", "-Q", "65536"),
    )
    args = parse_beam_argv(argv)
    assert args.sname == "mim"
    assert args.max_processes == 500000
    assert args.max_ports == 65536
    assert args.dist_port_range == (50000, 50010)
    assert not args.longnames


def test_dash_p_after_separator_is_not_process_limit() -> None:
    """A -P in the init section is a user flag, not the emulator's process limit."""
    args = parse_beam_argv(beam_argv("-name", "a@h.example", "-P", "7"))
    assert args.max_processes is None
    assert args.longnames


def test_cookie_is_not_in_repr() -> None:
    """The parsed cookie is kept but never shows in a repr."""
    args = parse_beam_argv(beam_argv("-sname", "n", "-setcookie", "s3cr3t-value"))
    assert args.cookie == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(args)


def test_release_root_from_boot_or_config() -> None:
    """relx puts -boot REL/releases/VSN/start and -config REL/etc/app.config in argv."""
    boot = parse_beam_argv(beam_argv("-boot", "/usr/lib/mongooseim/releases/6.3.0/start"))
    assert release_root_from_args(boot) == PurePosixPath("/usr/lib/mongooseim")
    config = parse_beam_argv(beam_argv("-config", "/opt/mim/etc/app.config"))
    assert release_root_from_args(config) == PurePosixPath("/opt/mim")
    assert release_root_from_args(parse_beam_argv(beam_argv("-sname", "x"))) is None


def test_garbage_vm_args_do_not_crash() -> None:
    """Unbalanced quotes and stray values are tolerated."""
    args = parse_vm_args_file('stray\n-sname "unterminated\n+P\n-env ONLY_NAME\n')
    assert args.max_processes is None
    assert args.env == {}
