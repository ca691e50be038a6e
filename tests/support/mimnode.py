"""A real Erlang node that stands in for MongooseIM, for pytest fixtures and `make demo`.

The node (tests/mim_node/src) is laid out and started the way a relx release of MongooseIM
is: cwd REL_ROOT, `-args_file etc/vm.args -config etc/app.config`, `-progname mongooseim`,
logs through OTP's disk_log wrap handler into REL_ROOT/log/mongooseim.log.N, REL_ROOT/var/status.
Hooks run on it through erl_call, which reads the cookie from a private HOME: beyond the
node's own `-setcookie` (which MongooseIM has too) the cookie is never on a command line, in
an exception text or in a repr.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MIM_NODE_DIR = Path(__file__).resolve().parent.parent / "mim_node"
SOURCE_DIR = MIM_NODE_DIR / "src"
CTL_SCRIPT = MIM_NODE_DIR / "mongooseimctl"

LOG_LEVELS = frozenset(
    {"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"}
)
_SNAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# erl_call -e prints the value of the last expression as `{ok, Term}` after the node's output.
_CALL_OK = "{ok, mim_call_ok}"
_INHERITED_FLAGS = frozenset({"ERL_FLAGS", "ERL_AFLAGS", "ERL_ZFLAGS", "ERL_LIBS", "ERL_MAX_PORTS"})


class MimNodeError(RuntimeError):
    """The stand-in node failed to build, start, stop or answer a hook."""


@dataclass(frozen=True)
class Otp:
    """Where the Erlang/OTP installation keeps what the stand-in needs."""

    root: Path
    bindir: Path
    erl: Path
    erlc: Path
    erl_call: Path


@functools.cache
def find_otp() -> Otp:
    """Locate OTP from `erl` on PATH (Debian: /usr/bin/erl -> /usr/lib/erlang/bin/erl)."""
    erl = shutil.which("erl")
    if erl is None:
        raise MimNodeError("erl is not on PATH")
    root = Path(erl).resolve().parent.parent
    bindirs = sorted(p.parent for p in root.glob("erts-*/bin/erlexec"))
    if not bindirs:
        raise MimNodeError(f"no erts-*/bin/erlexec under {root}")
    bindir = bindirs[-1]
    candidates = [bindir / "erl_call", *sorted(root.glob("lib/erl_interface-*/bin/erl_call"))]
    erl_call = next((p for p in candidates if os.access(p, os.X_OK)), None)
    if erl_call is None:
        raise MimNodeError(f"erl_call not found under {root}")
    return Otp(
        root=root,
        bindir=bindir,
        erl=root / "bin" / "erl",
        erlc=root / "bin" / "erlc",
        erl_call=erl_call,
    )


def default_cache_root() -> Path:
    return Path(tempfile.gettempdir()) / f"mongooseim-agent-{os.getuid()}"


@functools.cache
def build_ebin(cache_root: Path | None = None) -> Path:
    """Compile tests/mim_node/src once per source version; returns the ebin directory.

    Keyed by a hash of the sources and the OTP version, so parallel sessions and repeated runs
    share one build and an edited module is rebuilt. The directory is world-readable so a node
    started as another user can load it.
    """
    otp = find_otp()
    sources = sorted(SOURCE_DIR.glob("*.erl"))
    digest = hashlib.sha256(str(otp.bindir).encode())
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    root = cache_root or default_cache_root()
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    # The default root sits in the shared tmp dir: refuse one planted by another user.
    if root.is_symlink() or root.stat().st_uid != os.getuid():
        raise MimNodeError(f"{root} is not a directory owned by uid {os.getuid()}")
    ebin = root / f"mim_node-{digest.hexdigest()[:16]}"
    if ebin.is_dir():
        return ebin
    staging = Path(tempfile.mkdtemp(prefix="mim_node-build-", dir=root))
    compiled = subprocess.run(
        [str(otp.erlc), "-Wall", "-Werror", "-o", str(staging), *map(str, sources)],
        capture_output=True,
        text=True,
        check=False,
    )
    if compiled.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise MimNodeError(f"erlc failed:\n{compiled.stdout}{compiled.stderr}")
    staging.chmod(0o755)
    try:
        staging.rename(ebin)
    except OSError:
        # Another session finished the same build first; theirs is identical.
        shutil.rmtree(staging, ignore_errors=True)
    return ebin


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique_sname(prefix: str = "mim") -> str:
    """A node name no parallel session will pick: epmd refuses a second node of one name."""
    return f"{prefix}_{secrets.token_hex(4)}"


def random_cookie() -> str:
    return secrets.token_hex(16)


def short_hostname() -> str:
    """The host part the VM appends to an -sname."""
    return socket.gethostname().split(".")[0]


@dataclass(frozen=True, kw_only=True)
class MimNodeSpec:
    """How to configure one stand-in node; None leaves a vm.args line out, as in a release."""

    sname: str
    c2s_port: int
    # None: no -setcookie, the node reads (or creates) $HOME/.erlang.cookie.
    cookie: str | None = field(default=None, repr=False)
    # HOME of the node process; None keeps the caller's.
    home: Path | None = None
    erl_max_ports: int | None = None
    max_processes: int | None = None
    dist_range: tuple[int, int] | None = None
    # -name NAME@127.0.0.1 instead of -sname NAME.
    longnames: bool = False
    s2s_port: int | None = None
    http_port: int | None = None
    log_max_bytes: int = 10 * 1024 * 1024
    log_max_files: int = 5
    log_level: str = "warning"
    # What beam.smp's argv shows after -progname: relx releases show the script's name.
    progname: str = "mongooseim"
    # (soft, hard) RLIMIT_NOFILE the node starts with, as systemd's LimitNOFILE= sets it;
    # None inherits the caller's.
    nofile: tuple[int, int] | None = None
    # Answer cets_status:status(mongoose_cets_discovery) as a CETS node does (src/cets_status.erl).
    cets: bool = False
    # More vm.args lines, e.g. "-kernel prevent_overlapping_partitions false".
    extra_vm_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _SNAME.fullmatch(self.sname):
            raise ValueError(f"sname {self.sname!r}: letters, digits, '_' and '-' only")
        if self.cookie is not None and not re.fullmatch(r"[A-Za-z0-9_]+", self.cookie):
            raise ValueError("cookie: letters, digits and '_' only")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level {self.log_level!r}: one of {sorted(LOG_LEVELS)}")

    @property
    def node_name(self) -> str:
        host = "127.0.0.1" if self.longnames else short_hostname()
        return f"{self.sname}@{host}"


class MimNode:
    """One stand-in node in its release root; tracks beam.smp by PID, never by name."""

    def __init__(self, spec: MimNodeSpec, rel_root: Path, *, ebin: Path | None = None) -> None:
        self.spec = spec
        self.rel_root = rel_root.absolute()
        self._ebin = ebin
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._start_ticks: str | None = None

    def __repr__(self) -> str:
        return f"MimNode({self.node_name!r}, pid={self._pid}, rel_root={str(self.rel_root)!r})"

    @property
    def node_name(self) -> str:
        return self.spec.node_name

    @property
    def pid(self) -> int:
        if self._pid is None:
            raise MimNodeError(f"{self.node_name} is not started")
        return self._pid

    @property
    def log_dir(self) -> Path:
        return self.rel_root / "log"

    @property
    def log_file(self) -> Path:
        """The disk_log base name: the data is in log_file.1 .. log_file.N."""
        return self.log_dir / "mongooseim.log"

    @property
    def status_file(self) -> Path:
        return self.rel_root / "var" / "status"

    @property
    def vm_args_file(self) -> Path:
        return self.rel_root / "etc" / "vm.args"

    @property
    def app_config_file(self) -> Path:
        return self.rel_root / "etc" / "app.config"

    @property
    def ctl_path(self) -> Path:
        return self.rel_root / "bin" / "mongooseimctl"

    @property
    def pid_file(self) -> Path:
        return self.rel_root / "var" / "mim_node.pid"

    @property
    def console_file(self) -> Path:
        return self.rel_root / "var" / "console.log"

    # -- release root ------------------------------------------------------------------

    def prepare(self) -> None:
        """Write the release layout; rewriting it keeps logs and the mnesia dir."""
        for sub in ("bin", "etc", "log", "var"):
            (self.rel_root / sub).mkdir(parents=True, exist_ok=True)
        self.vm_args_file.write_text(self._vm_args())
        self.app_config_file.write_text(self._app_config())
        (self.rel_root / "etc" / "mongooseim.toml").write_text(self._toml())
        shutil.copy2(CTL_SCRIPT, self.ctl_path)
        if self.spec.cookie is not None:
            home = self._call_home()
            home.mkdir(mode=0o700, exist_ok=True)
            cookie_file = home / ".erlang.cookie"
            cookie_file.unlink(missing_ok=True)
            fd = os.open(cookie_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "w") as out:
                out.write(self.spec.cookie)

    def _vm_args(self) -> str:
        spec = self.spec
        lines = [f"-name {spec.node_name}" if spec.longnames else f"-sname {spec.sname}"]
        if spec.cookie is not None:
            lines.append(f"-setcookie {spec.cookie}")
        if spec.max_processes is not None:
            lines.append(f"+P {spec.max_processes}")
        if spec.erl_max_ports is not None:
            lines.append(f"-env ERL_MAX_PORTS {spec.erl_max_ports}")
        if spec.dist_range is not None:
            low, high = spec.dist_range
            lines.append(f"-kernel inet_dist_listen_min {low} inet_dist_listen_max {high}")
        lines.extend(spec.extra_vm_args)
        return "\n".join(lines) + "\n"

    def _app_config(self) -> str:
        spec = self.spec
        log_file = _erl_string(str(self.log_file))
        listeners = [("c2s", spec.c2s_port), ("s2s", spec.s2s_port), ("http", spec.http_port)]
        listener_terms = ", ".join(f"{{{name}, {port}}}" for name, port in listeners if port)
        formatter = "{mim_log_formatter, #{map_depth => 3, term_depth => 50}}"
        return f"""[
 {{kernel, [
   {{logger_level, {spec.log_level}}},
   %% Distribution on loopback only: nothing a test starts is reachable from elsewhere.
   {{inet_dist_use_interface, {{127, 0, 0, 1}}}},
   {{logger, [
     {{handler, default, logger_std_h, #{{formatter => {formatter}}}}},
     {{handler, disk_log, logger_disk_log_h, #{{
        level => all,
        config => #{{file => {log_file}, type => wrap,
                    max_no_files => {spec.log_max_files}, max_no_bytes => {spec.log_max_bytes},
                    sync_mode_qlen => 2000, drop_mode_qlen => 2000, flush_qlen => 5000,
                    overload_kill_enable => true}},
        formatter => {formatter}}}}}
   ]}}
 ]}},
 {{mnesia, [{{dir, {_erl_string(str(self.rel_root / f"Mnesia.{spec.node_name}"))}}}]}},
 {{mim_node, [
   {{status_file, {_erl_string(str(self.status_file))}}},
   {{cets, {"true" if spec.cets else "false"}}},
   {{listeners, [{listener_terms}]}}
 ]}}
].
"""

    def _toml(self) -> str:
        """A minimal mongooseim.toml naming the same listeners, for tools that read it."""
        spec = self.spec
        text = f'[general]\n  loglevel = "{spec.log_level}"\n  hosts = ["localhost"]\n'
        for name, port in (
            ("c2s", spec.c2s_port),
            ("s2s", spec.s2s_port),
            ("http", spec.http_port),
        ):
            if port:
                text += f"\n[[listen.{name}]]\n  port = {port}\n"
        return text

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        """Start the node; returns once var/status says started and c2s accepts."""
        if self.is_alive():
            raise MimNodeError(f"{self.node_name} is already running as pid {self._pid}")
        self.prepare()
        ebin = self._ebin or build_ebin()
        # A stale `started` from a killed run would end the wait below before the node is up.
        self.status_file.unlink(missing_ok=True)
        argv, env = self._command(ebin)
        with self.console_file.open("ab") as console:
            proc = subprocess.Popen(
                argv,
                cwd=self.rel_root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal does not reach the node; it is
                # stopped by PID like a service.
                start_new_session=True,
            )
        self._proc = proc
        deadline = time.monotonic() + timeout
        while not (self.read_status() == "started" and _accepts(self.spec.c2s_port)):
            if proc.poll() is not None:
                self._forget()
                raise MimNodeError(
                    f"{self.node_name} exited with status {proc.returncode} while starting:\n"
                    f"{self._console_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise MimNodeError(
                    f"{self.node_name} not started within {timeout}s:\n{self._console_tail()}"
                )
            time.sleep(0.02)
        self._pid = _beam_pid(proc.pid)
        self._start_ticks = _start_ticks(self._pid)
        self.pid_file.write_text(f"{self._pid}\n")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (OTP runs init:stop: status becomes `stopped`), SIGKILL after timeout.

        init:stop takes about 1 s on OTP 25 however idle the node: use stop_nodes() to stop
        several at once.
        """
        stop_nodes([self], timeout)

    def _terminate(self) -> None:
        if self._pid is not None:
            _signal(self._pid, signal.SIGTERM)

    def _reap(self, timeout: float) -> None:
        if self._pid is None:
            return
        if not self._wait_exit(timeout):
            _signal(self._pid, signal.SIGKILL)
            self._wait_exit(5.0)
        self._forget()

    def kill(self) -> None:
        """SIGKILL: a crash, var/status keeps saying `started`."""
        if self._pid is None and self._proc is not None:
            self._pid = self._proc.pid
        if self._pid is None:
            return
        _signal(self._pid, signal.SIGKILL)
        self._wait_exit(5.0)
        self._forget()

    def restart(self, timeout: float = 15.0) -> None:
        """Stop and start again: a new PID, same release root, logs and mnesia schema."""
        self.stop()
        self.start(timeout)

    def is_alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._pid is not None and _start_ticks(self._pid) == self._start_ticks

    def attach(self) -> bool:
        """Adopt a node started by another process from var/mim_node.pid (the demo's stop).

        The PID counts only if it is a beam.smp whose cwd is this release root, so a reused
        PID is never signalled.
        """
        try:
            pid = int(self.pid_file.read_text().strip())
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except (OSError, ValueError):
            return False
        if comm != "beam.smp" or cwd != self.rel_root.resolve():
            return False
        self._pid = pid
        self._start_ticks = _start_ticks(pid)
        return True

    def read_status(self) -> str:
        """REL_ROOT/var/status as written by the node; "" before the first write."""
        try:
            return self.status_file.read_text().strip()
        except FileNotFoundError:
            return ""

    def _command(self, ebin: Path) -> tuple[list[str], dict[str, str]]:
        otp = find_otp()
        # Flags inherited from the caller's shell would change the node under test.
        env = {k: v for k, v in os.environ.items() if k not in _INHERITED_FLAGS}
        # Only matters when no epmd runs yet: the one the node spawns then listens on loopback.
        env["ERL_EPMD_ADDRESS"] = "127.0.0.1"
        if self.spec.home is not None:
            env["HOME"] = str(self.spec.home)
        args = [
            "-args_file",
            str(self.vm_args_file),
            "-config",
            str(self.app_config_file),
            "-pa",
            str(ebin),
            "-noinput",
            "-s",
            "mim_node",
        ]
        # prlimit execs the command, so the limit is in place before ERTS sizes its tables
        # and the PID stays the node's.
        prefix = []
        if self.spec.nofile is not None:
            soft, hard = self.spec.nofile
            prefix = ["prlimit", f"--nofile={soft}:{hard}", "--"]
        if self.spec.progname == "erl":
            return [*prefix, str(otp.erl), *args], env
        # What a relx start script does: set up erlexec's environment and exec it directly.
        env.update(
            ROOTDIR=str(otp.root), BINDIR=str(otp.bindir), EMU="beam", PROGNAME=self.spec.progname
        )
        return [*prefix, str(otp.bindir / "erlexec"), *args], env

    def _wait_exit(self, timeout: float) -> bool:
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.is_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _forget(self) -> None:
        self._proc = None
        self._pid = None
        self._start_ticks = None
        self.pid_file.unlink(missing_ok=True)

    def _console_tail(self, lines: int = 30) -> str:
        try:
            text = self.console_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no console output)"
        return self._redact("\n".join(text.splitlines()[-lines:]))

    def _redact(self, text: str) -> str:
        if self.spec.cookie:
            return text.replace(self.spec.cookie, "***")
        return text

    # -- hooks -------------------------------------------------------------------------

    def _call_home(self) -> Path:
        """HOME for erl_call: holds the cookie file it reads instead of a -c argument."""
        if self.spec.cookie is not None:
            return self.rel_root / "var" / "erl_call_home"
        return self.spec.home or Path.home()

    def call(self, expr: str, timeout: float = 10.0) -> str:
        """Evaluate an Erlang expression sequence on the node; returns its value as `~0p`."""
        body = expr.strip().removesuffix(".")
        script = f'io:format("~0p~n", [begin {body} end]), mim_call_ok.\n'
        name_flag = "-name" if self.spec.longnames else "-sname"
        argv = [
            str(find_otp().erl_call),
            name_flag,
            self.node_name,
            "-fetch_stdout",
            "-timeout",
            str(math.ceil(timeout)),
            "-e",
        ]
        env = {**os.environ, "HOME": str(self._call_home())}
        try:
            done = subprocess.run(
                argv,
                input=script,
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout + 5,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise MimNodeError(f"call on {self.node_name} timed out: {body}") from exc
        out = done.stdout
        if done.returncode != 0 or not out.endswith(_CALL_OK):
            detail = self._redact((out + done.stderr).strip())
            raise MimNodeError(f"call on {self.node_name} failed: {body}: {detail}")
        return out.removesuffix(_CALL_OK).rstrip("\n")

    def open_fds(self, n: int) -> int:
        """Make the node hold n more fds (UDP sockets: one fd and one port each).

        Returns how many it holds in all; raises when it could not open them all (emfile).
        """
        reply = self.call(f"mim_hooks:open_fds({int(n)})")
        ok = re.fullmatch(r"\{ok,(\d+)\}", reply)
        if ok is None:
            raise MimNodeError(f"open_fds({n}) on {self.node_name}: {reply}")
        return int(ok.group(1))

    def exhaust_fds(self, hold: float) -> int:
        """Open fds until the node hits its nofile limit, hold them `hold` seconds, then close
        them all; returns how many it opened.

        Meanwhile the c2s listener logs ranch's emfile warning every 100 ms while a client
        waits, and no hook can be called: distribution cannot accept a connection either.
        """
        reply = self.call(f"mim_hooks:exhaust_fds({round(hold * 1000)})", timeout=60.0)
        full = re.fullmatch(r"\{error,emfile,(\d+)\}", reply)
        if full is None:
            raise MimNodeError(f"exhaust_fds() on {self.node_name}: {reply}")
        return int(full.group(1))

    def close_fds(self) -> int:
        """Close every fd open_fds opened; returns how many."""
        reply = self.call("mim_hooks:close_fds()")
        ok = re.fullmatch(r"\{ok,(\d+)\}", reply)
        if ok is None:
            raise MimNodeError(f"close_fds() on {self.node_name}: {reply}")
        return int(ok.group(1))

    def log(self, level: str, what: str, fields: Mapping[str, str | int] | None = None) -> None:
        """Log a structured event as ?LOG_<LEVEL>(#{what => What, ...}) does; on disk on return."""
        if level not in LOG_LEVELS:
            raise ValueError(f"level {level!r}: one of {sorted(LOG_LEVELS)}")
        pairs = ", ".join(f"{_erl_atom(k)} => {_erl_value(v)}" for k, v in (fields or {}).items())
        self._expect_ok(f"mim_hooks:log({level}, {_erl_atom(what)}, #{{{pairs}}})")

    def log_emfile_storm(self, n: int) -> None:
        """Write n ranch `out of file descriptors` warnings; all on disk on return."""
        self._expect_ok(f"mim_hooks:log_emfile_storm({int(n)})")

    def status(self) -> str:
        """The node's own view: starting, started or stopping."""
        return self.call("mim_hooks:status()")

    def db_nodes(self) -> list[str]:
        return _atom_list(self.call("mnesia:system_info(db_nodes)"))

    def running_db_nodes(self) -> list[str]:
        return _atom_list(self.call("mnesia:system_info(running_db_nodes)"))

    def join_cluster(self, other: str) -> None:
        """Join the mnesia cluster of node `other` (same cookie), with a disc schema copy."""
        self._expect_ok(f"mim_node:join_cluster({_erl_atom(other)})", timeout=30.0)

    def ctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run REL_ROOT/bin/mongooseimctl with args."""
        return subprocess.run(
            [str(self.ctl_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _expect_ok(self, expr: str, timeout: float = 10.0) -> None:
        reply = self.call(expr, timeout)
        if reply != "ok":
            raise MimNodeError(f"{expr} on {self.node_name}: {reply}")


def stop_nodes(nodes: Iterable[MimNode], timeout: float = 10.0) -> None:
    """Stop nodes in parallel: SIGTERM to all, then wait for each (SIGKILL after timeout)."""
    pending = list(nodes)
    for node in pending:
        node._terminate()
    deadline = time.monotonic() + timeout
    for node in pending:
        node._reap(max(0.0, deadline - time.monotonic()))


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _beam_pid(pid: int) -> int:
    """The beam.smp PID: the one started when erl execs into it (it does on OTP 25), else
    the beam.smp among its descendants."""
    process = psutil.Process(pid)
    if process.name() == "beam.smp":
        return pid
    for child in process.children(recursive=True):
        if child.name() == "beam.smp":
            return child.pid
    raise MimNodeError(f"no beam.smp at or below pid {pid}")


def _start_ticks(pid: int) -> str | None:
    """/proc/PID/stat start time: tells the process apart from a later one with its PID.

    None once it has exited: a zombie waiting for its (adopted) parent to reap it is gone too.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] in {"Z", "X"} else fields[19]


def _signal(pid: int, signum: signal.Signals) -> None:
    # Already gone is what the caller wants.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _erl_string(text: str) -> str:
    return '"' + _erl_escape(text, '"') + '"'


def _erl_atom(text: str) -> str:
    return "'" + _erl_escape(text, "'") + "'"


def _erl_value(value: str | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return f'<<"{_erl_escape(value, chr(34))}"/utf8>>'


def _erl_escape(text: str, quote: str) -> str:
    """Escape for an Erlang literal, keeping the source ASCII (erl_call mangles non-ASCII)."""
    out = []
    for char in text:
        if char in (quote, "\\"):
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append(f"\\x{{{ord(char):X}}}")
    return "".join(out)


def _atom_list(text: str) -> list[str]:
    """`[a@h,'b-c@h']` as printed by ~0p into names."""
    inner = text.strip().removeprefix("[").removesuffix("]")
    return [item.strip("'") for item in inner.split(",") if item]


def start_nodes(nodes: Iterable[MimNode], timeout: float = 30.0) -> None:
    """Start nodes side by side (each start mostly waits on the VM booting)."""
    pending = list(nodes)
    errors: list[BaseException] = []

    def start(node: MimNode) -> None:
        try:
            node.start(timeout)
        except BaseException as exc:  # noqa: BLE001 - reported below, after the others
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(node,)) for node in pending]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        stop_nodes(pending)
        raise errors[0]


def form_cluster(nodes: Sequence[MimNode], timeout: float = 60.0) -> None:
    """Join every node to the first one's mnesia cluster through the stand-in
    `mongooseimctl join_cluster -f`, one at a time as the guide does; each ends with a disc
    copy of the schema. Nodes already running in the first one's cluster are left alone."""
    seed = nodes[0]
    members = set(seed.running_db_nodes())
    for node in nodes[1:]:
        if node.node_name in members:
            # Restarted from its disc schema: it rejoined on its own.
            continue
        done = node.ctl("join_cluster", "-f", seed.node_name, timeout=timeout)
        if done.returncode != 0:
            raise MimNodeError(f"join_cluster {node.node_name} -> {seed.node_name}: "
                               f"{node._redact(done.stdout + done.stderr)}")
    expected = sorted(node.node_name for node in nodes)
    deadline = time.monotonic() + timeout
    while sorted(seed.running_db_nodes()) != expected:
        if time.monotonic() > deadline:
            raise MimNodeError(f"cluster not formed: {seed.running_db_nodes()} != {expected}")
        time.sleep(0.1)
