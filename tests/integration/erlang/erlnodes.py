"""Real epmd and Erlang nodes for the wire-protocol tests.

Everything binds 127.0.0.1 on free ports, uses a private epmd (`epmd -port P` in the
foreground, nodes started with ERL_EPMD_PORT=P and -start_epmd false so they never start
or touch the host's epmd), a private HOME (erl would otherwise write ~/.erlang.cookie), and
is stopped by its PID.

Each node runs a control loop on its stdin/stdout, independent of distribution: a line of
Erlang expressions in, `@@OK <hex of term_to_binary(Value, [{minor_version, 2}])>` out. The
tests use it as the oracle (atom counts, nodes(), golden terms) so that the client under
test never checks itself.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent.erlang import etf
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.node import NodeProcess

START_TIMEOUT = 20.0
EVAL_TIMEOUT = 10.0

_CONTROL_LOOP = """
spawn(fun() ->
    Loop = fun Loop() ->
        case io:get_line('') of
            eof -> erlang:halt();
            Line ->
                Out = try
                    {ok, Toks, _} = erl_scan:string(Line),
                    {ok, Exprs} = erl_parse:parse_exprs(Toks),
                    {value, V, _} = erl_eval:exprs(Exprs, []),
                    ["@@OK ", binary:encode_hex(term_to_binary(V, [{minor_version, 2}]))]
                catch C:R -> io_lib:format("@@ERROR ~p:~p", [C, R])
                end,
                io:put_chars([Out, $\\n]),
                Loop()
        end
    end,
    Loop()
end).
"""


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """SIGSTOP a process we started: its listening sockets still accept (the kernel does
    that) but it answers nothing, exactly like a wedged VM or epmd. SIGCONT on the way out."""
    os.kill(pid, signal.SIGSTOP)
    # The stop is delivered asynchronously: until every thread is stopped, the VM may still
    # answer one more request.
    deadline = time.monotonic() + 5
    while not _all_threads_stopped(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _all_threads_stopped(pid: int) -> bool:
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in {"T", "t"}:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop one process we started, by its PID: TERM, then KILL after `grace`."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)  # in case a test froze it
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


class Epmd:
    """A private epmd on a free port of 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = (workdir / f"epmd-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            ["epmd", "-port", str(self.port), "-address", "127.0.0.1"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        wait_port(self.port, time.monotonic() + START_TIMEOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def names(self) -> dict[str, int]:
        """NAMES through a plain socket: an oracle independent of the client under test."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"\x00\x01n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        names = {}
        for line in data[4:].decode().splitlines():
            _, name, _, _, port = line.split()
            names[name] = int(port)
        return names

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


@dataclass
class NodeSpec:
    # Cookies are Secrets so that no failing test's traceback or assertion shows them.
    alive: str
    cookie: Secret | None
    longnames: bool = False
    # Written to HOME/.erlang.cookie, used when `cookie` (-setcookie) is None.
    home_cookie: Secret | None = None
    dist_range: tuple[int, int] | None = None
    extra_args: Sequence[str] = ()


class ErlNode:
    """A real node: `erl -sname/-name ... -noshell` with the control loop on stdin/stdout."""

    def __init__(self, spec: NodeSpec, epmd: Epmd, workdir: Path) -> None:
        self.spec = spec
        self.epmd = epmd
        self.home = workdir / f"home-{spec.alive}"
        self.home.mkdir(parents=True, exist_ok=True)
        if spec.home_cookie is not None:
            cookie_path = self.home / ".erlang.cookie"
            cookie_path.write_text(spec.home_cookie.reveal())
            cookie_path.chmod(0o400)
        argv = ["erl", "-name" if spec.longnames else "-sname",
                f"{spec.alive}@127.0.0.1" if spec.longnames else spec.alive,
                "-noshell", "-start_epmd", "false",
                "-kernel", "inet_dist_use_interface", "{127,0,0,1}"]
        if spec.cookie is not None:
            argv += ["-setcookie", spec.cookie.reveal()]
        if spec.dist_range is not None:
            argv += ["-kernel", "inet_dist_listen_min", str(spec.dist_range[0]),
                     "-kernel", "inet_dist_listen_max", str(spec.dist_range[1])]
        argv += [*spec.extra_args, "-eval", _CONTROL_LOOP]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ERL_")}
        env |= {"HOME": str(self.home), "ERL_EPMD_PORT": str(epmd.port)}
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, cwd=self.home,
        )
        self._buffer = b""
        self.output: list[str] = []
        node = self.eval("node().", timeout=START_TIMEOUT)
        assert isinstance(node, etf.Atom), node
        self.name = str(node)

    @property
    def pid(self) -> int:
        # erl execs erlexec, which execs beam.smp: Popen's pid is the VM's.
        return self.proc.pid

    def process(self) -> NodeProcess:
        """What discovery would report for this node."""
        return NodeProcess(
            pid=self.pid, name=self.name, longnames=self.spec.longnames, uid=os.getuid(),
            start_ticks=0,
            cookie=self.spec.cookie,
            dist_port_range=self.spec.dist_range,
        )

    def eval(self, expressions: str, timeout: float = EVAL_TIMEOUT) -> etf.Term:
        """Evaluate `expressions` (ending in a dot, on one line) on the node itself."""
        return etf.decode(self.eval_bytes(expressions, timeout))

    def eval_bytes(self, expressions: str, timeout: float = EVAL_TIMEOUT) -> bytes:
        assert "\n" not in expressions
        assert self.proc.stdin is not None
        self.proc.stdin.write(expressions.encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if line.startswith("@@OK "):
                return bytes.fromhex(line[5:])
            if line.startswith("@@ERROR "):
                raise RuntimeError(f"{expressions} failed on {self.spec.alive}: {line[8:]}")
            self.output.append(line)

    def _readline(self, deadline: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"node {self.spec.alive} did not answer; output: "
                                   f"{self.output[-20:]}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"node {self.spec.alive} exited "
                                       f"({self.proc.wait()}); output: {self.output[-20:]}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode(errors="replace")

    def drain_output(self) -> list[str]:
        """Everything the node printed so far besides control answers (e.g. its log lines)."""
        with contextlib.suppress(TimeoutError):
            while True:
                self.output.append(self._readline(time.monotonic() + 0.2))
        return self.output

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()  # the control loop halts the node on eof
        stop_process(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def new_cookie() -> Secret:
    return Secret(secrets.token_hex(16))


def assert_not_leaked(texts: Sequence[str], *cookies: Secret | None) -> None:
    """Fail if a cookie appears in any text, without the failure showing either (this module
    is not assertion-rewritten, and the message names neither)."""
    for cookie in cookies:
        if cookie is not None and any(cookie.reveal() in text for text in texts):
            raise AssertionError("a cookie leaked into an error, check or log text")
