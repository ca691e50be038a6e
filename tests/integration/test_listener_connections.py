"""mongooseim_listener_connections counts what the kernel holds: real sockets, IPv4 and IPv6,
other users' sockets included, compared with `ss`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from mongooseim_agent.loadbalancer import sockdiag
from mongooseim_agent.loadbalancer.sockdiag import SockDiag
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def listener() -> Iterator[tuple[int, ExitStack, list[socket.socket]]]:
    """A port listened on over IPv4 (and IPv6 when loopback has it), connections kept."""
    with ExitStack() as stack:
        v4 = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=128))
        port = v4.getsockname()[1]
        servers = [v4]
        if _has_ipv6_loopback():
            servers.append(stack.enter_context(
                socket.create_server(("::1", port), family=socket.AF_INET6, backlog=128)
            ))
        yield port, stack, servers


def _connect(stack: ExitStack, server: socket.socket, n: int) -> None:
    host, port = server.getsockname()[:2]
    for _ in range(n):
        stack.enter_context(socket.create_connection((host, port)))
        stack.enter_context(server.accept()[0])


def _ss_count(port: int) -> int:
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"sport = :{port}"],
        capture_output=True, text=True, check=True,
    ).stdout
    return len(out.splitlines())


def test_counts_established_on_the_port_only(
    listener: tuple[int, ExitStack, list[socket.socket]],
) -> None:
    """Server-side ends of both families are counted; the client ends (dport = port),
    a half-open backlog entry and other ports are not; the count equals ss's."""
    port, stack, servers = listener
    _connect(stack, servers[0], 5)
    if len(servers) > 1:
        _connect(stack, servers[1], 3)
    expected = 5 + 3 * (len(servers) - 1)
    # A connection still in the accept queue is established too, as the kernel sees it.
    stack.enter_context(socket.create_connection(("127.0.0.1", port)))
    expected += 1
    with ExitStack() as other:
        elsewhere = other.enter_context(socket.create_server(("127.0.0.1", 0)))
        other_port = elsewhere.getsockname()[1]
        _connect(other, elsewhere, 4)
        counts = SockDiag().established([port, other_port])
    assert counts == {port: expected, other_port: 4}
    require_binary("ss")
    assert _ss_count(port) == expected


def test_closed_connections_fall_out(
    listener: tuple[int, ExitStack, list[socket.socket]],
) -> None:
    """After the peers hang up, the count drops: what `drain` then waits for."""
    port, _, servers = listener
    with ExitStack() as batch:
        _connect(batch, servers[0], 6)
        assert SockDiag().established([port]) == {port: 6}
    assert SockDiag().established([port]) == {port: 0}


def test_unprivileged_user_counts_another_users_sockets(
    listener: tuple[int, ExitStack, list[socket.socket]],
) -> None:
    """As nobody, the dump still shows root's sockets: no capability is needed."""
    port, stack, servers = listener
    _connect(stack, servers[0], 3)
    setpriv = require_binary("setpriv")
    # The system interpreter: a user-installed one may sit in a directory nobody cannot read.
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else shutil.which("python3")
    assert python is not None
    # The module is stdlib-only: a public copy runs as nobody whatever the checkout's mode.
    public = Path(tempfile.mkdtemp(prefix="sockdiag-unpriv-"))
    try:
        public.chmod(0o755)
        shutil.copy(sockdiag.__file__, public / "sockdiag.py")
        (public / "sockdiag.py").chmod(0o644)
        done = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", "-c",
             f"import sys; sys.path.insert(0, {str(public)!r}); import os, sockdiag; "
             f"print(os.getuid(), sockdiag.SockDiag().established([{port}])[{port}])"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    finally:
        shutil.rmtree(public)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["65534", "3"]
