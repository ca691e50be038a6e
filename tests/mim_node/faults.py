"""Cause, and undo, the faults the agent detects, on the running demo (`make demo-fault`).

    python -m tests.mim_node.faults FAULT [--state-dir DIR] [--sname NAME]
    python -m tests.mim_node.faults guide [--listen ADDR]     # what `make demo` prints

FAULT is one of:
  emfile     the demo node runs out of file descriptors for real: its soft nofile is lowered
             (prlimit) just above what it holds and it opens sockets until EMFILE; ranch's
             "out of file descriptors" warnings go to its log first. node_fds and log_emfile
             turn red.               emfile-off: the limit restored, the sockets closed.
  listener   the c2s listener is stopped inside the node (its supervisor child terminated):
             listener_c2s red, /node/ready 503.   listener-off: restarted.
  peer       the second cluster node is stopped (SIGSTOP: its epmd entry stays, it answers
             nothing): cluster checks red.        peer-off: SIGCONT.
  cookie     the node's cookie is changed at runtime (erlang:set_cookie): the agent's
             handshakes are refused, the node logs the rejection.  cookie-off: set back.
  recover    every -off above that applies.

The node is found from its release root (DIR/NAME: etc/vm.args for the name and cookie,
var/mim_node.pid for the pid), as the demo started it. Everything stays on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
WRONG_COOKIE = "demo_wrong_cookie"
FAULTS = ("emfile", "listener", "peer", "cookie")
# Appended to the demo agent's config by demo.py: a log fault's check turns green again a
# minute after its last line (5 minutes by default), so a demo fault visibly recovers.
DEMO_AGENT_CONFIG = '\n[logs]\nmatch_window = "1m"\n'


@dataclass(frozen=True)
class DemoNode:
    rel_root: Path
    name: str
    cookie: str
    pid: int

    @classmethod
    def find(cls, rel_root: Path) -> DemoNode:
        vm_args = rel_root / "etc" / "vm.args"
        flags = {}
        try:
            for line in vm_args.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] in {"-sname", "-name", "-setcookie"}:
                    flags[parts[0]] = parts[1]
            pid = int((rel_root / "var" / "mim_node.pid").read_text().strip())
        except (OSError, ValueError) as exc:
            raise SystemExit(
                f"no demo node in {rel_root} ({exc}): start it with make demo") from None
        sname = flags.get("-sname") or flags.get("-name", "")
        name = sname if "@" in sname else f"{sname}@{socket.gethostname().split('.')[0]}"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise SystemExit(f"demo node {name} (pid {pid}) is not running: make demo") from None
        return cls(rel_root, name, flags.get("-setcookie", "mongooseim"), pid)

    def call(self, expr: str, cookie: str | None = None) -> str:
        """Evaluate `expr` on the node with erl_call; the cookie goes through a private HOME."""
        from tests.support.mimnode import find_otp

        with tempfile.TemporaryDirectory(prefix="demo-fault-") as home:
            cookie_file = Path(home) / ".erlang.cookie"
            cookie_file.write_text(cookie or self.cookie)
            cookie_file.chmod(0o400)
            flag = "-name" if "." in self.name.split("@", 1)[1] else "-sname"
            done = subprocess.run(
                [str(find_otp().erl_call), flag, self.name, "-timeout", "10", "-e"],
                input=f"{expr}.\n", capture_output=True, text=True, timeout=20, check=False,
                env={**os.environ, "HOME": home},
            )
        if done.returncode != 0:
            raise SystemExit(f"{expr} on {self.name} failed: {(done.stdout + done.stderr).strip()}")
        return done.stdout.strip()


def _saved(state: Path) -> dict[str, int]:
    try:
        loaded = json.loads(state.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def emfile(node: DemoNode, state: Path) -> str:
    soft, hard = resource.prlimit(node.pid, resource.RLIMIT_NOFILE)
    saved = _saved(state)
    saved.setdefault("soft", soft)
    state.write_text(json.dumps(saved))
    node.call("mim_hooks:log_emfile_storm(50)")
    held = len(os.listdir(f"/proc/{node.pid}/fd"))
    resource.prlimit(node.pid, resource.RLIMIT_NOFILE, (held + 40, hard))
    reply = node.call("mim_hooks:open_fds(1000)")
    return (f"{node.name}: soft nofile lowered from {saved['soft']} to {held + 40}, then "
            f"filled ({reply}); 50 ranch emfile warnings logged")


def emfile_off(node: DemoNode, state: Path) -> str:
    saved = _saved(state)
    if "soft" not in saved:
        return "emfile: not caused by this tool, nothing to undo"
    _, hard = resource.prlimit(node.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(node.pid, resource.RLIMIT_NOFILE, (saved["soft"], hard))
    reply = node.call("mim_hooks:close_fds()")
    state.unlink()
    return (f"{node.name}: soft nofile back to {saved['soft']}, sockets closed ({reply}); "
            "log_emfile stays red for [logs] match_window (1 minute in the demo) after the "
            "last emfile line, by design")


def listener(node: DemoNode) -> str:
    reply = node.call("supervisor:terminate_child(mim_node_sup, {listener, c2s})")
    return f"{node.name}: c2s listener stopped ({reply})"


def listener_off(node: DemoNode) -> str:
    reply = node.call("supervisor:restart_child(mim_node_sup, {listener, c2s})")
    return f"{node.name}: c2s listener restarted ({reply})"


def _peer(state_dir: Path, sname: str) -> DemoNode | None:
    for candidate in (state_dir / f"{sname}2", state_dir / f"{sname}-2"):
        if (candidate / "etc" / "vm.args").exists():
            return DemoNode.find(candidate)
    return None


def peer(state_dir: Path, sname: str, resume: bool) -> str:
    other = _peer(state_dir, sname)
    if other is None:
        return "peer: this demo runs no second cluster node"
    os.kill(other.pid, signal.SIGCONT if resume else signal.SIGSTOP)
    return f"{other.name} (pid {other.pid}) " + ("resumed" if resume else "stopped (SIGSTOP)")


def cookie(node: DemoNode) -> str:
    # Connections made with the old cookie stay up: drop the hidden ones (the agent's) a
    # moment after this call has returned, so they must handshake again.
    node.call(f"erlang:set_cookie(node(), '{WRONG_COOKIE}'), spawn(fun() -> timer:sleep(200), "
              "[erlang:disconnect_node(N) || N <- nodes(hidden)] end), ok")
    return f"{node.name}: cookie changed; the agent's handshakes are now refused"


def cookie_off(node: DemoNode) -> str:
    try:
        node.call(f"erlang:set_cookie(node(), '{node.cookie}')", cookie=WRONG_COOKIE)
    except SystemExit:
        return "cookie: not changed by this tool, nothing to undo"
    return f"{node.name}: cookie set back"


def guide(listen: str) -> str:
    url = f"http://{listen}/"
    cli = "  .venv/bin/mongooseim-agent --config .demo/agent.toml"
    return f"""
What to do next (in another terminal, from this directory):
  open {url}  (the landing page; it refreshes itself)
{cli} check            # the same checks as a Nagios/Icinga plugin
{cli} check --only node_fds
{cli} drain --reason "kernel upgrade"    # {url}node/ready answers 503
{cli} undrain
Cause a fault and watch the page turn red within seconds, then recover:
  make demo-fault FAULT=emfile      # the node runs out of file descriptors
  make demo-fault FAULT=listener    # the c2s listener stops
  make demo-fault FAULT=peer        # a cluster peer stops answering
  make demo-fault FAULT=cookie      # the node's cookie changes: handshakes refused
  make demo-fault FAULT=emfile-off  # (or listener-off, peer-off, cookie-off)
  make demo-recover                 # undo them all
"""


def main(argv: list[str] | None = None) -> int:
    choices = [*FAULTS, *(f"{f}-off" for f in FAULTS), "recover", "guide"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fault", choices=choices, metavar="FAULT", help=", ".join(choices))
    parser.add_argument("--state-dir", type=Path, default=REPO / ".demo")
    parser.add_argument("--sname", default="mongooseim")
    parser.add_argument("--listen", default="127.0.0.1:9925")
    args = parser.parse_args(argv)
    if args.fault == "guide":
        print(guide(args.listen))
        return 0
    state_dir = args.state_dir.absolute()
    # DIR/NAME as the cluster demo lays nodes out; DIR/mongooseim as the single-node one did.
    roots = [state_dir / args.sname, state_dir / "mongooseim"]
    node = DemoNode.find(next((r for r in roots if (r / "etc" / "vm.args").exists()), roots[0]))
    state = state_dir / "fault-emfile.json"
    actions = {
        "emfile": lambda: emfile(node, state),
        "emfile-off": lambda: emfile_off(node, state),
        "listener": lambda: listener(node),
        "listener-off": lambda: listener_off(node),
        "peer": lambda: peer(state_dir, args.sname, resume=False),
        "peer-off": lambda: peer(state_dir, args.sname, resume=True),
        "cookie": lambda: cookie(node),
        "cookie-off": lambda: cookie_off(node),
    }
    # The cookie first: with a changed cookie no other undo can reach the node.
    undo = ["cookie-off", "emfile-off", "listener-off", "peer-off"]
    wanted = undo if args.fault == "recover" else [args.fault]
    for name in wanted:
        print(actions[name]())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
