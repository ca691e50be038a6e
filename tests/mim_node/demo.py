"""Start or stop the demo cluster for `make demo`: three MongooseIM stand-in nodes in one
mnesia cluster, and the config of the agent that watches the first.

    python -m tests.mim_node.demo start [--state-dir DIR] [--sname NAME] [--nodes N]
    python -m tests.mim_node.demo stop  [--state-dir DIR] [--sname NAME] [--nodes N]
    python -m tests.mim_node.demo status [--state-dir DIR] [--sname NAME] [--nodes N]

Each node looks like a MongooseIM release with its shipped vm.args defaults (+P 10000000,
-env ERL_MAX_PORTS 250000, the default cookie) in DIR/NAME, DIR/NAME2, DIR/NAME3 (default
DIR .demo/ in the repository, NAME mongooseim). The first is started alone; the others join
its cluster the way the operations guide does it, through their own
`mongooseimctl join_cluster`, so all three hold a disc copy of the schema. Try on them:
`mongooseimctl mnesia info` (the node's real mnesia:info()), `leave_cluster`,
`remove_from_cluster NODE`, `status`. Nodes are stopped by the PID in var/mim_node.pid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def main(argv: list[str] | None = None) -> int:
    from tests.support.mimnode import (
        MimNode,
        MimNodeError,
        MimNodeSpec,
        form_cluster,
        free_port,
        start_nodes,
        stop_nodes,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--state-dir", type=Path, default=REPO / ".demo")
    parser.add_argument("--sname", default="mongooseim")
    parser.add_argument("--nodes", type=int, default=3, choices=range(1, 10))
    parser.add_argument("--c2s-port", type=int, default=5222)
    args = parser.parse_args(argv)

    state_dir = args.state_dir.absolute()
    names = [args.sname] + [f"{args.sname}{i}" for i in range(2, args.nodes + 1)]
    nodes: list[MimNode] = []
    all_ports: list[dict[str, int]] = []
    for index, sname in enumerate(names):
        # The first node gets MongooseIM's default listeners; a taken port moves to a free one.
        wanted = {"c2s": args.c2s_port, "s2s": 5269, "http": 5280} if index == 0 else {}
        ports = {name: wanted.get(name, 0) for name in ("c2s", "s2s", "http")}
        if args.command == "start":
            ports = {name: p if p and _port_free(p) else free_port() for name, p in ports.items()}
        all_ports.append(ports)
        spec = MimNodeSpec(
            sname=sname,
            c2s_port=ports["c2s"] or 1,
            s2s_port=ports["s2s"] or None,
            http_port=ports["http"] or None,
            # MongooseIM's shipped default cookie: a demo on loopback, not a secret.
            cookie="mongooseim",
            max_processes=10_000_000,
            erl_max_ports=250_000,
        )
        nodes.append(MimNode(spec, state_dir / sname))
    running = [node for node in nodes if node.attach()]

    if args.command == "status":
        for node in nodes:
            state = f"running, pid {node.pid}" if node in running else "not running"
            print(f"{node.node_name}: {state}")
        if running:
            print(f"running db nodes: {running[0].running_db_nodes()}")
        return 0 if len(running) == len(nodes) else 3
    if args.command == "stop":
        stop_nodes(running)
        for node in running:
            print(f"stopped {node.node_name}")
        if not running:
            print("demo cluster not running")
        return 0

    if running:
        print(f"already running: {', '.join(n.node_name for n in running)} "
              "(stop them first: make demo-stop)")
        return 0
    try:
        start_nodes(nodes, timeout=60)
        form_cluster(nodes)
    except MimNodeError as exc:
        print(f"demo cluster failed to start: {exc}", file=sys.stderr)
        stop_nodes(nodes)
        return 1
    first = nodes[0]
    _write_agent_config(state_dir, first.node_name, all_ports[0],
                        [node.node_name for node in nodes])
    print(f"cluster:      {', '.join(node.node_name for node in nodes)} (mnesia, disc schema)")
    for node in nodes:
        print(f"  {node.node_name:28} pid {node.pid:<8} {node.rel_root}  "
              f"c2s 127.0.0.1:{node.spec.c2s_port}")
    print(f"agent watches {first.node_name}; its listeners: "
          + ", ".join(f"{n} 127.0.0.1:{p}" for n, p in all_ports[0].items()))
    last = nodes[-1]
    print(f"try:          {last.ctl_path} mnesia info")
    print(f"              {last.ctl_path} leave_cluster")
    print(f"              {first.ctl_path} remove_from_cluster {last.node_name}")
    return 0


def _write_agent_config(state_dir: Path, node_name: str, ports: dict[str, int],
                        members: list[str]) -> None:
    """The agent's config for this demo: the first node by name (the others on the machine
    do not make it ambiguous), its real listener ports, every member expected, state under
    the demo dir."""
    from tests.mim_node.faults import DEMO_AGENT_CONFIG  # hook: what demo faults need

    listeners = ", ".join(f'{name} = "127.0.0.1:{port}"' for name, port in ports.items())
    expected = ", ".join(f'"{member}"' for member in members)
    (state_dir / "agent.toml").write_text(
        f'[agent]\nstate_dir = "{state_dir / "state"}"\n\n'
        f'[node]\nname = "{node_name}"\n\n'
        f"[probes]\nlisteners = {{ {listeners} }}\n\n"
        f'[cluster]\ninterval = "5s"\nexpected_members = [{expected}]\n'
        f"min_running_members = {min(2, len(members))}\n"
        + DEMO_AGENT_CONFIG
    )


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    # Run as a script from anywhere: make the repository importable as `tests.support`.
    sys.path.insert(0, str(REPO))
    sys.exit(main())
