"""How long `mongooseim-agent audit` takes on a whole host, without `erl`.

Against a real stand-in node (when erl is installed to start one) on this host:

- the audit in-process (files, /proc, epmd, distribution, name resolution), erl not used;
- the whole command, `python -m mongooseim_agent audit --json`, with PATH holding no `erl`;
- references in the same run: the bare interpreter (`python -c pass`), the interpreter
  importing the agent (`import mongooseim_agent.cli`), one `erl` VM start (what the
  port-memory measurement and every `mongooseimctl` call cost), and the audit with the
  measurement on a cold cache.

Prints figures and ratios; never fails. Target: the command under 1 s without erl.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mongooseim_agent import logsetup
from mongooseim_agent.commands.audit import run_audit
from mongooseim_agent.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


CPU: dict[str, list[float]] = {}


def timed(argv: list[str], env: dict[str, str], label: str = "") -> float:
    """Wall time of one run; its CPU time (user + system, which a loaded machine does not
    inflate the way it inflates wall time) is kept under `label`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False, timeout=120)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if label:
        CPU.setdefault(label, []).append(after.ru_utime - before.ru_utime
                                         + after.ru_stime - before.ru_stime)
    return wall


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:7.1f} ms  "
            f"max {max(values) * 1000:7.1f} ms  (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    logsetup.configure("warning", "console")
    work = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    node = None
    try:
        from tests.support.mimnode import MimNode, MimNodeSpec, free_port, unique_sname

        if shutil.which("erl"):
            node = MimNode(MimNodeSpec(sname=unique_sname("bench"), c2s_port=free_port(),
                                       cookie="bench_cookie", erl_max_ports=250000,
                                       nofile=(20000, 20000)), work / "rel")
            node.start()
        name = node.node_name if node is not None else None
        document = {"agent": {"state_dir": str(work / "state")},
                    "node": {"name": name} if name else {},
                    "audit": {"measure_port_memory": False}}
        config = parse_config(document)
        in_process = []
        for _ in range(args.runs):
            start = time.perf_counter()
            findings = asyncio.run(run_audit(config, None))
            in_process.append(time.perf_counter() - start)
        config_file = work / "agent.toml"
        node_line = f'[node]\nname = "{name}"\n' if name else ""
        config_file.write_text(f'[agent]\nstate_dir = "{work / "state"}"\n{node_line}')
        no_erl = work / "bin"
        no_erl.mkdir()
        env = {**os.environ, "PATH": str(no_erl)}
        command = [sys.executable, "-m", "mongooseim_agent", "--config", str(config_file),
                   "audit", "--json"]
        whole = [timed(command, env, "command") for _ in range(args.runs)]
        imports = [timed([sys.executable, "-c", "import mongooseim_agent.cli"], env, "import")
                   for _ in range(args.runs)]
        bare = [timed([sys.executable, "-c", "pass"], env, "bare") for _ in range(args.runs)]
        load = os.getloadavg()[0]
        print(f"load average {load:.1f} on {os.cpu_count()} CPUs (figures scale with it)")
        print(f"audit of this host ({'node ' + name if name else 'no node running'}), "
              f"{len(findings)} checks: "
              + ", ".join(f"{f.name}={f.status.value}" for f in findings))
        print(f"  in-process audit, no erl          {summary(in_process)}")
        print(f"  `audit --json`, PATH without erl  {summary(whole)}")
        print(f"  reference: import the agent       {summary(imports)}")
        print(f"  reference: python -c pass         {summary(bare)}")
        cpu = {label: statistics.median(values) for label, values in CPU.items()}
        print(f"  CPU time (user + system), median: command {cpu['command'] * 1000:.0f} ms, "
              f"of which importing the agent {cpu['import'] * 1000:.0f} ms and the bare "
              f"interpreter {cpu['bare'] * 1000:.0f} ms")
        median_whole = statistics.median(whole)
        verdict = "under" if median_whole < 1.0 else "OVER"
        print(f"  the command: {median_whole:.3f} s, {verdict} the 1 s target; "
              f"the audit itself is {statistics.median(in_process) / median_whole:.0%} of it")
        erl = shutil.which("erl")
        if erl is not None:
            vm = [timed([erl, "-noinput", "-eval", "halt()."], dict(os.environ))
                  for _ in range(3)]
            print(f"  reference: one erl VM start       {summary(vm)}")
            ratio = statistics.median(vm) / statistics.median(in_process)
            print(f"  the in-process audit is {ratio:.1f}x cheaper than one erl start")
            cold = parse_config({**document, "audit": {"measure_port_memory": True},
                                 "agent": {"state_dir": str(work / "cold")}})
            start = time.perf_counter()
            asyncio.run(run_audit(cold, None))
            first = time.perf_counter() - start
            start = time.perf_counter()
            asyncio.run(run_audit(cold, None))
            cached = time.perf_counter() - start
            print(f"  with erl's port-memory measurement: first run {first * 1000:.0f} ms, "
                  f"then cached {cached * 1000:.0f} ms")
    finally:
        if node is not None:
            node.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
