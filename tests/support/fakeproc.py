"""Builds a /proc-shaped tree from committed fixture text, for pure discovery tests."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "proc"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def add_process(
    root: Path,
    pid: int,
    argv: list[str],
    *,
    comm: str = "beam.smp",
    environ: dict[str, str] | None = None,
    uid: int = 1000,
    start_ticks: int = 987654,
    limits: str = "limits_linux6.txt",
    cwd: Path | None = None,
) -> Path:
    base = root / str(pid)
    (base / "fd").mkdir(parents=True)
    (base / "comm").write_text(comm + "\n")
    (base / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
    if environ is not None:
        (base / "environ").write_bytes(
            b"".join(f"{k}={v}".encode() + b"\0" for k, v in environ.items())
        )
    (base / "status").write_text(f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (base / "stat").write_text(
        f"{pid} ({comm}) S 1 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start_ticks} 0 0"
    )
    (base / "limits").write_text(fixture(limits))
    if cwd is not None:
        (base / "cwd").symlink_to(cwd)
    return base


def add_otp_install(root: Path, version: str) -> Path:
    """An OTP installation's releases/<major>/OTP_VERSION, as Debian's erlang-base has it."""
    release = root / "releases" / version.split(".", maxsplit=1)[0]
    release.mkdir(parents=True)
    (release / "OTP_VERSION").write_text(version + "\n")
    return root


def make_host(root: Path, file_nr: str = "469\t0\t2466170\n", nr_open: int = 1048576) -> None:
    (root / "sys" / "fs").mkdir(parents=True, exist_ok=True)
    (root / "sys" / "fs" / "file-nr").write_text(file_nr)
    (root / "sys" / "fs" / "nr_open").write_text(f"{nr_open}\n")
    (root / "stat").write_text("cpu  1 2 3\nbtime 1763900000\n")


def beam_argv(
    *init_args: str, emulator: tuple[str, ...] = (), root: str = "/usr/lib/erlang"
) -> list[str]:
    """beam.smp's argv as erlexec builds it (checked on OTP 25)."""
    return [
        f"{root}/erts-13.1.5/bin/beam.smp",
        *emulator,
        "--",
        "-root", root, "-bindir", f"{root}/erts-13.1.5/bin",
        "-progname", "erl", "--", "-home", "/home/mongooseim", "--",
        *init_args,
        "--",
    ]
