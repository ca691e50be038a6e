"""The agent's own footprint with the demo node: RSS, CPU, and /metrics latency under load.

Runs the real agent at its default intervals against a real stand-in node for --seconds
(default 60), then 20 concurrent scrapers. Two agents run side by side in the same window:
"before" without the psutil process collector (`[process] enabled = false`: psutil is not
even imported) and "after" with it, so its cost shows as the difference; psutil's import and
per-sample cost are also measured on their own, against the fd collector's stat()-based
sample. process-exporter, watching the same node, is measured in the same run as the
reference when it is installed. Prints; never fails.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

# Run as `python bench/footprint.py` from the repository: the test support code is reused.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.agentproc import AgentProcess
from tests.support.mimnode import MimNode, MimNodeSpec, free_port, unique_sname


def latency(url: str, scrapers: int, per_scraper: int) -> list[float]:
    timings: list[float] = []
    lock = threading.Lock()

    def scrape() -> None:
        mine = []
        for _ in range(per_scraper):
            start = time.perf_counter()
            urllib.request.urlopen(url, timeout=10).read()  # noqa: S310 - loopback http
            mine.append(time.perf_counter() - start)
        with lock:
            timings.extend(mine)

    threads = [threading.Thread(target=scrape) for _ in range(scrapers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(timings)


def wrk_latency(url: str, connections: int, seconds: float) -> dict[str, float] | None:
    """p50/p99 in seconds from wrk's latency distribution; None when wrk is absent."""
    binary = shutil.which("wrk")
    if binary is None:
        return None
    out = subprocess.run(
        [binary, f"-c{connections}", "-t2", f"-d{seconds:g}s", "--latency", url],
        capture_output=True, text=True, check=False, timeout=seconds + 30,
    ).stdout
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
    found: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in {"50%", "99%"}:
            number = parts[1].rstrip("usm")
            unit = parts[1][len(number):]
            found[parts[0]] = float(number) * units[unit]
        if line.startswith("Requests/sec:"):
            found["rps"] = float(line.split()[1])
    return found


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def usage(pid: int, seconds: float) -> tuple[float, float, float]:
    """(RSS MB and USS MB at the end, CPU % of one core over the window)."""
    proc = psutil.Process(pid)
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    cpu = (after.user + after.system - before.user - before.system) / seconds * 100
    memory = proc.memory_full_info()
    return memory.rss / 1e6, memory.uss / 1e6, cpu


def psutil_import_cost() -> float:
    """MB of RSS that importing psutil adds to a process that already imported the agent."""
    code = (
        "import mongooseim_agent.collectors.registry\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS:'):\n"
        "            return int(line.split()[1]) * 1024\n"
        "before = rss()\n"
        "import psutil\n"
        "psutil.Process().memory_info(); psutil.virtual_memory()\n"
        "print(rss() - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return int(out) / 1e6


def per_sample_costs(beam_pid: int, rounds: int = 2000) -> dict[str, float]:
    """Seconds per sample: the psutil collector's reads vs the fd collector's stat() count
    plus /proc/PID/limits."""
    from mongooseim_agent import procfs
    from mongooseim_agent.collectors.fds import count_open_fds
    from mongooseim_agent.collectors.process import PsutilReader, available_memory
    from mongooseim_agent.mongooseim.discovery import NodeLocator

    node = NodeLocator().read(beam_pid)
    assert node is not None
    reader = PsutilReader()
    proc = Path("/proc")

    def psutil_sample() -> None:
        reader(node)
        available_memory()

    def fd_sample() -> None:
        count_open_fds(proc, beam_pid)
        procfs.parse_nofile((proc / str(beam_pid) / "limits").read_text())

    costs = {}
    for name, sample in (("psutil process sample", psutil_sample),
                         ("fd sample (stat + limits)", fd_sample)):
        sample()
        start = time.perf_counter()
        for _ in range(rounds):
            sample()
        costs[name] = (time.perf_counter() - start) / rounds
    return costs


def start_process_exporter(beam_pid: int, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("prometheus-process-exporter")
    assert binary is not None
    config = workdir / "pe.yml"
    config.write_text("process_names:\n  - name: mongooseim\n    comm:\n    - beam.smp\n")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-config.path", str(config), "-web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--scrapers", type=int, default=20)
    parser.add_argument("--per-scraper", type=int, default=100)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="footprint-"))
    node = MimNode(MimNodeSpec(sname=unique_sname("bench"), c2s_port=free_port(),
                               erl_max_ports=250_000), workdir / "rel")
    node.start()
    agents = {}
    for name, extra in (("agent before", "[process]\nenabled = false\n"), ("agent after", "")):
        config = workdir / f"{name.split()[1]}.toml"
        config.write_text(f'[agent]\nstate_dir = "{workdir / name.split()[1]}"\n'
                          f'[node]\nname = "{node.node_name}"\n{extra}')
        agents[name] = AgentProcess(config)
    agent = agents["agent after"]
    reference: tuple[subprocess.Popen[bytes], int] | None = None
    if shutil.which("prometheus-process-exporter"):
        reference = start_process_exporter(node.pid, workdir)
    try:
        for each in agents.values():
            each.poll_metrics(bool)
        time.sleep(2)
        results: dict[str, tuple[float, float, float]] = {}
        pids = {name: each.proc.pid for name, each in agents.items()}
        if reference is not None:
            pids["process-exporter"] = reference[0].pid
        threads = {}
        for name, pid in pids.items():
            def run(name: str = name, pid: int = pid) -> None:
                results[name] = usage(pid, args.seconds)
            threads[name] = threading.Thread(target=run)
            threads[name].start()
        for thread in threads.values():
            thread.join()
        print(f"idle window {args.seconds:.0f}s at default intervals, node {node.node_name}")
        for name in pids:
            rss, uss, cpu = results[name]
            print(f"  {name:18} RSS {rss:6.1f} MB (unique {uss:5.1f} MB)   "
                  f"CPU {cpu:5.2f}% of a core")
        (b_rss, b_uss, b_cpu), (a_rss, a_uss, a_cpu) = (
            results["agent before"], results["agent after"])
        print(f"  psutil collector's cost (after - before): RSS {a_rss - b_rss:+.1f} MB "
              f"(unique {a_uss - b_uss:+.1f} MB), CPU {a_cpu - b_cpu:+.2f} points; "
              f"ratio after/before RSS {a_rss / b_rss:.2f}x")
        print(f"  importing psutil alone: {psutil_import_cost():+.1f} MB RSS")
        costs = per_sample_costs(node.pid)
        interval = 5.0
        for name, seconds in costs.items():
            print(f"  {name:26} {seconds * 1e6:7.1f} us per sample "
                  f"= {seconds / interval * 100:.4f}% of a core at a {interval:g}s interval")
        psutil_cost, fd_cost = costs.values()
        print(f"  ratio psutil sample / fd sample: {psutil_cost / fd_cost:.1f}x")
        urls = {"agent": f"http://127.0.0.1:{agent.port}/metrics"}
        if reference is not None:
            urls["process-exporter"] = f"http://127.0.0.1:{reference[1]}/metrics"
        for name, url in urls.items():
            measured = wrk_latency(url, args.scrapers, 5)
            if measured is None:
                print("  (wrk not installed: no closed-loop server measurement)")
                break
            print(f"  wrk -c{args.scrapers} {name:18} p50 {measured['50%'] * 1e3:6.2f} ms   "
                  f"p99 {measured['99%'] * 1e3:6.2f} ms   {measured['rps']:8.0f} req/s")
        lat = {"agent": latency(f"http://127.0.0.1:{agent.port}/metrics", args.scrapers,
                                args.per_scraper)}
        if reference is not None:
            lat["process-exporter"] = latency(f"http://127.0.0.1:{reference[1]}/metrics",
                                              args.scrapers, args.per_scraper)
        print(f"/metrics, {args.scrapers} concurrent Python scrapers "
              f"({args.scrapers * args.per_scraper} requests; client-bound, for comparison):")
        for name, values in lat.items():
            print(f"  {name:18} p50 {pct(values, 0.5) * 1e3:6.2f} ms   "
                  f"p99 {pct(values, 0.99) * 1e3:6.2f} ms   mean "
                  f"{statistics.fmean(values) * 1e3:6.2f} ms")
        if "process-exporter" in results:
            a, r = results["agent"], results["process-exporter"]
            print(f"ratios agent/process-exporter: RSS {a[0] / r[0]:.2f}x, "
                  f"p99 {pct(lat['agent'], .99) / pct(lat['process-exporter'], .99):.2f}x")
        print("targets: RSS <= 40 MB, CPU <= 0.5% of a core, p99 <= 10 ms")
    finally:
        for each in agents.values():
            each.stop()
        if reference is not None:
            reference[0].send_signal(signal.SIGTERM)
            reference[0].wait(10)
        node.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
