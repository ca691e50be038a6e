"""The node's port and process tables, read live over distribution.

Port-table exhaustion (`system_limit`) is often swallowed without a log line, and the
configured size is not the real one (ERTS rounds it up to a power of two), so only the
running VM's own numbers tell how close it is.
"""

from __future__ import annotations

import asyncio

from mongooseim_agent.config import VmSection
from mongooseim_agent.erlang.connection import Query, reply_int
from mongooseim_agent.erlang.cookie import CookieUnavailable
from mongooseim_agent.erlang.errors import CookieRejected, RpcError, WireError
from mongooseim_agent.metrics import MetricSpec, gauge
from mongooseim_agent.mongooseim.nodelink import NodeLink, NodeNotFound
from mongooseim_agent.perfdata import above
from mongooseim_agent.snapshot import Check, Perf, Sample, Snapshot, Status

METRICS: tuple[MetricSpec, ...] = (
    gauge("mongooseim_vm_ports", "Ports in use in the node's VM."),
    gauge("mongooseim_vm_port_limit", "Size of the node's port table (live value)."),
    gauge("mongooseim_vm_processes", "Processes in the node's VM."),
    gauge("mongooseim_vm_process_limit", "Size of the node's process table."),
    gauge(
        "mongooseim_dist_auth_success",
        "1 if the node accepted the agent's cookie in the distribution handshake, 0 if it "
        "refused it or no cookie could be read (absent while the node cannot be reached).",
    ),
)

_READINGS = (
    (Query.PORT_COUNT, "mongooseim_vm_ports"),
    (Query.PORT_LIMIT, "mongooseim_vm_port_limit"),
    (Query.PROCESS_COUNT, "mongooseim_vm_processes"),
    (Query.PROCESS_LIMIT, "mongooseim_vm_process_limit"),
)
# ERTS caps both tables at 2^27 entries; a reply beyond 2^32 is not a table reading.
MAX_TABLE_SIZE = 2**32
_AUTH_OK = (Sample("mongooseim_dist_auth_success", 1),)
_AUTH_FAILED = (Sample("mongooseim_dist_auth_success", 0),)
_TABLE_HINTS = {
    "port": "raise the port table (+Q or -env ERL_MAX_PORTS in vm.args) and the nofile "
    "limit; when it is full new connections fail with system_limit, often without a log line",
    "process": "raise +P in vm.args; when the table is full spawning fails with system_limit",
}


def _status(ratio: float, settings: VmSection) -> Status:
    if ratio >= settings.critical_ratio:
        return Status.CRITICAL
    if ratio >= settings.warning_ratio:
        return Status.WARNING
    return Status.OK


class VmCollector:
    name = "vm"
    metrics = METRICS

    def __init__(self, settings: VmSection, link: NodeLink) -> None:
        self.interval = settings.interval
        self.timeout = settings.timeout
        self._settings = settings
        self._link = link

    async def collect(self) -> Snapshot:
        node = self._link.node()
        if node is None:
            return Snapshot(self.name, checks=(
                Check("vm_tables", Status.UNKNOWN, "node not found: VM tables not read"),
            ))
        # One deadline for the whole run, a little inside the runner's timeout, so that a
        # slow node gives a clear check here instead of a cancelled collector.
        budget = self.timeout * 0.9
        values: dict[str, int] = {}
        try:
            async with asyncio.timeout(budget):
                for query, metric in _READINGS:
                    values[metric] = reply_int(query, await self._link.call(query, budget))
        except TimeoutError:
            return Snapshot(self.name, checks=(Check(
                "vm_tables", Status.UNKNOWN,
                f"cannot read VM tables: no answer from {node.name} in {budget:g}s",
                hint="the VM may be overloaded or wedged: check its scheduler use and the log",
            ),))
        except CookieRejected as exc:
            return Snapshot(self.name, _AUTH_FAILED, checks=(Check(
                "vm_tables", Status.CRITICAL, f"cannot read VM tables: {exc}",
                hint="the agent's cookie differs from the node's: check [node] cookie_file, "
                "the node's -setcookie and its user's ~/.erlang.cookie",
            ),))
        except CookieUnavailable as exc:
            return Snapshot(self.name, _AUTH_FAILED, checks=(Check(
                "vm_tables", Status.UNKNOWN, f"cannot read VM tables: {exc}",
                hint="the agent must know the node's cookie: set [node] cookie_file or run "
                "the agent as the node's user",
            ),))
        except RpcError as exc:
            # The handshake passed: the node took our cookie and then refused or mangled
            # a call.
            return Snapshot(self.name, _AUTH_OK, checks=(Check(
                "vm_tables", Status.UNKNOWN, f"cannot read VM tables: {exc}",
            ),))
        except (NodeNotFound, WireError) as exc:
            return Snapshot(self.name, checks=(Check(
                "vm_tables", Status.UNKNOWN, f"cannot read VM tables: {exc}",
                hint="the node must be reachable over Erlang distribution from this host "
                "(epmd and the dist port) and the agent must know its cookie",
            ),))
        sane = {metric: v for metric, v in values.items() if 0 <= v <= MAX_TABLE_SIZE}
        samples = (*_AUTH_OK, *(Sample(metric, value) for metric, value in sane.items()))
        checks = tuple(
            self._table_check(kind, sane.get(used), sane.get(size))
            for kind, used, size in (
                ("port", "mongooseim_vm_ports", "mongooseim_vm_port_limit"),
                ("process", "mongooseim_vm_processes", "mongooseim_vm_process_limit"),
            )
        )
        return Snapshot(self.name, samples, checks, dropped=len(values) - len(sane))

    def _table_check(self, kind: str, used: int | None, size: int | None) -> Check:
        if used is None or size is None:
            return Check(
                f"vm_{kind}_table", Status.UNKNOWN,
                f"the node answered an out-of-range {kind} table reading (not 0.."
                f"{MAX_TABLE_SIZE}): ignored",
            )
        ratio = used / size if size > 0 else 1.0
        return Check(
            f"vm_{kind}_table",
            _status(ratio, self._settings),
            f"{used} of {size} {kind}es in use ({ratio:.1%})" if kind == "process"
            else f"{used} of {size} ports in use ({ratio:.1%})",
            hint=_TABLE_HINTS[kind],
            perfdata={
                f"{kind}es" if kind == "process" else "ports": Perf(
                    used, warn=above(self._settings.warning_ratio, size),
                    crit=above(self._settings.critical_ratio, size), min=0, max=size),
                f"{kind}_limit": Perf(size, min=0),
            },
            affects_readiness=kind == "port",
        )
