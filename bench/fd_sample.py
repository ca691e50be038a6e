"""Cost of one open-fd sample at N fds: the agent's sampler against the usual alternatives.

References measured in the same run, on the same process: `len(os.listdir(/proc/PID/fd))`,
psutil's `num_fds()`, prometheus_client's `ProcessCollector`, and a process-exporter scrape
when it is installed. Prints figures and ratios; never fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry, ProcessCollector

from mongooseim_agent.collectors.fds import count_open_fds

HOLDER = (
    "import os, resource, sys, time\n"
    "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n"
    "fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(int(sys.argv[1]))]\n"
    "print('ready', flush=True)\n"
    "time.sleep(3600)\n"
)


def per_call(fn: Callable[[], object], budget: float = 0.3, max_calls: int = 20000) -> float:
    """Median-of-5 batch time per call, in seconds."""
    fn()
    calls = 1
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    calls = max(1, min(max_calls, int(budget / 5 / once)))
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        batches.append((time.perf_counter() - start) / calls)
    return sorted(batches)[2]


def _drain(collector: ProcessCollector) -> object:
    return list(collector.collect())


def hold(n: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(n)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_exporter(pid: int) -> tuple[Callable[[], object], Callable[[], None]] | None:
    binary = shutil.which("prometheus-process-exporter")
    if binary is None:
        return None
    tmp = Path(tempfile.mkdtemp())
    config = tmp / "pe.yml"
    config.write_text(
        "process_names:\n  - name: holder\n    cmdline:\n    - 'fds = \\[os.open'\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-config.path", str(config), "-web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)

    def scrape() -> object:
        return urllib.request.urlopen(url, timeout=10).read()

    def stop() -> None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(tmp)

    return scrape, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000,hard")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    sizes = [hard - 64 if s == "hard" else int(s) for s in args.sizes.split(",")]
    proc_root = Path("/proc")
    print(f"kernel {os.uname().release}; hard nofile {hard}; times are per sample")
    header = f"{'N':>8} {'agent':>10} {'listdir':>10} {'psutil':>10} {'ProcColl':>10} " \
             f"{'proc-exp':>10} {'listdir/agent':>14} {'procexp/agent':>14}"
    print(header)
    for n in sizes:
        holder = hold(n)
        pid = holder.pid
        try:
            agent = per_call(partial(count_open_fds, proc_root, pid))
            listing = per_call(partial(os.listdir, f"/proc/{pid}/fd"))
            ps = psutil.Process(pid)
            psutil_t = per_call(ps.num_fds)
            collector = ProcessCollector(pid=partial(int, pid), registry=CollectorRegistry())
            prom = per_call(partial(_drain, collector))
            pe = process_exporter(pid)
            if pe is not None:
                scrape, stop = pe
                try:
                    pe_t: float | None = per_call(scrape, budget=1.0, max_calls=200)
                finally:
                    stop()
            else:
                pe_t = None
        finally:
            holder.kill()
            holder.wait()
        pe_text = f"{pe_t * 1e6:9.1f}u" if pe_t else "       n/a"
        pe_ratio = f"{pe_t / agent:13.0f}x" if pe_t else "           n/a"
        print(
            f"{n:>8} {agent * 1e6:9.2f}u {listing * 1e6:9.1f}u {psutil_t * 1e6:9.1f}u "
            f"{prom * 1e6:9.1f}u {pe_text} {listing / agent:13.0f}x {pe_ratio}"
        )
    print("u = microseconds; target: agent <= 10 us at any N, >= 1000x cheaper than listdir "
          "at the largest N")


if __name__ == "__main__":
    main()
