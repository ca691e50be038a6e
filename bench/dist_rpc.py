"""Cost of one cluster-membership query (`mnesia:system_info(running_db_nodes)`) on a node.

Three ways, measured in the same run against the same real node (private epmd on a free
port, everything on 127.0.0.1):

- the agent's client on a fresh connection: epmd lookup, TCP connect, handshake, rpc, close;
- the agent's client on its open, long-lived connection: the rpc alone;
- what scripts do today: `erl -hidden -noinput -sname X -eval 'rpc:call(...)'`, one VM start
  per query (`mongooseimctl` pays the same).

Prints figures and ratios; never fails. Targets: fresh >= 100x cheaper than the shell-out,
open connection <= 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mongooseim_agent.erlang.connection import Query
from mongooseim_agent.erlang.dist import DistClient, DistSettings, connect
from mongooseim_agent.erlang.epmd import EpmdClient
from mongooseim_agent.erlang.secret import Secret


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def erl_env(home: Path, epmd_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERL_")}
    return env | {"HOME": str(home), "ERL_EPMD_PORT": str(epmd_port)}


async def wait_ready(node: str, cookie: Secret, settings: DistSettings) -> None:
    client = DistClient(node, cookie, settings=DistSettings(
        epmd_port=settings.epmd_port, backoff_initial=0.05, backoff_max=0.05))
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                if await client.call(Query.MNESIA_IS_RUNNING, 2) == "yes":
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)
    finally:
        await client.close()


async def fresh_query(node: str, cookie: Secret, settings: DistSettings) -> float:
    start = time.perf_counter()
    conn, _ = await connect(node, cookie, settings=settings)
    reply = await conn.call(Query.RUNNING_DB_NODES, 2)
    await conn.close()
    elapsed = time.perf_counter() - start
    assert reply == [node], reply
    return elapsed


async def measure(node: str, cookie: Secret, settings: DistSettings, fresh_n: int,
                  open_n: int) -> tuple[list[float], list[float]]:
    await wait_ready(node, cookie, settings)
    for _ in range(5):
        await fresh_query(node, cookie, settings)
    fresh = [await fresh_query(node, cookie, settings) for _ in range(fresh_n)]
    client = DistClient(node, cookie, settings=settings)
    try:
        await client.call(Query.RUNNING_DB_NODES, 2)
        opened = []
        for _ in range(open_n):
            start = time.perf_counter()
            await client.call(Query.RUNNING_DB_NODES, 2)
            opened.append(time.perf_counter() - start)
    finally:
        await client.close()
    return fresh, opened


def shell_out(node: str, home: Path, epmd_port: int, runs: int) -> list[float]:
    expression = (f"io:format(\"~p~n\", [rpc:call('{node}', mnesia, system_info, "
                  "[running_db_nodes])]), halt().")
    times = []
    for index in range(runs):
        start = time.perf_counter()
        result = subprocess.run(
            ["erl", "-hidden", "-noinput", "-start_epmd", "false",
             "-sname", f"bench_sh_{index}_{secrets.token_hex(3)}", "-eval", expression],
            env=erl_env(home, epmd_port), capture_output=True, timeout=60, check=False,
        )
        times.append(time.perf_counter() - start)
        if node not in result.stdout.decode(errors="replace"):
            print(f"  shell-out run {index} did not return the member list: "
                  f"{result.stdout[-200:]!r}")
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fresh", type=int, default=200, help="fresh-connection queries")
    parser.add_argument("--open", type=int, default=2000, help="open-connection queries")
    parser.add_argument("--shell", type=int, default=5, help="erl shell-out queries")
    args = parser.parse_args()
    for binary in ("erl", "epmd"):
        if shutil.which(binary) is None:
            print(f"dist_rpc: {binary} is not installed; nothing measured")
            return 0
    work = Path(tempfile.mkdtemp(prefix="bench-dist-"))
    home = work / "home"
    home.mkdir()
    cookie_path = home / ".erlang.cookie"
    cookie_path.write_text(secrets.token_hex(16))
    cookie_path.chmod(0o400)
    cookie = Secret(cookie_path.read_text())
    epmd_port = free_port()
    epmd = subprocess.Popen(["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    alive = f"bench_{secrets.token_hex(4)}"
    node_proc: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                asyncio.run(EpmdClient("127.0.0.1", epmd_port, 1).names())
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        node_proc = subprocess.Popen(
            ["erl", "-sname", alive, "-noinput", "-start_epmd", "false",
             "-kernel", "inet_dist_use_interface", "{127,0,0,1}", "-s", "mnesia", "start"],
            env=erl_env(home, epmd_port), cwd=work, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        node = f"{alive}@{socket.gethostname().split('.')[0]}"
        settings = DistSettings(epmd_port=epmd_port)
        fresh, opened = asyncio.run(measure(node, cookie, settings, args.fresh, args.open))
        shell = shell_out(node, home, epmd_port, args.shell)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it never fails
        print(f"dist_rpc: not measured: {type(exc).__name__}: {exc}")
        return 0
    finally:
        if node_proc is not None:
            stop(node_proc)
        stop(epmd)
        shutil.rmtree(work, ignore_errors=True)
    fresh_median = statistics.median(fresh)
    open_median = statistics.median(opened)
    shell_median = statistics.median(shell)
    print(f"membership query (mnesia:system_info(running_db_nodes)) on {node}, OTP node on "
          f"127.0.0.1, python {sys.version.split()[0]}")
    print(f"  agent, fresh connection  median {ms(fresh_median)}  p90 "
          f"{ms(statistics.quantiles(fresh, n=10)[-1])}  (n={len(fresh)}; epmd + connect + "
          "handshake + rpc + close)")
    print(f"  agent, open connection   median {ms(open_median)}  p90 "
          f"{ms(statistics.quantiles(opened, n=10)[-1])}  (n={len(opened)})")
    print(f"  erl -hidden shell-out    median {ms(shell_median)}  "
          f"min {ms(min(shell))}  (n={len(shell)})")
    fresh_ratio = shell_median / fresh_median
    open_ratio = shell_median / open_median
    print(f"  shell-out / fresh = {fresh_ratio:7.0f}x   (target >= 100x: "
          f"{'met' if fresh_ratio >= 100 else 'NOT met'})")
    print(f"  shell-out / open  = {open_ratio:7.0f}x   open connection "
          f"{'<=' if open_median <= 0.001 else '>'} 1 ms target "
          f"({'met' if open_median <= 0.001 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
