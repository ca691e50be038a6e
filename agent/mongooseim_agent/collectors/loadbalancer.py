"""What a load balancer needs beyond the other collectors, checked every couple of seconds:

- `node_state`: the node's beam.smp is not stopped. `kill -STOP` (or a debugger) freezes the
  VM while the kernel keeps completing TCP handshakes on its listeners, so a TCP probe says
  "up"; /proc/PID/stat says `T`.
- `node_responsive`: the VM answered over distribution within `[load_balancer]
  silent_after`. A wedged VM (schedulers stuck, not stopped) is silent there too.
- `mongooseim_listener_connections{name}`: established connections on each `[probes]`
  listener, from sock_diag; after `drain`, wait for these to fall before `leave_cluster`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent.config import LoadBalancerSection, parse_host_port
from mongooseim_agent.erlang.connection import Query
from mongooseim_agent.erlang.cookie import CookieUnavailable
from mongooseim_agent.erlang.errors import CookieRejected, WireError
from mongooseim_agent.loadbalancer.sockdiag import SockDiag, SockDiagError
from mongooseim_agent.metrics import MetricSpec, gauge
from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.mongooseim.nodelink import NodeLink, NodeNotFound
from mongooseim_agent.snapshot import Check, Sample, Snapshot, Status

METRICS: tuple[MetricSpec, ...] = (
    gauge(
        "mongooseim_listener_connections",
        "Established TCP connections on the listener's local port (IPv4 and IPv6), from the "
        "kernel's socket diagnostics.",
        "name",
    ),
)

# /proc/PID/stat states that mean the process cannot run: stopped, traced, dead.
_FROZEN_STATES = {"T": "stopped", "t": "stopped by a tracer", "Z": "a zombie", "X": "dead"}


def parse_stat_state(text: str) -> tuple[str, int]:
    """Field 3 (state) and field 22 (start time, ticks) of /proc/PID/stat.

    The command name may hold spaces and ')', so fields are counted from the last ')'.
    """
    fields = text[text.rfind(")") + 1 :].split()
    if text.rfind(")") < 0 or len(fields) < 20:
        raise ValueError("stat: truncated")
    return fields[0], int(fields[19])


@dataclass(frozen=True, slots=True)
class _LocalReading:
    state: str | None  # None: the process is gone (or is another one now)
    connections: dict[int, int] | None
    connections_error: str | None


class LoadBalancerCollector:
    name = "lb"
    metrics = METRICS

    def __init__(
        self,
        settings: LoadBalancerSection,
        listeners: Mapping[str, str],
        node: Callable[[], NodeProcess | None],
        link: NodeLink,
        *,
        proc_root: Path = Path("/proc"),
        sockdiag: SockDiag | None = None,
        clock: Callable[[], float] = time.monotonic,
        drained: Callable[[], bool] = lambda: False,
    ) -> None:
        self.interval = settings.interval
        self.timeout = settings.timeout
        self._settings = settings
        self._listeners = {name: parse_host_port(t)[1] for name, t in listeners.items()}
        self._node = node
        self._link = link
        self._proc = proc_root
        self._sockdiag = sockdiag or SockDiag(timeout=settings.timeout / 2)
        self._clock = clock
        self._drained = drained
        # The node (name, pid, start) last heard from over distribution, and when.
        self._identity: tuple[str, int, int] | None = None
        self._last_answer = 0.0
        # The last connection counts and when they were taken (monotonic).
        self._counted: tuple[float, dict[int, int] | None, str | None] | None = None

    async def collect(self) -> Snapshot:
        node = self._node()
        # One read of a procfs file never blocks on a disk: a thread hand-off would cost
        # more than it. The sock_diag dump, which can take milliseconds, runs off the loop.
        state = self._read_state(node)
        if self._counting_due():
            (connections, error), answer = await asyncio.gather(
                asyncio.to_thread(self._count), self._ping(node)
            )
            self._counted = (self._clock(), connections, error)
        else:
            answer = await self._ping(node)
        # No listeners: nothing to count, and never counted.
        _, connections, error = self._counted or (0.0, {}, None)
        local = _LocalReading(state, connections, error)
        samples: list[Sample] = []
        checks: list[Check] = []
        if node is not None:
            checks.append(self._state_check(node, local.state))
            checks.append(self._responsive_check(node, answer))
        if local.connections is not None:
            for name, port in self._listeners.items():
                count = local.connections.get(port, 0)
                samples.append(Sample("mongooseim_listener_connections", count, {"name": name}))
        checks.append(self._connections_check(local, self._drained()))
        return Snapshot(self.name, tuple(samples), tuple(checks))

    def _read_state(self, node: NodeProcess | None) -> str | None:
        """The process state letter; None when it is gone (or the PID is another's now)."""
        if node is None:
            return None
        try:
            text = (self._proc / str(node.pid) / "stat").read_text()
            found, start = parse_stat_state(text)
        except (OSError, ValueError):
            return None
        return found if start == node.start_ticks else None

    def _counting_due(self) -> bool:
        if not self._listeners:
            return False
        counted = self._counted
        return counted is None or (
            self._clock() - counted[0] >= self._settings.connections_interval
        )

    def _count(self) -> tuple[dict[int, int] | None, str | None]:
        try:
            return self._sockdiag.established(self._listeners.values()), None
        except SockDiagError as exc:
            return None, exc.strerror or str(exc)

    async def _ping(self, node: NodeProcess | None) -> str | None:
        """None when the node answered; else why not. Tracks when it last answered."""
        if node is None:
            return "node not found"
        now = self._clock()
        identity = (node.name, node.pid, node.start_ticks)
        if identity != self._identity:
            # A new (or restarted) node gets silent_after from when it was first seen.
            self._identity, self._last_answer = identity, now
        budget = self.timeout * 0.8
        try:
            async with asyncio.timeout(budget):
                await self._link.call(Query.PROCESS_COUNT, budget)
        except TimeoutError:
            return f"no answer in {budget:g}s"
        except (CookieRejected, CookieUnavailable) as exc:
            # Says nothing about the VM: the silence clock is left alone.
            return f"cookie: {exc}"
        except (NodeNotFound, WireError, OSError) as exc:
            return str(exc) or type(exc).__name__
        self._last_answer = self._clock()
        return None

    @staticmethod
    def _state_check(node: NodeProcess, state: str | None) -> Check:
        if state is None:
            return Check("node_state", Status.UNKNOWN,
                         f"pid {node.pid} gone: see node_process", affects_readiness=True)
        frozen = _FROZEN_STATES.get(state)
        if frozen is not None:
            return Check(
                "node_state", Status.CRITICAL,
                f"pid {node.pid} is {frozen} (state {state}): the VM cannot answer, yet the "
                "kernel still accepts connections on its listeners",
                hint="a SIGSTOP (kill -CONT resumes it), a debugger, or a dying process: "
                "clients connecting now hang",
                affects_readiness=True,
            )
        return Check("node_state", Status.OK, f"pid {node.pid} state {state}",
                     affects_readiness=True)

    def _responsive_check(self, node: NodeProcess, problem: str | None) -> Check:
        limit = self._settings.silent_after
        if problem is None:
            return Check("node_responsive", Status.OK,
                         f"{node.name} answered over distribution", affects_readiness=True)
        if problem.startswith("cookie: "):
            return Check("node_responsive", Status.UNKNOWN,
                         f"cannot ask {node.name}: {problem}", affects_readiness=True)
        silent = self._clock() - self._last_answer
        if silent >= limit:
            return Check(
                "node_responsive", Status.CRITICAL,
                f"{node.name} silent over distribution for {silent:.1f}s (limit {limit:g}s): "
                f"{problem}",
                hint="a frozen or overloaded VM: check node_state, its CPU and run queue; "
                "the kernel keeps accepting connections that the VM never serves",
                affects_readiness=True,
            )
        # One missed answer is no reason to move traffic, even under fail_on = "warning".
        return Check(
            "node_responsive", Status.OK,
            f"{node.name} silent for {silent:.1f}s (limit {limit:g}s): {problem}",
            affects_readiness=True,
        )

    def _connections_check(self, local: _LocalReading, drained: bool) -> Check:
        hint = ("after `mongooseim-agent drain`, wait for these to fall before "
                "`mongooseimctl leave_cluster` and stopping the node")
        if local.connections is None:
            return Check("listener_connections", Status.UNKNOWN,
                         f"cannot count connections: {local.connections_error}", hint=hint)
        if not self._listeners:
            return Check("listener_connections", Status.OK, "no listeners configured")
        parts = [
            f"{name} {local.connections.get(port, 0)}" for name, port in self._listeners.items()
        ]
        summary = "established: " + ", ".join(parts)
        if drained:
            # The guide's safe order, where the operator looks while waiting.
            left = sum(local.connections.get(port, 0) for port in self._listeners.values())
            summary += (
                "; drained: wait for these to fall, then `mongooseimctl leave_cluster`, "
                "then stop the node" if left else
                "; drained and no connections left: `mongooseimctl leave_cluster`, "
                "then stop the node"
            )
        return Check(
            "listener_connections", Status.OK, summary, hint=hint,
            perfdata={f"{name}_connections": local.connections.get(port, 0)
                      for name, port in self._listeners.items()},
        )
