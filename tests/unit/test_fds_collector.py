"""The fd collector turns a fixture /proc tree into samples and checks."""

from pathlib import Path

import pytest

from mongooseim_agent.collectors.fds import FdCollector, count_open_fds
from mongooseim_agent.config import FdsSection
from mongooseim_agent.mongooseim.discovery import NodeLocator, NodeTracker
from mongooseim_agent.mongooseim.nodewatch import NodeWatch
from mongooseim_agent.snapshot import Snapshot, Status
from tests.support.fakeproc import add_otp_install, add_process, beam_argv, make_host


async def _collector(root: Path, open_fds: int, name: str | None = "m@h") -> FdCollector:
    watch = NodeWatch(NodeTracker(NodeLocator(proc_root=root, hostname=lambda: "h"), name))
    await watch.refresh()
    return FdCollector(
        FdsSection(), watch, proc_root=root, clock_ticks=lambda: 100,
        count_fds=lambda _root, _pid: open_fds,
    )


def _values(snap: Snapshot) -> dict[str, float]:
    return {s.metric: s.value for s in snap.samples}


async def test_samples_and_limits(tmp_path: Path) -> None:
    """Open fds, both nofile limits, host table, configured port/process limits, start time."""
    make_host(tmp_path, file_nr="1000\t0\t100000\n")
    otp = add_otp_install(tmp_path / "otp", "26.2.5")
    add_process(tmp_path, 7, beam_argv("-sname", "m", emulator=("-P", "2000"), root=str(otp)),
                environ={"ERL_MAX_PORTS": "70000"}, start_ticks=500)
    snap = await (await _collector(tmp_path, 15000)).collect()
    values = _values(snap)
    assert values["mongooseim_node_up"] == 1
    assert values["mongooseim_process_open_fds"] == 15000
    assert values["mongooseim_process_max_fds"] == 20000
    assert values["mongooseim_process_max_fds_hard"] == 20000
    assert values["mongooseim_host_fds_allocated"] == 1000
    assert values["mongooseim_host_fds_max"] == 100000
    assert values["mongooseim_host_nr_open"] == 1048576
    assert values["mongooseim_vm_port_limit_configured"] == 70000
    assert values["mongooseim_vm_process_limit_configured"] == 2000
    assert values["mongooseim_node_start_time_seconds"] == 1763900000 + 5
    info = next(s for s in snap.samples if s.metric == "mongooseim_node_info")
    assert info.labels == {"erlang_node": "m@h", "otp_release": "26.2.5", "release_root": ""}
    assert all(not s.labels for s in snap.samples if s is not info)
    fds = next(c for c in snap.checks if c.name == "node_fds")
    assert fds.status is Status.OK


@pytest.mark.parametrize(("open_fds", "status"), [
    (15999, Status.OK), (16000, Status.WARNING), (18000, Status.CRITICAL),
])
async def test_fd_thresholds(tmp_path: Path, open_fds: int, status: Status) -> None:
    """80% of nofile warns and 90% is critical (the defaults), and critical affects readiness."""
    make_host(tmp_path)
    add_process(tmp_path, 7, beam_argv("-sname", "m"))
    snap = await (await _collector(tmp_path, open_fds)).collect()
    check = next(c for c in snap.checks if c.name == "node_fds")
    assert check.status is status
    assert check.affects_readiness


async def test_node_gone_leaves_no_process_series(tmp_path: Path) -> None:
    """No node: node_up 0 with the wanted name, and no per-process series at all."""
    make_host(tmp_path)
    snap = await (await _collector(tmp_path, 10)).collect()
    assert {s.metric for s in snap.samples} == {
        "mongooseim_node_up", "mongooseim_host_fds_allocated", "mongooseim_host_fds_max",
        "mongooseim_host_nr_open",
    }
    up = next(s for s in snap.samples if s.metric == "mongooseim_node_up")
    assert (up.value, up.labels) == (0, {})
    node = next(c for c in snap.checks if c.name == "node_process")
    assert node.status is Status.CRITICAL and node.affects_readiness


def test_count_falls_back_to_listing_when_stat_gives_zero(tmp_path: Path) -> None:
    """Kernels before 6.2 report st_size 0: the directory is listed instead.

    A fake: an old kernel cannot be produced here, so st_size is injected as 0.
    """
    fd_dir = tmp_path / "9" / "fd"
    fd_dir.mkdir(parents=True)
    for i in range(5):
        (fd_dir / str(i)).touch()
    assert count_open_fds(tmp_path, 9, stat_size=lambda _p: 0) == 5


async def test_boot_time_is_read_once(tmp_path: Path) -> None:
    """/proc/stat is read for btime on the first sample only (it never changes)."""
    make_host(tmp_path)
    add_process(tmp_path, 7, beam_argv("-sname", "m"), start_ticks=500)
    collector = await _collector(tmp_path, 10)
    first = _values(await collector.collect())
    (tmp_path / "stat").unlink()
    second = _values(await collector.collect())
    assert first["mongooseim_node_start_time_seconds"] == 1763900005
    assert second["mongooseim_node_start_time_seconds"] == 1763900005
