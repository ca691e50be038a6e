"""End to end on loopback, every component real: a stand-in MongooseIM node driven into real
emfile, the agent, two Prometheus replicas (an HA pair) loading the shipped rules, two
clustered Alertmanagers loading the shipped routing, and a webhook receiver.

Only the intervals are short (scrape and evaluation every second); the rules, their `for:`
durations, the routing and its timings are the shipped ones.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.agentproc import AgentProcess
from tests.support.alerting import (
    Alertmanager,
    Prometheus,
    WebhookSink,
    alertmanager_config,
    wait_for,
)
from tests.support.exporters import (
    RULES,
    SCRAPE,
    dashboard_queries,
    load_yaml,
    promql_metric_names,
)
from tests.support.mimnode import MimNode, MimNodeSpec, free_port, random_cookie, unique_sname
from tests.support.require import require_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUNBOOKS = "docs/runbooks.md#"
# What one watched node exposes without peers, CETS, MongooseIM's own endpoint, a dist port
# range or fd growth: dashboard queries over these alone must return data here.
EXPOSED_HERE = frozenset({
    "up", "ALERTS", "mongooseim_node_up", "mongooseim_node_ready",
    "mongooseim_process_open_fds", "mongooseim_process_max_fds",
    "mongooseim_process_max_fds_hard", "mongooseim_host_fds_allocated", "mongooseim_host_fds_max",
    "instance:mongooseim_process_fds:usage_ratio", "instance:mongooseim_process_fds:headroom",
    "mongooseim_log_matches_total", "mongooseim_log_lines_total", "mongooseim_log_losses_total",
    "mongooseim_vm_ports", "mongooseim_vm_port_limit", "mongooseim_vm_processes",
    "mongooseim_vm_process_limit", "mongooseim_probe_success", "mongooseim_probe_duration_seconds",
    "mongooseim_epmd_up", "mongooseim_agent_collector_success",
    "mongooseim_agent_collector_duration_seconds", "mongooseim_agent_build_info",
    "mongooseim_dist_auth_success", "mongooseim_node_drained", "mongooseim_listener_connections",
    "mongooseim_cluster_db_nodes", "mongooseim_cluster_running_nodes",
    "mongooseim_cluster_stopped_nodes", "mongooseim_cluster_node_running",
    "mongooseim_cluster_expected_node_present",
    "mongooseim_cluster_view_info", "mongooseim_cluster_source_info",
    "mongooseim_cluster_partitioned", "cluster:mongooseim_cluster_views:count",
    "mongooseim_config_check_ok",
})
PAGE_BUDGET = 90.0
_WHEN = re.compile(r"when=(\S+)")


def prometheus_config(
    replica: str, agent_port: int, managers: list[Alertmanager]
) -> dict[str, Any]:
    """The shipped scrape example with the test's targets and one-second intervals."""
    config = load_yaml(SCRAPE)
    config["global"].update(scrape_interval="1s", evaluation_interval="1s",
                            external_labels={"replica": replica})
    config["rule_files"] = [str(RULES)]
    config["alerting"]["alertmanagers"] = [
        {"static_configs": [{"targets": [f"127.0.0.1:{m.port}" for m in managers]}]}
    ]
    [agent_job] = [j for j in config["scrape_configs"] if j["job_name"] == "mongooseim-agent"]
    agent_job.update(scrape_interval="1s", scrape_timeout="900ms")
    agent_job["static_configs"][0]["targets"] = [f"127.0.0.1:{agent_port}"]
    config["scrape_configs"] = [agent_job]
    return config


def first_emfile_line(node: MimNode) -> float | None:
    """When the node logged its first emfile line (the line's own UTC timestamp)."""
    for path in sorted(node.log_dir.glob("mongooseim.log.[0-9]*")):
        with path.open(errors="replace") as lines:
            for line in lines:
                if "out of file descriptors" in line:
                    when = _WHEN.search(line)
                    assert when is not None, line
                    return datetime.fromisoformat(when.group(1)).timestamp()
    return None


@contextlib.contextmanager
def connection_flood(port: int, count: int) -> Iterator[list[socket.socket]]:
    """Open `count` TCP connections to the node's c2s port and hold them."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(sock)
        yield held
    finally:
        for sock in held:
            sock.close()


@pytest.mark.timeout(420)
def test_emfile_pages_once_node_down_inhibits_and_resolves(tmp_path: Path) -> None:
    """emfile -> one page within 90 s through an HA pair; node down pages and inhibits its
    listener alert; restart resolves."""
    prometheus_bin = require_binary("prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager")
    require_binary("erl")
    nofile = 256
    node = MimNode(MimNodeSpec(sname=unique_sname("e2e"), c2s_port=free_port(),
                               cookie=random_cookie(), nofile=(nofile, nofile)),
                   tmp_path / "mim")
    sink = WebhookSink()
    stack: list[Any] = []
    try:
        node.start()
        config = tmp_path / "agent.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
            f'[node]\nname = "{node.node_name}"\n'
            '[fds]\ninterval = "500ms"\ntimeout = "400ms"\n'
            '[probes]\ninterval = "1s"\ntimeout = "500ms"\n'
            f'listeners = {{ c2s = "127.0.0.1:{node.spec.c2s_port}" }}\n'
        )
        agent = AgentProcess(config)
        stack.append(agent)
        gossip = [free_port(), free_port()]
        managers = [
            Alertmanager(alertmanager_bin, alertmanager_config(sink), tmp_path / f"am{i}",
                         cluster_port=gossip[i], peers=[gossip[1 - i]])
            for i in range(2)
        ]
        stack.extend(managers)
        wait_for(lambda: all(m.cluster_peers() == 2 for m in managers), 30,
                 "the two Alertmanagers to gossip")
        replicas = [
            Prometheus(prometheus_bin, prometheus_config(r, agent.port, managers),
                       tmp_path / f"prom{r}")
            for r in ("A", "B")
        ]
        stack.extend(replicas)
        emfile_series = 'mongooseim_log_matches_total{job="mongooseim-agent",pattern="emfile"}'
        for prom in replicas:
            wait_for(lambda p=prom: p.query(emfile_series)["data"]["result"], 60,
                     "both replicas to store the emfile counter")

        # 1. emfile: a flood of clients on c2s beyond the node's nofile.
        with connection_flood(node.spec.c2s_port, nofile + 50):
            first_line = wait_for(lambda: first_emfile_line(node), 30, "an emfile line")
            page = wait_for(lambda: sink.notifications("MongooseIMEmfileErrors"),
                            PAGE_BUDGET + 30, "the emfile page")[0]
        latency = page.received - first_line
        print(f"\nemfile: first line -> page {latency:.1f} s (budget {PAGE_BUDGET:.0f} s)")
        assert latency <= PAGE_BUDGET
        assert page.receiver == "pager"
        [alert] = page.alerts("MongooseIMEmfileErrors")
        assert alert["labels"] == {
            "alertname": "MongooseIMEmfileErrors", "severity": "critical",
            "job": "mongooseim-agent", "instance": f"127.0.0.1:{agent.port}",
            "cluster": "prod-eu", "pattern": "emfile",
        }
        assert alert["annotations"]["runbook_url"].endswith(RUNBOOKS + "mongooseimemfileerrors")
        assert node.node_name in alert["annotations"]["description"]
        assert page.payload["groupLabels"] == {"cluster": "prod-eu",
                                               "alertname": "MongooseIMEmfileErrors"}

        # 2. Node down: pages, and its listener alert is inhibited rather than sent.
        stopped = time.monotonic()
        node.stop()
        down = wait_for(lambda: sink.notifications("MongooseIMNodeDown"), 120,
                        "the node-down page")[0]
        print(f"node down: stop -> page {time.monotonic() - stopped:.1f} s")
        assert down.receiver == "pager"
        assert down.alerts("MongooseIMNodeDown")[0]["annotations"]["runbook_url"].endswith(
            RUNBOOKS + "mongooseimnodedown")
        for manager in managers:
            wait_for(lambda m=manager: [a for a in m.alerts(alertname="MongooseIMListenerDown")
                                        if a["status"]["inhibitedBy"]],
                     120, "the listener alert to fire and be inhibited")
            # The emfile alert, still inside its 5-minute window, is silenced too.
            [emfile] = manager.alerts(alertname="MongooseIMEmfileErrors")
            assert emfile["status"]["inhibitedBy"], emfile
        for prom in replicas:
            wait_for(lambda p=prom: p.firing("MongooseIMListenerDown"), 10,
                     "both replicas to fire the listener alert")
        print(f"listener down: stop -> inhibited {time.monotonic() - stopped:.1f} s")

        # 3. Restart: the page resolves.
        restarted = time.monotonic()
        node.start()
        wait_for(lambda: sink.notifications("MongooseIMNodeDown", "resolved"), 150,
                 "the node-down resolution")
        print(f"node up: start -> resolved {time.monotonic() - restarted:.1f} s")

        # Every dashboard panel's query runs on the replica without error; those over what
        # this single node exposes return data.
        empty = []
        for expr in dashboard_queries():
            answer = replicas[0].query(expr)
            assert answer["status"] == "success", (expr, answer)
            assert not answer.get("warnings"), (expr, answer)
            if not answer["data"]["result"]:
                assert not promql_metric_names(expr) <= EXPOSED_HERE, f"no data: {expr}"
                empty.append(expr)
        print(f"dashboard: {len(dashboard_queries())} queries ran, {len(empty)} empty here:")
        for expr in empty:
            print(f"  {expr}")

        # Exactly one emfile page from two Prometheus and two Alertmanagers; nothing else
        # paged or ticketed: the listener alert was inhibited throughout.
        deliveries = sink.snapshot()
        assert len(sink.notifications("MongooseIMEmfileErrors")) == 1, deliveries
        sent = {a["labels"]["alertname"] for d in deliveries for a in d.payload["alerts"]}
        assert sent == {"MongooseIMEmfileErrors", "MongooseIMNodeDown"}, deliveries
        assert all("replica" not in a["labels"] for d in deliveries for a in d.payload["alerts"])
    finally:
        for component in reversed(stack):
            component.stop()
        node.stop()
        sink.close()
