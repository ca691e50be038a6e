"""Cost of counting established connections on one listener at N connections:
mongooseim_listener_connections' sock_diag dump (port bytecode filter) against parsing
/proc/net/tcp{,6} and against `ss -Htn state established sport = :PORT | wc -l`.

A child process holds the N client ends, this one the N server ends, on loopback; `--other`
more connections on another port stand for the rest of the host (what /proc/net/tcp has to
walk and format too). Prints per-call figures, the ratio to sock_diag, and whether the three
counts agree; never fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from mongooseim_agent.loadbalancer.sockdiag import SockDiag

CLIENT = (
    "import resource, socket, sys, time\n"
    "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n"
    "held = []\n"
    "for arg in sys.argv[1:]:\n"
    "    port, n = map(int, arg.split(':'))\n"
    "    held += [socket.create_connection(('127.0.0.1', port)) for _ in range(n)]\n"
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)


def proc_net_tcp(port: int) -> int:
    """What a /proc/net/tcp reader does: every socket's line, local port and state parsed."""
    count = 0
    want = f"{port:04X}"
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as table:
                next(table)
                for line in table:
                    fields = line.split()
                    if fields[3] == "01" and fields[1].rsplit(":", 1)[1] == want:
                        count += 1
        except FileNotFoundError:
            continue
    return count


def ss_count(port: int) -> int:
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"sport = :{port}"],
        capture_output=True, text=True, check=True,
    ).stdout
    return len(out.splitlines())


def timed(fn: Callable[[], int], repeat: int) -> tuple[float, float, int]:
    """Median wall seconds and mean CPU seconds (this process) per call, and the count."""
    walls, value = [], 0
    cpu_start = time.process_time()
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        walls.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu_start) / repeat
    walls.sort()
    return walls[len(walls) // 2], cpu, value


def accept_all(server: socket.socket, n: int) -> list[socket.socket]:
    return [server.accept()[0] for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--other", type=int, default=2000,
                        help="connections on another port (the rest of the host)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + args.other + 100
    if hard < need:
        print(f"nofile hard limit {hard} < {need}: lower --connections")
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    other = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port, other_port = listener.getsockname()[1], other.getsockname()[1]
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, f"{port}:{args.connections}", f"{other_port}:{args.other}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        started = time.monotonic()
        held = accept_all(listener, args.connections) + accept_all(other, args.other)
        assert client.stdout is not None
        client.stdout.readline()
        print(f"{args.connections} connections on :{port}, {args.other} on :{other_port} "
              f"({time.monotonic() - started:.1f}s to open); kernel {os.uname().release}")
        diag = SockDiag(timeout=10)
        methods: list[tuple[str, Callable[[], int]]] = [
            ("sock_diag (the agent)", lambda: diag.established([port])[port]),
            ("parse /proc/net/tcp{,6}", lambda: proc_net_tcp(port)),
        ]
        if shutil.which("ss"):
            methods.append(("ss ... | wc -l (a process)", lambda: ss_count(port)))
        results = [(name, *timed(fn, args.repeat)) for name, fn in methods]
        reference = results[0][1]
        print(f"{'method':<30}{'median ms':>11}{'cpu ms':>9}{'count':>8}{'x sock_diag':>13}")
        for name, wall, cpu, count in results:
            print(f"{name:<30}{wall * 1000:>11.2f}{cpu * 1000:>9.2f}{count:>8}"
                  f"{wall / reference:>13.1f}")
        counts = {count for _, _, _, count in results}
        print("counts agree" if counts == {args.connections} else f"counts differ: {counts}")
        print("(ss's CPU is in its own process, not in the cpu column)")
        del held
    finally:
        if client.stdin is not None:
            client.stdin.close()
        client.wait(10)


if __name__ == "__main__":
    main()
