"""The agent's own footprint with the demo node: RSS, CPU, and /metrics latency under load.

Runs the real agent at its default intervals against a real stand-in node for --seconds
(default 60), then 20 concurrent scrapers. process-exporter, watching the same node, is
measured in the same run as the reference when it is installed. Prints; never fails.
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
    config = workdir / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{workdir / "state"}"\n'
                      f'[node]\nname = "{node.node_name}"\n')
    agent = AgentProcess(config)
    reference: tuple[subprocess.Popen[bytes], int] | None = None
    if shutil.which("prometheus-process-exporter"):
        reference = start_process_exporter(node.pid, workdir)
    try:
        agent.poll_metrics(bool)
        time.sleep(2)
        results: dict[str, tuple[float, float, float]] = {}
        pids = {"agent": agent.proc.pid}
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
        for name, (rss, uss, cpu) in results.items():
            print(f"  {name:18} RSS {rss:6.1f} MB (unique {uss:5.1f} MB)   "
                  f"CPU {cpu:5.2f}% of a core")
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
        agent.stop()
        if reference is not None:
            reference[0].send_signal(signal.SIGTERM)
            reference[0].wait(10)
        node.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
