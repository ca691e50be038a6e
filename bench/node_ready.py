"""/node/ready and the HAProxy agent-check under 20 concurrent pollers while collecting.

The real agent watches a real stand-in node with short intervals (every collector running
while the pollers poll). Reference in the same run: `/-/healthy`, the agent's cheapest
endpoint (no verdict at all), so the ratio is what computing the verdict costs. Prints p50,
p99 and max per endpoint; never fails.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

# Run as `python bench/node_ready.py` from the repository: the test support code is reused.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.agentproc import AgentProcess
from tests.support.mimnode import MimNode, MimNodeSpec, free_port, stop_nodes, unique_sname


def http_get(url: str) -> Callable[[], None]:
    def get() -> None:
        try:
            urllib.request.urlopen(url, timeout=10).read()  # noqa: S310 - loopback http
        except urllib.error.HTTPError as exc:
            exc.read()
    return get


def agent_check(port: int) -> Callable[[], None]:
    def ask() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            while sock.recv(256):
                pass
    return ask


def pollers(request: Callable[[], None], threads: int, seconds: float) -> list[float]:
    timings: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def poll() -> None:
        mine = []
        while time.monotonic() < end:
            start = time.perf_counter()
            request()
            mine.append(time.perf_counter() - start)
        with lock:
            timings.extend(mine)

    workers = [threading.Thread(target=poll) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pollers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ready-") as tmp:
        work = Path(tmp)
        node = MimNode(MimNodeSpec(sname=unique_sname("bench_ready"), c2s_port=free_port(),
                                   cookie="bench_ready_cookie"), work / "node")
        node.start()
        agent: AgentProcess | None = None
        try:
            agent_port = free_port()
            config = work / "agent.toml"
            config.write_text(
                f'[agent]\nstate_dir = "{work / "state"}"\n[node]\nname = "{node.node_name}"\n'
                '[fds]\ninterval = "500ms"\n[vm]\ninterval = "1s"\n[probes]\ninterval = "1s"\n'
                f'listeners = {{ c2s = "127.0.0.1:{node.spec.c2s_port}" }}\n'
                '[cluster]\ninterval = "1s"\n'
                '[load_balancer]\ninterval = "500ms"\nconnections_interval = "1s"\n'
                f'agent_check_address = "127.0.0.1:{agent_port}"\n'
            )
            agent = AgentProcess(config)
            base = f"http://127.0.0.1:{agent.port}"
            agent.poll_metrics(lambda s: any(name == "mongooseim_node_ready" and v == 1
                                             for (name, _), v in s.items()), timeout=30)
            print(f"{args.pollers} pollers x {args.seconds:g}s each, collectors running")
            print(f"{'endpoint':<22}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
                  f"{'p99 x ref':>11}")
            reference = None
            for name, request in (
                ("/-/healthy (ref)", http_get(f"{base}/-/healthy")),
                ("/node/ready", http_get(f"{base}/node/ready")),
                ("agent-check", agent_check(agent_port)),
            ):
                timings = pollers(request, args.pollers, args.seconds)
                p50 = timings[len(timings) // 2]
                p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
                reference = reference or p99
                print(f"{name:<22}{len(timings):>9}{p50 * 1000:>9.2f}{p99 * 1000:>9.2f}"
                      f"{timings[-1] * 1000:>9.2f}{p99 / reference:>11.2f}")
        finally:
            if agent is not None:
                agent.stop()
            stop_nodes([node])


if __name__ == "__main__":
    main()
