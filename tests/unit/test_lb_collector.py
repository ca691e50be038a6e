"""The lb collector: a stopped process, a silent VM, and connection counts per listener."""

from __future__ import annotations

from pathlib import Path

import pytest

from mongooseim_agent.collectors.loadbalancer import LoadBalancerCollector, parse_stat_state
from mongooseim_agent.config import LoadBalancerSection
from mongooseim_agent.erlang.cookie import CookieUnavailable
from mongooseim_agent.erlang.errors import WireError
from mongooseim_agent.loadbalancer.sockdiag import SockDiagError
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.snapshot import Status

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "proc"
NODE = NodeProcess(pid=4242, name="mim@h", longnames=False, uid=1000, start_ticks=987654)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Link:
    def __init__(self) -> None:
        self.error: Exception | None = None
        self.calls = 0

    async def call(self, query: object, time_limit: float) -> int:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return 42


class Counter:
    def __init__(self, counts: dict[int, int] | None) -> None:
        self.counts = counts
        self.asked: list[list[int]] = []

    def established(self, ports: object) -> dict[int, int]:
        self.asked.append(sorted(ports))  # type: ignore[call-overload]
        if self.counts is None:
            raise SockDiagError(13, "sock_diag IPv4 dump for port 5222: Permission denied")
        return self.counts


def _proc(tmp_path: Path, state: str) -> Path:
    text = (FIXTURES / "stat_beam.txt").read_text().replace(" S ", f" {state} ", 1)
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "stat").write_text(text)
    return tmp_path


def _collector(
    tmp_path: Path, state: str = "S", counter: Counter | None = None, drained: bool = False,
    **settings: object,
) -> tuple[LoadBalancerCollector, Link, Clock]:
    link, clock = Link(), Clock()
    collector = LoadBalancerCollector(
        LoadBalancerSection.model_validate(settings),
        {"c2s": "127.0.0.1:5222", "s2s": "[::1]:5269"},
        lambda: NODE,
        link,  # type: ignore[arg-type]
        proc_root=_proc(tmp_path, state),
        sockdiag=counter or Counter({5222: 7, 5269: 0}),  # type: ignore[arg-type]
        clock=clock,
        drained=lambda: drained,
    )
    return collector, link, clock


def test_parse_stat_state_counts_from_the_last_paren() -> None:
    text = (FIXTURES / "stat_paren_in_comm.txt").read_text()
    state, start = parse_stat_state(text)
    assert len(state) == 1 and start > 0
    with pytest.raises(ValueError, match="truncated"):
        parse_stat_state("4242 (beam.smp) S 1 2")


async def test_running_node_ready_with_connection_counts(tmp_path: Path) -> None:
    """State S and an answer over distribution: both OK; connections per listener name."""
    collector, link, _ = _collector(tmp_path)
    snap = await collector.collect()
    checks = {c.name: c for c in snap.checks}
    assert checks["node_state"].status is Status.OK
    assert checks["node_state"].affects_readiness
    assert checks["node_responsive"].status is Status.OK
    assert checks["listener_connections"].summary == "established: c2s 7, s2s 0"
    assert not checks["listener_connections"].affects_readiness
    assert {(s.metric, s.labels["name"], s.value) for s in snap.samples} == {
        ("mongooseim_listener_connections", "c2s", 7),
        ("mongooseim_listener_connections", "s2s", 0),
    }
    assert link.calls == 1


@pytest.mark.parametrize(("state", "word"), [("T", "stopped"), ("t", "stopped by a tracer")])
async def test_stopped_process_is_critical(tmp_path: Path, state: str, word: str) -> None:
    """kill -STOP leaves state T: critical, whatever TCP probes say."""
    collector, _, _ = _collector(tmp_path, state)
    check = next(c for c in (await collector.collect()).checks if c.name == "node_state")
    assert check.status is Status.CRITICAL and check.affects_readiness
    assert check.summary.startswith(f"pid 4242 is {word} (state {state})")


async def test_reused_pid_is_not_read_as_the_node(tmp_path: Path) -> None:
    """Another process with the node's old PID (a different start time) is not judged."""
    collector, _, _ = _collector(tmp_path, "T")
    stat = tmp_path / "4242" / "stat"
    stat.write_text(stat.read_text().replace(" 987654 ", " 987655 "))
    check = next(c for c in (await collector.collect()).checks if c.name == "node_state")
    assert check.status is Status.UNKNOWN


async def test_silence_over_distribution_turns_critical_after_silent_after(
    tmp_path: Path,
) -> None:
    """One missed answer is fine; silent_after (10 s) of them is not; an answer resets it."""
    collector, link, clock = _collector(tmp_path)
    await collector.collect()
    link.error = WireError("connection closed")
    clock.now += 9.9
    check = next(c for c in (await collector.collect()).checks if c.name == "node_responsive")
    assert check.status is Status.OK
    assert check.summary == "mim@h silent for 9.9s (limit 10s): connection closed"
    clock.now += 0.1
    check = next(c for c in (await collector.collect()).checks if c.name == "node_responsive")
    assert check.status is Status.CRITICAL
    assert check.summary.startswith("mim@h silent over distribution for 10.0s (limit 10s)")
    link.error = None
    check = next(c for c in (await collector.collect()).checks if c.name == "node_responsive")
    assert check.status is Status.OK


async def test_cookie_problem_is_unknown_not_silence(tmp_path: Path) -> None:
    collector, link, clock = _collector(tmp_path)
    link.error = CookieUnavailable("no cookie file")
    clock.now += 60
    check = next(c for c in (await collector.collect()).checks if c.name == "node_responsive")
    assert check.status is Status.UNKNOWN


async def test_sock_diag_failure_is_unknown_without_samples(tmp_path: Path) -> None:
    collector, _, _ = _collector(tmp_path, counter=Counter(None))
    snap = await collector.collect()
    check = next(c for c in snap.checks if c.name == "listener_connections")
    assert check.status is Status.UNKNOWN
    assert check.summary == (
        "cannot count connections: sock_diag IPv4 dump for port 5222: Permission denied"
    )
    assert snap.samples == ()


async def test_connections_counted_every_connections_interval(tmp_path: Path) -> None:
    """The dump runs at most every connections_interval; runs between reuse the count."""
    counter = Counter({5222: 7, 5269: 0})
    collector, _, clock = _collector(tmp_path, counter=counter, connections_interval=10)
    await collector.collect()
    counter.counts = {5222: 3, 5269: 1}
    clock.now += 9.9
    snap = await collector.collect()
    assert len(counter.asked) == 1
    assert {s.labels["name"]: s.value for s in snap.samples} == {"c2s": 7, "s2s": 0}
    clock.now += 0.1
    snap = await collector.collect()
    assert len(counter.asked) == 2
    assert {s.labels["name"]: s.value for s in snap.samples} == {"c2s": 3, "s2s": 1}


async def test_drained_summary_gives_the_safe_order(tmp_path: Path) -> None:
    """While drained, `check` and `/` say what to wait for and what comes next."""
    counter = Counter({5222: 7, 5269: 0})
    collector, _, clock = _collector(
        tmp_path, counter=counter, drained=True, connections_interval=1
    )
    check = next(c for c in (await collector.collect()).checks
                 if c.name == "listener_connections")
    assert check.summary == (
        "established: c2s 7, s2s 0; drained: wait for these to fall, then "
        "`mongooseimctl leave_cluster`, then stop the node"
    )
    counter.counts = {5222: 0, 5269: 0}
    clock.now += 1
    check = next(c for c in (await collector.collect()).checks
                 if c.name == "listener_connections")
    assert check.summary.endswith(
        "; drained and no connections left: `mongooseimctl leave_cluster`, then stop the node"
    )
