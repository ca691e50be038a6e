"""The psutil collector against a real beam.smp: values agree with /proc read directly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mongooseim_agent.collectors.process import ProcessCollector
from mongooseim_agent.config import ProcessSection
from mongooseim_agent.mongooseim.discovery import NodeLocator, NodeTracker
from mongooseim_agent.mongooseim.nodewatch import NodeWatch
from tests.support.beam import HoldingBeam
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable")


async def test_values_match_proc(tmp_path: Path) -> None:
    """RSS and MemAvailable within a few percent of /proc, threads and context switches
    bracketed by reads of /proc/PID/status taken around the sample, CPU seconds plausible."""
    require_binary("erl")
    beam = HoldingBeam(10, tmp_path)
    try:
        tracker = NodeTracker(NodeLocator(), beam.sname)
        watch = NodeWatch(tracker)
        assert (await watch.refresh()).node is not None
        before = _status(beam.pid)
        snapshot = await ProcessCollector(ProcessSection(), watch).collect()
        after = _status(beam.pid)
        values = {(s.metric, s.labels.get("kind")): s.value for s in snapshot.samples}
        rss_kib = int(after["VmRSS"].split()[0])
        assert abs(values[("mongooseim_process_resident_memory_bytes", None)] - rss_kib * 1024) \
            < 0.05 * rss_kib * 1024
        assert int(before["Threads"]) <= values[("mongooseim_process_threads", None)] \
            <= int(after["Threads"])
        for kind in ("voluntary", "nonvoluntary"):
            key = ("mongooseim_process_context_switches_total",
                   "involuntary" if kind == "nonvoluntary" else kind)
            assert int(before[f"{kind}_ctxt_switches"]) <= values[key] \
                <= int(after[f"{kind}_ctxt_switches"])
        # One clock tick of slack: psutil sums user and system as floats.
        assert 0 < values[("mongooseim_process_cpu_seconds_total", None)] \
            <= _cpu_seconds(beam.pid) + 0.01
        available = values[("mongooseim_host_memory_available_bytes", None)]
        assert abs(available - _mem_available()) < 0.05 * _mem_available()
    finally:
        beam.stop()
