"""How fast the CLI starts: `--version`, `check --help` and `audit --json` (PATH without
`erl`), against the bare interpreter (`python -c pass`) in the same run.

A second reference is what every command paid before cli.py imported commands lazily:
importing all command modules (`run`'s daemon, aiohttp ...) before parsing a single option.

Wall time on a shared machine is noisy, so CPU time (user + system of the child) is shown
too, and medians over several runs. Prints figures and ratios; never fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False, timeout=120)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        # A PATH with python but without erl: the audit then measures nothing through a VM.
        bindir = work / "bin"
        bindir.mkdir()
        (bindir / "python").symlink_to(sys.executable)
        env = {**os.environ, "PATH": f"{bindir}:/usr/sbin:/sbin"}
        if shutil.which("erl", path=env["PATH"]):
            print("note: erl is on the reduced PATH; audit may start a VM")
        config = work / "agent.toml"
        config.write_text(f'[agent]\nstate_dir = "{work / "state"}"\n'
                          '[audit]\nmeasure_port_memory = false\n')
        py = sys.executable
        agent = [py, "-m", "mongooseim_agent"]
        eager = ("import mongooseim_agent.cli, mongooseim_agent.commands.run, "
                 "mongooseim_agent.commands.check, mongooseim_agent.commands.scan_logs, "
                 "mongooseim_agent.commands.drain, mongooseim_agent.commands.audit")
        cases = {
            "python -c pass (reference)": [py, "-c", "pass"],
            "import every command (before: eager)": [py, "-c", eager],
            "mongooseim-agent --version": [*agent, "--version"],
            "mongooseim-agent check --help": [*agent, "check", "--help"],
            "mongooseim-agent audit --json": [*agent, "--config", str(config), "audit", "--json"],
        }
        results: dict[str, tuple[float, float]] = {}
        for label, argv in cases.items():
            timed(argv, env)  # warm the page cache and .pyc files
            walls, cpus = [], []
            for _ in range(args.runs):
                wall, cpu = timed(argv, env)
                walls.append(wall)
                cpus.append(cpu)
            results[label] = statistics.median(walls), statistics.median(cpus)
        _, base_cpu = results["python -c pass (reference)"]
        print(f"CLI start-up, median of {args.runs} runs (load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        print(f"{'':40s} {'wall':>9s} {'CPU':>9s} {'CPU - python':>13s} {'x python':>9s}")
        for label, (wall, cpu) in results.items():
            print(f"{label:40s} {wall * 1000:7.0f}ms {cpu * 1000:7.0f}ms "
                  f"{(cpu - base_cpu) * 1000:11.0f}ms {cpu / base_cpu:8.1f}x")
        eager = results["import every command (before: eager)"][1] - base_cpu
        version = results["mongooseim-agent --version"][1] - base_cpu
        print(f"--version costs {version * 1000:.0f} ms CPU over python; importing every "
              f"command, as cli.py did before, cost {eager * 1000:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
