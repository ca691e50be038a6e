"""Soak: a healthy 3-node stand-in cluster under the shipped rules for 10 minutes fires nothing.

Three stand-in MongooseIM nodes configured as the operations guide says (nofile 1000000,
ERL_MAX_PORTS 250000, a dist port range, one cookie) form a mnesia cluster; an agent watches
each; a real Prometheus scrapes them (cluster label, 5 s intervals) and evaluates
exporters/prometheus/rules.yml. Every alert seen pending or firing is printed with when.

References printed beside it: the rules' evaluation time against their interval, and, after
the soak, one node stopped: the time MongooseIMNodeDown takes to fire against its `for:`
(30 s), so a quiet soak is shown not to be a deaf one. Prints figures; never fails.

    .venv/bin/python bench/alert_soak.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.agentproc import AgentProcess, parse_metrics
from tests.support.alerting import Prometheus, wait_for
from tests.support.exporters import RULES
from tests.support.mimnode import (
    MimNode,
    MimNodeSpec,
    form_cluster,
    free_port,
    random_cookie,
    start_nodes,
    stop_nodes,
    unique_sname,
)

GUIDE_NOFILE = 1_000_000


def _agent_config(tmp: Path, node: MimNode, index: int) -> Path:
    config = tmp / f"agent{index}.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp / f"state{index}"}"\n'
        f'[node]\nname = "{node.node_name}"\n'
        f'[probes]\ninterval = "5s"\n'
        f'listeners = {{ c2s = "127.0.0.1:{node.spec.c2s_port}" }}\n'
    )
    return config


def _prometheus_config(agents: list[AgentProcess], interval: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(RULES)],
        "scrape_configs": [{
            "job_name": "mongooseim-agent",
            "static_configs": [{"targets": [f"127.0.0.1:{a.port}" for a in agents],
                                "labels": {"cluster": "soak"}}],
        }],
    }


def _alerts(prom: Prometheus) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = prom.query("ALERTS")["data"]["result"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", default="5s", help="scrape and evaluation interval")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="alert-soak-"))
    # The guide's 1000000, or as close as this machine's hard limit lets us go.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = GUIDE_NOFILE if hard == resource.RLIM_INFINITY else min(GUIDE_NOFILE, hard)
    cookie = random_cookie()
    nodes = []
    for index in range(3):
        dist = free_port()
        nodes.append(MimNode(MimNodeSpec(
            sname=unique_sname(f"soak{index}"), c2s_port=free_port(), cookie=cookie,
            nofile=(nofile, nofile), erl_max_ports=250_000,
            dist_range=(dist, dist)), tmp / f"node{index}"))
    agents: list[AgentProcess] = []
    prom: Prometheus | None = None
    try:
        start_nodes(nodes)
        form_cluster(nodes)
        agents = [AgentProcess(_agent_config(tmp, node, i)) for i, node in enumerate(nodes)]
        prom = Prometheus("prometheus", _prometheus_config(agents, args.interval), tmp / "prom")
        wait_for(lambda: len(prom.query('up{job="mongooseim-agent"} == 1')["data"]["result"])
                 == len(agents), 60, "every agent scraped")
        print(f"cluster of {len(nodes)} formed (nofile {nofile}); soaking {args.minutes:g} "
              f"min, scrape/eval every {args.interval}")
        seen: dict[tuple[str, str, str], float] = {}
        start = time.monotonic()
        while time.monotonic() - start < args.minutes * 60:
            for alert in _alerts(prom):
                labels = alert["metric"]
                key = (labels["alertname"], labels["alertstate"], labels.get("instance", ""))
                seen.setdefault(key, time.monotonic() - start)
            time.sleep(5)
        firing = [k for k in seen if k[1] == "firing"]
        pending = [k for k in seen if k[1] == "pending"]
        print(f"alerts firing during the soak: {len(firing)} (healthy target: 0)")
        print(f"alerts pending during the soak: {len(pending)}")
        for (name, state, instance), at in sorted(seen.items(), key=lambda kv: kv[1]):
            print(f"  {at:6.0f} s  {state:8} {name} {instance}")
        with urllib.request.urlopen(prom.url + "/metrics", timeout=10) as response:  # noqa: S310
            own = parse_metrics(response.read().decode())
        for (metric, labels), took in sorted(own.items()):
            if metric != "prometheus_rule_group_last_duration_seconds":
                continue
            group = dict(labels)["rule_group"]
            interval = own[("prometheus_rule_group_interval_seconds", labels)]
            print(f"rule group {group.rpartition(';')[2]}: {took * 1000:.2f} ms per evaluation, "
                  f"{took / interval:.5f} of its {interval:g} s interval")
        samples = prom.query('sum(scrape_samples_scraped{job="mongooseim-agent"})')
        print(f"samples per scrape round: {samples['data']['result'][0]['value'][1]}")

        # Reference: the same pipeline is not deaf. Stop one node; time NodeDown firing.
        stopped = time.monotonic()
        stop_nodes([nodes[-1]])
        wait_for(lambda: [a for a in _alerts(prom) if a["metric"]["alertname"]
                          == "MongooseIMNodeDown" and a["metric"]["alertstate"] == "firing"],
                 180, "MongooseIMNodeDown to fire")
        took = time.monotonic() - stopped
        print(f"reference: one node stopped -> MongooseIMNodeDown firing in {took:.1f} s "
              f"({took / 30:.2f}x its for: 30s, with {args.interval} scrape and evaluation)")
    finally:
        if prom is not None:
            prom.stop()
        for agent in agents:
            agent.stop()
        stop_nodes(nodes)


if __name__ == "__main__":
    main()
