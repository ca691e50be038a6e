"""Cluster watching at scale: N = 3, 5 and 10 real stand-in nodes in one mnesia cluster, a
real agent on each (as deployed: one per node).

Per agent: the cluster and probes collectors' durations, the TCP connections it holds, the
distribution handshakes it makes per minute, its CPU; the atom count of every node before
and after the soak (must not grow: the agents use a fixed pool of client names); and
/node/ready p50/p99 under 20 concurrent pollers while every agent keeps collecting.

References in the same run: N = 3 (ratios for 5 and 10), the 5 ms /node/ready target, and
the handshakes the configured intervals imply (one per peer per probes run). Atom counts are
read by a sampler process on each node writing to a file, so the measuring adds no atoms.

All agents run on this one host, so they share the client-name pool's host part: a peer
check may find a name in use and take the next (in production each agent has its own host).

    python bench/cluster_scale.py                # 30 s soak per N
    python bench/cluster_scale.py --soak 300     # the 5-minute soak
Prints; never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

# Run as `python bench/cluster_scale.py` from the repository: the test support code is reused.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.agentproc import AgentProcess, value
from tests.support.mimnode import (
    MimNode,
    MimNodeSpec,
    form_cluster,
    free_port,
    random_cookie,
    start_nodes,
    stop_nodes,
    unique_sname,
)

CLUSTER_INTERVAL = 5.0
PROBES_INTERVAL = 15.0

# Started once per node through erl_call: writes the atom count and the number of agent
# handshakes (nodeup of a hidden mongooseim_agent_* node) to a file every 250 ms.
_SAMPLER = """
Path = "{path}",
Count = fun Count(Ups) ->
    receive
        {{nodeup, Node, _}} ->
            case lists:prefix("mongooseim_agent_", atom_to_list(Node)) of
                true -> Count(Ups + 1);
                false -> Count(Ups)
            end;
        {{nodedown, _, _}} -> Count(Ups)
    after 250 ->
        ok = file:write_file(Path, io_lib:format("~B ~B~n",
                             [erlang:system_info(atom_count), Ups])),
        Count(Ups)
    end
end,
Pid = spawn(fun() -> ok = net_kernel:monitor_nodes(true, [{{node_type, hidden}}]), Count(0) end),
is_pid(Pid)
"""


@dataclass
class NodeCounters:
    atoms: int
    handshakes: int


def read_counters(node: MimNode) -> NodeCounters:
    path = node.rel_root / "var" / "bench_counters"
    deadline = time.monotonic() + 10
    while True:
        try:
            atoms, ups = path.read_text().split()
            return NodeCounters(int(atoms), int(ups))
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def agent_config(node: MimNode, tmp: Path) -> Path:
    tmp.mkdir()
    cookie_file = tmp / "cookie"
    cookie_file.write_text(node.spec.cookie or "")
    cookie_file.chmod(0o600)
    config = tmp / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp / "state"}"\n'
        f'[node]\nname = "{node.node_name}"\ncookie_file = "{cookie_file}"\n'
        f'[probes]\ninterval = "{PROBES_INTERVAL}s"\n'
        f'listeners = {{ c2s = "127.0.0.1:{node.spec.c2s_port}" }}\n'
        f'[cluster]\ninterval = "{CLUSTER_INTERVAL}s"\nsource = "dist"\n'
        f'min_running_members = {1}\n'
        f'[logs]\npaths = ["{node.log_dir}/mongooseim.log.*"]\n'
    )
    return config


async def _get(port: int, path: str) -> float:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
    await reader.read()
    writer.close()
    return time.perf_counter() - start


async def pollers(port: int, count: int, seconds: float) -> list[float]:
    """`count` concurrent clients polling /node/ready back to back for `seconds`."""
    timings: list[float] = []
    stop = time.monotonic() + seconds

    async def poll() -> None:
        while time.monotonic() < stop:
            timings.append(await _get(port, "/node/ready"))

    await asyncio.gather(*(poll() for _ in range(count)))
    return sorted(timings)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def established(pid: int) -> int:
    return sum(1 for c in psutil.Process(pid).net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED)


def run(n: int, soak: float, poll_seconds: float, workdir: Path) -> dict[str, float]:
    cookie = random_cookie()
    nodes = [MimNode(MimNodeSpec(sname=unique_sname(f"scale{n}_{i}"), c2s_port=free_port(),
                                 cookie=cookie), workdir / f"n{n}" / f"node{i}")
             for i in range(n)]
    start_nodes(nodes, timeout=120)
    agents: list[AgentProcess] = []
    try:
        form_cluster(nodes, timeout=120)
        for node in nodes:
            path = node.rel_root / "var" / "bench_counters"
            node.call(_SAMPLER.format(path=path))
        before_agents = [read_counters(node) for node in nodes]
        agents = [AgentProcess(agent_config(node, workdir / f"n{n}" / f"agent{i}"))
                  for i, node in enumerate(nodes)]
        for agent in agents:
            agent.poll_metrics(lambda s: value(s, "mongooseim_cluster_running_nodes") == n
                               and value(s, "mongooseim_agent_collector_success",
                                         collector="probes") is not None, timeout=120)
        # Warm: every agent has connected and probed every peer once.
        time.sleep(1)
        start_counters = [read_counters(node) for node in nodes]
        cpu_start = [psutil.Process(a.proc.pid).cpu_times() for a in agents]
        durations: dict[str, list[float]] = {"cluster": [], "probes": []}
        connections: list[int] = []
        started = time.monotonic()
        while time.monotonic() - started < soak:
            for agent in agents:
                series = agent.metrics()
                for name, found in durations.items():
                    took = value(series, "mongooseim_agent_collector_duration_seconds",
                                 collector=name)
                    if took is not None:
                        found.append(took)
                connections.append(established(agent.proc.pid))
            time.sleep(max(0.0, min(CLUSTER_INTERVAL, soak - (time.monotonic() - started))))
        elapsed = time.monotonic() - started
        end_counters = [read_counters(node) for node in nodes]
        cpu = [
            (e.user + e.system - s.user - s.system) / elapsed * 100
            for s, e in zip(cpu_start,
                            [psutil.Process(a.proc.pid).cpu_times() for a in agents],
                            strict=True)
        ]
        ready = asyncio.run(pollers(agents[0].port, 20, poll_seconds))
        handshakes = sum(e.handshakes - s.handshakes
                         for s, e in zip(start_counters, end_counters, strict=True))
        growth = [e.atoms - s.atoms for s, e in zip(start_counters, end_counters, strict=True)]
        from_start = [e.atoms - b.atoms
                      for b, e in zip(before_agents, end_counters, strict=True)]
        expected = (n - 1) * 60 / PROBES_INTERVAL
        result = {
            "cluster_ms": statistics.fmean(durations["cluster"]) * 1e3,
            "cluster_max_ms": max(durations["cluster"]) * 1e3,
            "probes_ms": statistics.fmean(durations["probes"]) * 1e3,
            "connections": statistics.fmean(connections),
            "handshakes_per_min": handshakes / n / elapsed * 60,
            "expected_per_min": expected,
            "cpu": statistics.fmean(cpu),
            "atom_growth": max(growth),
            "atoms_from_start": max(from_start),
            "ready_p50_ms": pct(ready, 0.5) * 1e3,
            "ready_p99_ms": pct(ready, 0.99) * 1e3,
            "ready_requests": len(ready),
        }
        print(f"N={n:2}  soak {elapsed:.0f}s, {len(agents)} agents (cluster every "
              f"{CLUSTER_INTERVAL:g}s, probes every {PROBES_INTERVAL:g}s)")
        print(f"  per agent: cluster collector {result['cluster_ms']:.1f} ms mean "
              f"(max {result['cluster_max_ms']:.1f}), probes {result['probes_ms']:.1f} ms, "
              f"{result['connections']:.1f} TCP connections held, "
              f"{result['handshakes_per_min']:.1f} handshakes/min "
              f"(intervals imply {expected:.1f}), CPU {result['cpu']:.2f}% of a core")
        print(f"  atoms per node: before/after soak {[s.atoms for s in start_counters]} -> "
              f"{[e.atoms for e in end_counters]}: growth max {result['atom_growth']} "
              f"(since the agents started: max {result['atoms_from_start']}, the client "
              "name pool)")
        print(f"  /node/ready, 20 concurrent pollers for {poll_seconds:g}s while collecting: "
              f"p50 {result['ready_p50_ms']:.2f} ms, p99 {result['ready_p99_ms']:.2f} ms "
              f"({len(ready)} requests; target p99 <= 5 ms: "
              f"{result['ready_p99_ms'] / 5:.2f}x)")
        return result
    finally:
        for agent in agents:
            agent.stop()
        stop_nodes(nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,5,10", help="cluster sizes, comma-separated")
    parser.add_argument("--soak", type=float, default=30.0,
                        help="seconds of collecting per size (300 for the 5-minute soak)")
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cluster-scale-"))
    results: dict[int, dict[str, float]] = {}
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            results[n] = run(n, args.soak, args.poll_seconds, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if len(results) > 1:
        base_n = min(results)
        base = results[base_n]
        print(f"ratios against N={base_n}:")
        for n, found in sorted(results.items()):
            if n == base_n:
                continue
            print(f"  N={n:2}: cluster collector {found['cluster_ms'] / base['cluster_ms']:.2f}x,"
                  f" probes {found['probes_ms'] / base['probes_ms']:.2f}x, connections "
                  f"{found['connections'] / base['connections']:.2f}x, handshakes/min "
                  f"{found['handshakes_per_min'] / max(base['handshakes_per_min'], 1e-9):.2f}x "
                  f"(peers {(n - 1) / (base_n - 1):.2f}x), CPU "
                  f"{found['cpu'] / max(base['cpu'], 1e-9):.2f}x, /node/ready p99 "
                  f"{found['ready_p99_ms'] / base['ready_p99_ms']:.2f}x")


if __name__ == "__main__":
    main()
