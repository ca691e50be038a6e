"""Start or stop the demo MongooseIM stand-in node for `make demo`.

    python tests/mim_node/demo.py start [--state-dir DIR]   # prints node, pid, release root, c2s
    python tests/mim_node/demo.py stop  [--state-dir DIR]   # by the PID in var/mim_node.pid
    python tests/mim_node/demo.py status [--state-dir DIR]

The node looks like a MongooseIM release with its shipped vm.args defaults (-sname
mongooseim, +P 10000000, -env ERL_MAX_PORTS 250000) and lives in DIR/mongooseim (default:
.demo/ in the repository), so the agent finds it with no configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def main(argv: list[str] | None = None) -> int:
    from tests.support.mimnode import MimNode, MimNodeError, MimNodeSpec, free_port

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--state-dir", type=Path, default=REPO / ".demo")
    parser.add_argument("--sname", default="mongooseim")
    parser.add_argument("--c2s-port", type=int, default=5222)
    args = parser.parse_args(argv)

    rel_root = args.state_dir.absolute() / "mongooseim"
    # MongooseIM's default listeners; a taken port moves to a free one.
    ports = {"c2s": args.c2s_port, "s2s": 5269, "http": 5280}
    if args.command == "start":
        ports = {name: p if _port_free(p) else free_port() for name, p in ports.items()}
    spec = MimNodeSpec(
        sname=args.sname,
        c2s_port=ports["c2s"],
        s2s_port=ports["s2s"],
        http_port=ports["http"],
        # MongooseIM's shipped default cookie: this is a demo on loopback, not a secret.
        cookie="mongooseim",
        max_processes=10_000_000,
        erl_max_ports=250_000,
    )
    node = MimNode(spec, rel_root)
    running = node.attach()

    if args.command == "status":
        print(f"running: {node.node_name} pid {node.pid}" if running else "not running")
        return 0 if running else 3
    if args.command == "stop":
        if running:
            node.stop()
            print(f"stopped {node.node_name}")
        else:
            print("demo node not running")
        return 0

    if running:
        print(f"already running: {node.node_name} pid {node.pid}")
        return 0
    try:
        node.start()
    except MimNodeError as exc:
        print(f"demo node failed to start: {exc}", file=sys.stderr)
        return 1
    _write_agent_config(args.state_dir.absolute(), node.node_name, ports)
    print(f"node:         {node.node_name}")
    print(f"pid:          {node.pid}")
    print(f"release root: {node.rel_root}")
    print("listeners:    " + ", ".join(f"{n} 127.0.0.1:{p}" for n, p in ports.items()))
    print(f"logs:         {node.log_dir}/mongooseim.log.N")
    print(f"ctl:          {node.ctl_path} status")
    return 0


def _write_agent_config(state_dir: Path, node_name: str, ports: dict[str, int]) -> None:
    """The agent's config for this demo: the node by name (other Erlang nodes on the machine
    do not make it ambiguous), its real listener ports, state under the demo dir."""
    from tests.mim_node.faults import DEMO_AGENT_CONFIG  # hook: what demo faults need

    listeners = ", ".join(f'{name} = "127.0.0.1:{port}"' for name, port in ports.items())
    (state_dir / "agent.toml").write_text(
        f'[agent]\nstate_dir = "{state_dir / "state"}"\n\n'
        f'[node]\nname = "{node_name}"\n\n'
        f"[probes]\nlisteners = {{ {listeners} }}\n"
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
