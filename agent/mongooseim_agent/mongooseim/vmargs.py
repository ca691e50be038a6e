"""Pure parsers for the Erlang VM's arguments: beam.smp's argv and a release's vm.args file.

Facts relied on (checked on OTP 25): erlexec turns `+P N` into `-P N` before the first `--`
of beam's argv, expands `-args_file` in place, and consumes `-env NAME VALUE` into the
environment, so ERL_MAX_PORTS never appears in argv.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath


@dataclass(frozen=True, slots=True)
class VmArgs:
    sname: str | None = None
    name: str | None = None
    cookie: str | None = field(default=None, repr=False)
    hidden: bool = False
    max_ports: int | None = None  # +Q
    max_processes: int | None = None  # +P
    dist_port_min: int | None = None
    dist_port_max: int | None = None
    env: dict[str, str] = field(default_factory=dict)  # -env pairs (vm.args only)
    progname: str | None = None
    root: str | None = None
    boot: str | None = None
    config: tuple[str, ...] = ()
    args_file: str | None = None

    @property
    def node_name(self) -> str | None:
        return self.name if self.name is not None else self.sname

    @property
    def longnames(self) -> bool:
        return self.name is not None

    @property
    def dist_port_range(self) -> tuple[int, int] | None:
        if self.dist_port_min is None:
            return None
        upper = self.dist_port_max if self.dist_port_max is not None else self.dist_port_min
        return (self.dist_port_min, upper)


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{what}: not an integer: {value!r}") from None


def _group_flags(tokens: list[str]) -> list[tuple[str, list[str]]]:
    """Group `-flag v1 v2 -other ...` into (flag, values); `+X` flags are their own group."""
    groups: list[tuple[str, list[str]]] = []
    for token in tokens:
        if token == "--":
            continue
        if (token.startswith(("-", "+"))) and len(token) > 1:
            groups.append((token, []))
        elif groups:
            groups[-1][1].append(token)
    return groups


def _apply(groups: list[tuple[str, list[str]]], emulator: bool) -> dict[str, object]:
    out: dict[str, object] = {}
    configs: list[str] = []
    env: dict[str, str] = {}
    for flag, values in groups:
        first = values[0] if values else None
        # In beam's argv the emulator section spells +P as -P; in vm.args it is +P.
        plus = flag.startswith("+") or emulator
        letter = flag[1:]
        if plus and letter == "P" and first is not None:
            out["max_processes"] = _int(first, "+P")
        elif plus and letter == "Q" and first is not None:
            out["max_ports"] = _int(first, "+Q")
        elif emulator:
            continue
        elif flag == "-sname" and first is not None:
            out["sname"] = first
        elif flag == "-name" and first is not None:
            out["name"] = first
        elif flag == "-setcookie" and first is not None:
            out["cookie"] = first
        elif flag == "-hidden":
            out["hidden"] = True
        elif flag == "-progname" and first is not None:
            out["progname"] = first
        elif flag == "-root" and first is not None:
            out["root"] = first
        elif flag == "-boot" and first is not None:
            out["boot"] = first
        elif flag == "-config":
            configs.extend(values)
        elif flag == "-args_file" and first is not None:
            out["args_file"] = first
        elif flag == "-env" and len(values) >= 2:
            env[values[0]] = values[1]
        elif flag == "-kernel":
            for key, value in zip(values[::2], values[1::2], strict=False):
                if key == "inet_dist_listen_min":
                    out["dist_port_min"] = _int(value, "inet_dist_listen_min")
                elif key == "inet_dist_listen_max":
                    out["dist_port_max"] = _int(value, "inet_dist_listen_max")
    out["config"] = tuple(configs)
    out["env"] = env
    return out


def parse_beam_argv(argv: list[str]) -> VmArgs:
    """Parse beam.smp's argv (from /proc/PID/cmdline); argv[0] is the executable."""
    args = argv[1:]
    split = args.index("--") if "--" in args else len(args)
    fields = _apply(_group_flags(args[:split]), emulator=True)
    fields.update(
        {k: v for k, v in _apply(_group_flags(args[split:]), emulator=False).items() if v}
    )
    return VmArgs(**fields)  # type: ignore[arg-type]


def parse_vm_args_file(text: str) -> VmArgs:
    """Parse a release's vm.args: one or more flags a line, `#` comments."""
    tokens: list[str] = []
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        try:
            tokens.extend(shlex.split(stripped))
        except ValueError:
            tokens.extend(stripped.split())
    return VmArgs(**_apply(_group_flags(tokens), emulator=False))  # type: ignore[arg-type]


def release_root_from_args(args: VmArgs) -> PurePosixPath | None:
    """REL_ROOT as relx's start script reveals it: `-boot REL/releases/VSN/start`, or
    `-config REL/etc/app.config`; None when the argv does not say."""
    if args.boot:
        boot = PurePosixPath(args.boot)
        for parent in boot.parents:
            if parent.name == "releases":
                return parent.parent
    for config in args.config:
        path = PurePosixPath(config)
        if path.parent.name == "etc":
            return path.parent.parent
    if args.args_file:
        path = PurePosixPath(args.args_file)
        if path.parent.name == "etc":
            return path.parent.parent
    return None
