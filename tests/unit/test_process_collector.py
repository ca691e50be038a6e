"""The psutil process collector's samples, from injected readings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mongooseim_agent.collectors.process import ProcessCollector, ProcessGone, ProcessReading
from mongooseim_agent.config import ProcessSection
from mongooseim_agent.mongooseim.discovery import NodeLocator, NodeTracker
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.nodewatch import NodeWatch
from tests.support.fakeproc import add_process, beam_argv, make_host

READING = ProcessReading(rss=300 << 20, cpu_seconds=12.5, threads=41, voluntary=900,
                         involuntary=7)


def _values(snapshot_samples: tuple) -> dict[tuple[str, tuple], float]:  # type: ignore[type-arg]
    return {(s.metric, tuple(s.labels.items())): s.value for s in snapshot_samples}


async def _watch(root: Path, with_node: bool) -> NodeWatch:
    make_host(root)
    if with_node:
        add_process(root, 7, beam_argv("-sname", "m"))
    watch = NodeWatch(NodeTracker(NodeLocator(proc_root=root, hostname=lambda: "h"), "m@h"))
    await watch.refresh()
    return watch


async def test_node_resources_and_host_memory(tmp_path: Path) -> None:
    """RSS, CPU seconds, threads, both context switch kinds and MemAvailable, unlabelled
    except `kind`."""
    seen: list[int] = []

    def read(node: NodeProcess) -> ProcessReading:
        seen.append(node.pid)
        return READING

    collector = ProcessCollector(ProcessSection(), await _watch(tmp_path, True), read,
                                 host_available=lambda: 8 << 30)
    values = _values((await collector.collect()).samples)
    assert seen == [7]
    assert values == {
        ("mongooseim_host_memory_available_bytes", ()): 8 << 30,
        ("mongooseim_process_resident_memory_bytes", ()): 300 << 20,
        ("mongooseim_process_cpu_seconds_total", ()): 12.5,
        ("mongooseim_process_threads", ()): 41,
        ("mongooseim_process_context_switches_total", (("kind", "voluntary"),)): 900,
        ("mongooseim_process_context_switches_total", (("kind", "involuntary"),)): 7,
    }


async def test_no_node_or_gone_node_leaves_host_memory_only(tmp_path: Path) -> None:
    """Without the node (or when it exits mid-sample) only the host series remains."""
    def gone(node: NodeProcess) -> ProcessReading:
        raise ProcessGone("exited")

    for with_node, read in ((False, lambda _n: READING), (True, gone)):
        root = tmp_path / str(with_node)
        collector = ProcessCollector(ProcessSection(), await _watch(root, with_node), read,
                                     host_available=lambda: 1)
        values = _values((await collector.collect()).samples)
        assert values == {("mongooseim_host_memory_available_bytes", ()): 1}


def test_disabled_means_not_built_and_psutil_not_loaded() -> None:
    """[process] enabled = false: no process collector, and psutil is never imported."""
    code = (
        "import sys\n"
        "from mongooseim_agent.collectors.registry import build\n"
        "from mongooseim_agent.config import parse_config\n"
        "from mongooseim_agent.mongooseim.discovery import NodeLocator, NodeTracker\n"
        "from mongooseim_agent.mongooseim.nodewatch import NodeWatch\n"
        "config = parse_config({'process': {'enabled': False}})\n"
        "assembly = build(config, NodeWatch(NodeTracker(NodeLocator(), 'x@y')))\n"
        "print(sorted(c.name for c in assembly.collectors), 'psutil' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    names, loaded = out.rsplit(" ", 1)
    assert "process" not in names and "fds" in names
    assert loaded.strip() == "False"
