"""`audit` against a real stand-in node: exactly the findings it was started with, the fix for
each, and the cookie never shown (compared through booleans, so a failure cannot print it)."""

from __future__ import annotations

import json
import os
import pwd
import random
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mongooseim_agent.collectors.audit import AuditCollector, cluster_source
from mongooseim_agent.collectors.cluster import ClusterCollector
from mongooseim_agent.config import Config, parse_config
from mongooseim_agent.mongooseim.audit import systemd
from mongooseim_agent.mongooseim.audit.erlmem import ErlPortMemory
from mongooseim_agent.mongooseim.audit.findings import Finding, Verdict
from mongooseim_agent.mongooseim.audit.host import HostFiles, SystemAccounts
from mongooseim_agent.mongooseim.discovery import NodeLocator, NodeTracker
from mongooseim_agent.mongooseim.nodelink import NodeLink
from mongooseim_agent.mongooseim.nodewatch import NodeWatch
from tests.support.agentproc import AgentProcess, value
from tests.support.mimnode import (
    MimNode,
    MimNodeSpec,
    build_ebin,
    form_cluster,
    free_port,
    random_cookie,
    start_nodes,
    stop_nodes,
    unique_sname,
)
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

LOW_NOFILE = 4096


def port_below_ephemeral() -> int:
    """A free port under ip_local_port_range, so the dist range overlaps no ephemeral port."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = random.randrange(max(1024, low - 8000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


@pytest.fixture(scope="module")
def ebin() -> Path:
    require_binary("erl")
    return build_ebin()


@pytest.fixture
def default_cookie_node(ebin: Path, tmp_path: Path) -> Iterator[MimNode]:
    """Started as the guide says not to: nofile 4096 and the release's default cookie; every
    other item as advised (ERL_MAX_PORTS 250000, a dist port range)."""
    port = port_below_ephemeral()
    node = MimNode(MimNodeSpec(sname=unique_sname("audit"), c2s_port=free_port(),
                               cookie="mongooseim", erl_max_ports=250000,
                               dist_range=(port, port), nofile=(LOW_NOFILE, LOW_NOFILE)),
                   tmp_path / "rel", ebin=ebin)
    node.start()
    yield node
    node.stop()


def host_files(tmp_path: Path, node: MimNode) -> Path:
    """Files that put the node's 4096 where it comes from: limits.conf for its user with
    pam_limits, or LimitNOFILE= of the service the node runs in, if it runs in one. Then only
    the nofile size and the cookie are wrong."""
    root = tmp_path / "host"
    user = pwd.getpwuid(os.getuid()).pw_name
    (root / "etc/security").mkdir(parents=True)
    (root / "etc/security/limits.conf").write_text(f"{user} - nofile {LOW_NOFILE}\n")
    (root / "etc/pam.d").mkdir()
    (root / "etc/pam.d/common-session").write_text("session required pam_limits.so\n")
    unit = systemd.unit_from_cgroup(Path(f"/proc/{node.pid}/cgroup").read_text())
    if unit is not None:
        (root / "etc/systemd/system").mkdir(parents=True)
        (root / "etc/systemd/system" / unit).write_text(
            f"[Service]\nLimitNOFILE={LOW_NOFILE}\n")
    return root


async def audit_in_process(config: Config, files: Path) -> dict[str, Finding]:
    watch = NodeWatch(NodeTracker(NodeLocator(), config.node.name))
    await watch.refresh()
    link = NodeLink(lambda: watch.current, None)
    membership = ClusterCollector(config.cluster, link)
    collector = AuditCollector(
        config, lambda: watch.current, link, node_problem=lambda: watch.discovery.problem,
        files=HostFiles(files), accounts=SystemAccounts(),
        port_memory=ErlPortMemory(cache_file=config.agent.state_dir / "ports.json"),
        wait_for_memory=True, cluster=cluster_source(membership))
    try:
        return {f.name: f for f in await collector.audit()}
    finally:
        await collector.close()
        await link.close()


def _config(tmp_path: Path, node: MimNode, extra: str = "") -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[node]\nname = "{node.node_name}"\n{extra}')
    return path


async def test_low_nofile_and_default_cookie_are_exactly_the_findings(
    tmp_path: Path, default_cookie_node: MimNode
) -> None:
    """nofile and cookie fail, each with its fix; everything else passes (cluster skips)."""
    node = default_cookie_node
    config = parse_config({"agent": {"state_dir": str(tmp_path / "state")},
                           "node": {"name": node.node_name},
                           "probes": {"timeout": "10s"}})
    found = await audit_in_process(config, host_files(tmp_path, node))
    statuses = {name: f.status for name, f in found.items()}
    bad = {name for name, status in statuses.items() if status in (Verdict.WARN, Verdict.FAIL)}
    assert bad == {"nofile", "cookie"}, {n: found[n].observed for n in bad}
    assert statuses["nofile"] is Verdict.FAIL and statuses["cookie"] is Verdict.FAIL
    assert statuses["cluster"] is Verdict.PASS
    assert found["cluster"].observed.startswith("1 db nodes (the cluster collector, through")

    nofile = found["nofile"]
    assert nofile.observed.startswith(f"soft {LOW_NOFILE}, hard {LOW_NOFILE}")
    assert nofile.observed_value == LOW_NOFILE and nofile.recommended_value == 1_000_000
    assert "nofile 1000000" in nofile.fix or "LimitNOFILE=1000000" in nofile.fix
    assert found["nofile_source"].status is Verdict.PASS

    cookie = found["cookie"]
    assert "release default" in cookie.observed and "openssl rand" in cookie.fix

    ports = found["erl_max_ports"]
    assert f"nofile ({LOW_NOFILE}, the running node) caps connections first" in ports.observed
    assert "250000 from environ" in ports.observed and "live port_limit 262144" in ports.observed
    assert "MiB of system memory" in ports.observed and "measured with erl" in ports.observed
    assert "inside it" in found["dist_port_range"].observed
    assert found["epmd"].observed.startswith("epmd answers at 127.0.0.1:4369")


def test_command_json_exit_code_and_report(tmp_path: Path,
                                           default_cookie_node: MimNode) -> None:
    """The CLI on the real host: JSON with every check, exit 2; the text report names the
    same failures with their fixes."""
    node = default_cookie_node
    config = _config(tmp_path, node)
    done = subprocess.run([sys.executable, "-m", "mongooseim_agent", "--config", str(config),
                           "audit", "--json"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "fail"
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == ["nofile", "nofile_source", "erl_max_ports", "node_name",
                            "dist_port_range", "epmd", "cookie", "kernel_limits", "cluster"]
    assert all(set(c) == {"name", "status", "observed", "recommended", "why", "fix"}
               for c in checks.values())
    assert checks["nofile"]["status"] == "fail" and checks["cookie"]["status"] == "fail"
    text = subprocess.run([sys.executable, "-m", "mongooseim_agent", "--config", str(config),
                           "audit"], capture_output=True, text=True, timeout=120, check=False)
    assert text.returncode == 2
    assert "\x1b[" not in text.stdout
    assert "FAIL  nofile\n" in text.stdout and "FAIL  cookie\n" in text.stdout
    assert "release default" in text.stdout


def test_cookie_never_appears_in_report_json_metrics_or_logs(tmp_path: Path, ebin: Path) -> None:
    """A node with a random cookie, a peer sharing it and one with another: the peer with the
    other cookie is named, and neither cookie is in the report, the JSON, /metrics or any
    log line (debug level)."""
    cookie = "c" + secrets.token_hex(12)
    other = "o" + secrets.token_hex(12)
    nodes = [MimNode(MimNodeSpec(sname=unique_sname(name), c2s_port=free_port(), cookie=c),
                     tmp_path / name, ebin=ebin)
             for name, c in (("watched", cookie), ("same", cookie), ("other", other))]
    for node in nodes:
        node.start()
    agent: AgentProcess | None = None
    try:
        watched, same, different = nodes
        # Generous per-probe time: a loaded CI machine must not turn a handshake into "no
        # answer" and hide the verdict this test is about.
        config = _config(tmp_path, watched, f'[probes]\ntimeout = "10s"\n'
                                            f'peers = ["{same.node_name}", '
                                            f'"{different.node_name}"]\n'
                                            '[audit]\ninterval = "20s"\ntimeout = "20s"\n')
        outputs: dict[str, str] = {}
        for args in (["audit", "--json"], ["audit"]):
            done = subprocess.run(
                [sys.executable, "-m", "mongooseim_agent", "--config", str(config),
                 "--log.level", "debug", *args],
                capture_output=True, text=True, timeout=120, check=False)
            outputs[" ".join(args) + " stdout"] = done.stdout
            outputs[" ".join(args) + " stderr"] = done.stderr
        report = json.loads(outputs["audit --json stdout"])
        cookie_check = next(c for c in report["checks"] if c["name"] == "cookie")
        assert cookie_check["status"] == "fail"
        assert f"rejected by peers (the handshake failed): {different.node_name}" \
            in cookie_check["observed"]
        assert "accepted by 1 peers" in cookie_check["observed"]

        agent = AgentProcess(config, extra_args=["--log.level", "debug"])
        series = agent.poll_metrics(
            lambda s: value(s, "mongooseim_config_check_ok", check="cookie") is not None,
            timeout=90)
        run = (value(series, "mongooseim_agent_collector_success", collector="audit"),
               value(series, "mongooseim_agent_collector_duration_seconds", collector="audit"))
        assert value(series, "mongooseim_config_check_ok", check="cookie") == 0, run
        assert value(series, "mongooseim_config_check_status", check="cookie",
                     status="fail") == 1
        outputs["/metrics"] = agent.get("/metrics")[2]
        outputs["agent log"] = "\n".join(str(line) for line in agent.all_logs())
        for where, text in outputs.items():
            leaked = cookie in text or other in text
            assert not leaked, f"a cookie appeared in {where}"
    finally:
        if agent is not None:
            agent.stop()
        stop_nodes(nodes)


async def test_cluster_check_uses_the_cluster_collector(tmp_path: Path, ebin: Path) -> None:
    """Two clustered nodes: cluster passes and the peer takes our cookie; the peer stopped:
    cluster fails naming it as a stopped db node, with the fix."""
    cookie = random_cookie()
    nodes = [MimNode(MimNodeSpec(sname=unique_sname(f"member{i}"), c2s_port=free_port(),
                                 cookie=cookie), tmp_path / f"n{i}", ebin=ebin)
             for i in range(2)]
    start_nodes(nodes)
    try:
        form_cluster(nodes)
        watched, peer = nodes
        config = parse_config({"agent": {"state_dir": str(tmp_path / "state")},
                               "node": {"name": watched.node_name},
                               "probes": {"timeout": "10s"},
                               "audit": {"measure_port_memory": False}})
        found = await audit_in_process(config, tmp_path / "empty")
        assert found["cluster"].status is Verdict.PASS, found["cluster"].observed
        assert found["cluster"].observed.startswith("2 db nodes")
        assert "accepted by 1 peers" in found["cookie"].observed
        assert found["dist_port_range"].recommended_value == 2
        peer.stop()
        found = await audit_in_process(config, tmp_path / "empty")
        cluster = found["cluster"]
        assert cluster.status is Verdict.FAIL
        assert f"stopped: {peer.node_name}" in cluster.observed
        assert "remove_from_cluster" in cluster.fix and cluster.observed_value == 1
    finally:
        stop_nodes(nodes)
