"""The audit's live side on a fixture /proc and host tree: the node's own limits and cgroup,
/proc/sys, listening sockets, an epmd answer and name resolution, all injected."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
from pathlib import Path
from typing import Any

from mongooseim_agent.collectors.audit import AuditCollector
from mongooseim_agent.config import parse_config
from mongooseim_agent.mongooseim.audit.findings import Finding, Verdict
from mongooseim_agent.mongooseim.audit.host import FileAccounts, HostFiles
from mongooseim_agent.mongooseim.discovery import NodeLocator
from mongooseim_agent.mongooseim.node import NodeProcess
from tests.support.fakeproc import add_process, beam_argv, make_host

TREES = Path(__file__).resolve().parent.parent / "fixtures" / "audit"
PID = 4242
TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue\n"


class FakeWriter:
    class _Transport:
        def abort(self) -> None:
            pass

    transport = _Transport()

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


def epmd_answering(nodes: dict[str, int]) -> Any:
    """open_connection for epmd on 127.0.0.1:4369 only, answering NAMES with `nodes`."""
    reply = struct.pack(">I", 4369) + "".join(
        f"name {name} at port {port}\n" for name, port in nodes.items()).encode()

    async def open_connection(host: str, port: int) -> tuple[asyncio.StreamReader, FakeWriter]:
        if (host, port) != ("127.0.0.1", 4369):
            raise ConnectionRefusedError(111, "Connection refused")
        reader = asyncio.StreamReader()
        reader.feed_data(reply)
        reader.feed_eof()
        return reader, FakeWriter()

    return open_connection


async def epmd_down(host: str, port: int) -> Any:
    raise ConnectionRefusedError(111, "Connection refused")


def proc_tree(root: Path, argv: list[str], listeners: str) -> Path:
    proc = root / "proc"
    make_host(proc)
    (proc / "sys/fs/file-max").write_text("9223372036854775807\n")
    (proc / "sys/net/ipv4").mkdir(parents=True)
    (proc / "sys/net/ipv4/ip_local_port_range").write_text("32768\t60999\n")
    base = add_process(proc, PID, argv, environ={"ERL_MAX_PORTS": "250000"},
                       uid=os.getuid())
    (base / "cgroup").write_text("0::/system.slice/mongooseim.service\n")
    (proc / "net").mkdir()
    (proc / "net/tcp").write_text(TCP_HEADER + listeners)
    return proc


async def live_audit(tmp_path: Path, *, argv: list[str], listeners: str,
                     open_connection: Any, peers: tuple[str, ...] = ()) -> dict[str, Finding]:
    files = tmp_path / "host"
    shutil.copytree(TREES / "debian_good", files)
    passwd = files / "etc/passwd"
    passwd.write_text(passwd.read_text() + f"me:x:{os.getuid()}:999::/nonexistent:/bin/sh\n")
    proc = proc_tree(tmp_path, argv, listeners)
    node = NodeLocator(proc_root=proc, hostname=lambda: "xmpp1").read(PID)
    assert isinstance(node, NodeProcess)
    addresses = {"xmpp1": ("10.0.0.1",), "xmpp2": ("10.0.0.2",)}

    async def resolve(host: str) -> tuple[str, ...]:
        if host not in addresses:
            raise OSError(-2, "Name or service not known")
        return addresses[host]

    config = parse_config({"audit": {"measure_port_memory": False},
                           "probes": {"peers": list(peers)}})
    collector = AuditCollector(
        config, lambda: node, None, files=HostFiles(files),
        accounts=FileAccounts(HostFiles(files)), proc_root=proc, resolve=resolve,
        open_connection=open_connection)
    return {f.name: f for f in await collector.audit()}


RANGED = beam_argv("-sname", "mongooseim", "-setcookie", "fixturecookie", "-kernel",
                   "inet_dist_listen_min", "9100", "inet_dist_listen_max", "9100")
ALL_INTERFACES = "   0: 00000000:1111 00000000:0000 0A 0\n   1: 00000000:238C 00000000:0000 0A 0\n"


async def test_running_node_against_its_unit_and_host(tmp_path: Path) -> None:
    """The node's 20000 from /proc/PID/limits fails nofile and differs from the unit's
    LimitNOFILE=1000000 (a restart changes it); epmd lists it on 9100, inside its range;
    a peer that does not resolve fails node_name and makes the one-port range too narrow."""
    found = await live_audit(tmp_path, argv=RANGED, listeners=ALL_INTERFACES,
                             open_connection=epmd_answering({"mongooseim": 9100}),
                             peers=("mongooseim@xmpp3",))
    assert found["nofile"].status is Verdict.FAIL
    assert found["nofile"].observed.startswith("soft 20000, hard 20000")
    assert "systemctl edit mongooseim.service" in found["nofile"].fix
    source = found["nofile_source"]
    assert source.status is Verdict.WARN
    assert "the running node has soft 20000, so a restart will change it" in source.observed
    assert found["erl_max_ports"].observed.startswith("250000 from environ")
    name = found["node_name"]
    assert name.status is Verdict.FAIL
    assert "xmpp1 resolves to 10.0.0.1" in name.observed
    assert "mongooseim@xmpp3 (Name or service not known)" in name.observed
    dist = found["dist_port_range"]
    assert dist.status is Verdict.WARN and "the node listens on 9100, inside it" in dist.observed
    epmd = found["epmd"]
    assert epmd.status is Verdict.PASS
    assert "epmd (4369) and the distribution port (9100) listen on all interfaces" \
        in epmd.observed
    assert found["kernel_limits"].status is Verdict.PASS
    assert "peers not checked: no distribution link" in found["cookie"].observed
    assert found["cluster"].status is Verdict.SKIP


async def test_exposed_without_range_and_epmd_down(tmp_path: Path) -> None:
    """No range and epmd on all interfaces warns; epmd refusing fails."""
    argv = beam_argv("-sname", "mongooseim")
    exposed = await live_audit(tmp_path / "a", argv=argv, listeners=ALL_INTERFACES,
                               open_connection=epmd_answering({"mongooseim": 9100}))
    assert exposed["epmd"].status is Verdict.WARN
    assert "no port range configured" in exposed["epmd"].observed
    assert exposed["dist_port_range"].status is Verdict.WARN
    assert exposed["node_name"].status is Verdict.PASS
    down = await live_audit(tmp_path / "b", argv=argv, listeners="",
                            open_connection=epmd_down)
    assert down["epmd"].status is Verdict.FAIL
    assert "does not answer" in down["epmd"].observed and "epmd -daemon" in down["epmd"].fix
    unregistered = await live_audit(tmp_path / "c", argv=argv, listeners="",
                                    open_connection=epmd_answering({"other": 9200}))
    assert unregistered["epmd"].status is Verdict.FAIL
    assert "not registered" in unregistered["epmd"].observed
