"""The nine verdicts, as pure functions of facts gathered elsewhere (files under a root, the
live node). Each returns a Finding whose texts name what was seen and where, never a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mongooseim_agent.mongooseim.audit.findings import (
    MIN_EPHEMERAL_PORTS,
    VM_DEFAULT_PORTS,
    Finding,
    Targets,
    Verdict,
    by_size,
    show_limit,
    skipped,
    worst,
)
from mongooseim_agent.mongooseim.audit.limits import LimitRule, Resolved
from mongooseim_agent.mongooseim.audit.sockets import Listener
from mongooseim_agent.mongooseim.audit.systemd import RLimit

LIVE_ONLY = "a live check, and --root audits files only"

WHY = {
    "nofile": "each XMPP connection holds about one file descriptor; at the limit accept() "
    "fails with emfile, clients are refused and the log fills with 'Ranch acceptor reducing "
    "accept rate: out of file descriptors'",
    "nofile_source": "only the process's own limit counts: limits.conf is applied by "
    "pam_limits to login sessions, never to systemd services (those get LimitNOFILE=), so "
    "`ulimit -n` in a shell can look right while the service still has 1024",
    "erl_max_ports": "every socket and file is also an Erlang port; whichever of the port "
    "table and nofile is lower caps connections first, and the port table is preallocated "
    "memory",
    "node_name": "peers and mongooseimctl reach the node by the host part of its name, so it "
    "must resolve on every node of the cluster",
    "dist_port_range": "without inet_dist_listen_min/max the distribution port is random and "
    "a firewall between nodes must open every port; the range must fit every node",
    "epmd": "nodes find each other's distribution port through epmd on 4369; epmd and the "
    "distribution port open on all interfaces expose code execution to whoever has the cookie",
    "cookie": "the cookie is the only thing between the network and arbitrary code execution "
    "on every node; the release default is known to everyone",
    "kernel_limits": "no process gets more than fs.nr_open fds (a larger limits.conf or "
    "LimitNOFILE value silently fails), the host's total is fs.file-max, and outgoing s2s "
    "and database connections draw local ports from ip_local_port_range",
    "cluster": "a stopped db node is a member this node cannot replicate to; an expected "
    "member missing is a node that never joined or was removed",
}


def _value(value: int | None, nr_open: int | None) -> int | None:
    """An unlimited nofile is what the kernel allows: fs.nr_open."""
    return nr_open if value is None else value


# -- nofile -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PamStatus:
    # Which layout's files were looked at: "Debian/Ubuntu", "RHEL" or None (neither found).
    layout: str | None
    # path -> "path:line" of its pam_limits.so line, or None when it has none.
    files: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def applies(self) -> bool:
        return bool(self.files) and all(v is not None for v in self.files.values())

    @property
    def missing_in(self) -> list[str]:
        return [path for path, line in self.files.items() if line is None]


@dataclass(frozen=True, slots=True)
class NofileSource:
    """Where a restart of the node gets its nofile from, as the files say."""

    user: str | None
    # True: the node runs in (or, for an image, is installed as) a systemd service.
    # False: it runs outside one. None: not known.
    under_systemd: bool | None
    unit: str | None
    unit_path: str | None = None
    unit_limit: RLimit | None = None
    unit_limit_where: str | None = None
    default_limit: RLimit = field(default_factory=lambda: RLimit(1024, 524288))
    default_where: str = "systemd's built-in default"
    limits: Resolved = field(default_factory=lambda: Resolved(None, None))
    pam: PamStatus = field(default_factory=lambda: PamStatus(None))
    problems: tuple[str, ...] = ()
    # The unit file is a link to /dev/null: systemd will not start it.
    unit_masked: bool = False

    def restart_value(self) -> tuple[int | None, int | None, str] | None:
        """(soft, hard, where) a restart gives, None when nothing configured says."""
        if self.under_systemd:
            if self.unit_limit is not None:
                where = self.unit_limit_where or str(self.unit_path)
                return self.unit_limit.soft, self.unit_limit.hard, f"LimitNOFILE= in {where}"
            return (self.default_limit.soft, self.default_limit.hard,
                    f"DefaultLimitNOFILE ({self.default_where})")
        if self.limits.is_set and self.pam.applies:
            soft, hard = self.limits.soft, self.limits.hard
            rule = soft or hard
            where = rule.where if rule is not None else "?"
            return (_rule_value(soft, hard), _rule_value(hard, soft), f"limits.conf {where}")
        return None


def _rule_value(rule: LimitRule | None, other: LimitRule | None) -> int | None:
    chosen = rule or other
    return chosen.value if chosen is not None else None


def nofile_fix(source: NofileSource, recommended: int) -> str:
    unit = source.unit or "mongooseim.service"
    systemd_fix = (f"run `systemctl edit {unit}`, add `[Service]` and "
                   f"`LimitNOFILE={recommended}`, then `systemctl restart {unit}`")
    user = source.user or "mongooseim"
    rule = source.limits.soft or source.limits.hard
    change = f" (replacing {rule.where}: '{rule.text}')" if rule is not None else ""
    pam_fix = (f"set `{user} soft nofile {recommended}` and `{user} hard nofile {recommended}` "
               f"in /etc/security/limits.d/mongooseim.conf{change}, keep pam_limits.so in the "
               "session stack, and restart the node from a new login session")
    if source.under_systemd:
        return systemd_fix
    if source.under_systemd is None:
        return f"under systemd: {systemd_fix}; otherwise {pam_fix}"
    return pam_fix


def check_nofile(
    running: tuple[int | None, int | None] | None,
    *,
    live: bool,
    absent_reason: str | None,
    targets: Targets,
    source: NofileSource,
) -> Finding:
    if not live:
        return skipped("nofile", f"{LIVE_ONLY}; nofile_source judges what the files give",
                       WHY["nofile"])
    if running is None:
        return skipped("nofile", absent_reason or "the node's limit is not known",
                       WHY["nofile"])
    soft, hard = running
    recommended = targets.nofile_recommended
    status = by_size(soft, recommended, targets.connections_needed)
    observed = f"soft {show_limit(soft)}, hard {show_limit(hard)} (the running node's own limit)"
    if status is Verdict.FAIL:
        observed += f": below {targets.connections_needed} connections"
    return Finding(
        "nofile", status, observed,
        f"at least {recommended} soft and hard ({targets.load})",
        WHY["nofile"],
        "" if status is Verdict.PASS else nofile_fix(source, recommended),
        observed_value=float(soft) if soft is not None else None,
        recommended_value=float(recommended),
    )


def check_nofile_source(
    source: NofileSource,
    running: tuple[int | None, int | None] | None,
    *,
    live: bool,
    targets: Targets,
    nr_open: int | None,
) -> Finding:
    recommended = targets.nofile_recommended
    notes: list[str] = []
    status = Verdict.PASS
    fix = ""
    user = source.user or "the service user"
    unit = source.unit or "the service"
    rule = source.limits.soft or source.limits.hard
    restart = source.restart_value()
    running_soft = running[0] if running is not None else None
    if source.under_systemd:
        if source.unit_limit is not None:
            notes.append(f"{unit}: LimitNOFILE={source.unit_limit} "
                         f"({source.unit_limit_where})")
            if running is not None and running_soft != source.unit_limit.soft:
                status = Verdict.WARN
                notes.append(f"the running node has soft {show_limit(running_soft)}, so a "
                             "restart will change it")
                fix = (f"restart {unit} (systemctl daemon-reload && systemctl restart {unit}) "
                       "if LimitNOFILE= is what you want, else correct it")
        elif rule is not None:
            status = Verdict.FAIL
            notes.append(
                f"the trap: limits.conf sets '{rule.text}' ({rule.where}) but the node runs "
                f"under systemd ({unit}) with no LimitNOFILE=, where pam_limits never "
                f"applies: it gets DefaultLimitNOFILE={source.default_limit} "
                f"({source.default_where})")
            fix = nofile_fix(source, max(recommended, rule.value or 0))
        else:
            notes.append(f"nothing sets LimitNOFILE= for {unit}: it gets "
                         f"DefaultLimitNOFILE={source.default_limit} ({source.default_where})")
            default_soft = source.default_limit.soft
            if default_soft is not None and default_soft < recommended:
                status = Verdict.WARN
                fix = nofile_fix(source, recommended)
    else:
        if source.under_systemd is False:
            notes.append("the node runs outside systemd, so limits.conf applies through "
                         "pam_limits when it is started from a login session")
            if source.unit_path is not None:
                notes.append(f"{source.unit_path} exists, but the node was not started by it")
        elif source.unit_masked:
            notes.append(f"{source.unit_path} is masked (a link to /dev/null): systemd will "
                         "not start the node")
        elif source.unit is None:
            notes.append("no systemd unit for the node was found")
        if rule is not None:
            notes.append(f"limits.conf: '{rule.text}' ({rule.where})")
            if not source.pam.applies:
                status = Verdict.FAIL
                where = ", ".join(source.pam.missing_in) or "any PAM session file"
                notes.append(f"pam_limits.so is not in {where}: limits.conf is never applied")
                fix = ("add `session required pam_limits.so` to "
                       + (", ".join(source.pam.missing_in) or
                          "/etc/pam.d/common-session (Debian) or /etc/pam.d/system-auth (RHEL)"))
            elif running is not None and restart is not None and running_soft != restart[0]:
                status = Verdict.WARN
                notes.append(f"the running node has soft {show_limit(running_soft)}, not the "
                             f"{show_limit(restart[0])} a new session of {user} gets")
                fix = "restart the node from a new login session of " + user
        else:
            status = Verdict.WARN
            inherited = (f"it has soft {show_limit(running_soft)} from whatever started it"
                         if running is not None else "it inherits whatever its starter has")
            notes.append(f"nothing configures nofile for {user}: {inherited}, and a restart "
                         "from another shell may get 1024")
            fix = nofile_fix(source, recommended)
    if source.problems:
        status = worst(status, Verdict.WARN)
        notes.append("could not read: " + "; ".join(source.problems))
    if not live and restart is not None:
        # Nothing runs in an image: how big the configured value is, is judged here.
        size = by_size(_value(restart[0], nr_open), recommended, targets.connections_needed)
        if size is not Verdict.PASS:
            status = worst(status, size)
            notes.append(f"a start gets soft {show_limit(restart[0])} from {restart[2]}, "
                         f"below the recommended {recommended}")
            fix = fix or nofile_fix(source, recommended)
    observed_value = None
    if restart is not None:
        value = _value(restart[0], nr_open)
        observed_value = float(value) if value is not None else None
    after = (f"after a restart: soft {show_limit(restart[0])} from {restart[2]}"
             if restart is not None else "after a restart: not determined by any file")
    return Finding(
        "nofile_source", status, "; ".join([*notes, after]),
        f"nofile {recommended} set where the node's start applies it: LimitNOFILE= under "
        "systemd, limits.conf with pam_limits.so otherwise",
        WHY["nofile_source"], fix,
        observed_value=observed_value, recommended_value=float(recommended),
    )


# -- erl_max_ports ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortMemory:
    """`erlang:memory(system)` at the configured port table and at a small one."""

    ports: int
    bytes_at_ports: int
    baseline_ports: int
    bytes_at_baseline: int

    @property
    def cost_bytes(self) -> int:
        return self.bytes_at_ports - self.bytes_at_baseline


@dataclass(frozen=True, slots=True)
class PortsFacts:
    configured: int | None
    source: str | None
    # erlang:system_info(port_limit) from the live node (ERTS rounds up to a power of two).
    live_limit: int | None
    nofile_soft: int | None
    nofile_where: str | None
    known: bool
    memory: PortMemory | None = None
    memory_note: str | None = None
    unknown_reason: str = "neither a running node nor REL_ROOT/etc/vm.args was found"


def check_erl_max_ports(facts: PortsFacts, targets: Targets) -> Finding:
    if not facts.known:
        return skipped("erl_max_ports", facts.unknown_reason, WHY["erl_max_ports"])
    recommended = targets.ports_recommended
    value = facts.configured if facts.configured is not None else VM_DEFAULT_PORTS
    status = by_size(value, recommended, targets.connections_needed)
    if facts.configured is not None:
        notes = [f"{facts.configured} from {facts.source}"]
    else:
        notes = [f"neither ERL_MAX_PORTS nor +Q is set: the VM's default {VM_DEFAULT_PORTS}"]
    if facts.live_limit is not None:
        notes.append(f"live port_limit {facts.live_limit}")
    fix = ""
    if facts.nofile_soft is not None:
        if facts.nofile_soft < value:
            notes.append(f"nofile ({facts.nofile_soft}, {facts.nofile_where}) caps "
                         f"connections first: fds run out long before ports ({value})")
        else:
            notes.append(f"the port table ({value}) caps connections before nofile "
                         f"({show_limit(facts.nofile_soft)})")
    if facts.memory is not None:
        m = facts.memory
        notes.append(f"the port table costs {m.cost_bytes / 2**20:.1f} MiB of system memory "
                     f"(erlang:memory(system) {m.bytes_at_ports} at ERL_MAX_PORTS={m.ports}, "
                     f"{m.bytes_at_baseline} at {m.baseline_ports}, measured with erl)")
    elif facts.memory_note:
        notes.append(facts.memory_note)
    if status is not Verdict.PASS:
        fix = (f"set `-env ERL_MAX_PORTS {recommended}` in "
               "REL_ROOT/etc/vm.args (a +Q there overrides it), then restart the node")
    tls = {True: "with TLS", False: "without TLS", None: "TLS not known: 350000 with TLS"}
    return Finding(
        "erl_max_ports", status, "; ".join(notes),
        f"at least {recommended} ({tls[targets.tls]}, {targets.load})",
        WHY["erl_max_ports"], fix,
        observed_value=float(value), recommended_value=float(recommended),
    )


# -- node_name --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    addresses: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.addresses)

    @property
    def loopback_only(self) -> bool:
        return self.ok and all(a.startswith("127.") or a == "::1" for a in self.addresses)


@dataclass(frozen=True, slots=True)
class NameFacts:
    name: str | None
    source: str
    # None: resolution not checked (an image).
    own: Resolution | None
    peers: Mapping[str, Resolution] = field(default_factory=dict)
    known: bool = True


def check_node_name(facts: NameFacts) -> Finding:
    why = WHY["node_name"]
    if not facts.known:
        return skipped("node_name", "neither a running node nor REL_ROOT/etc/vm.args was "
                       "found", why)
    if facts.name is None:
        return Finding("node_name", Verdict.FAIL, f"no -sname or -name ({facts.source})",
                       "-sname NAME@HOST with a host every node resolves", why,
                       "add `-sname mongooseim@$(hostname -s)` to REL_ROOT/etc/vm.args")
    host = facts.name.partition("@")[2]
    notes = [f"{facts.name} ({facts.source})"]
    status = Verdict.PASS
    fixes: list[str] = []
    if facts.own is None:
        notes.append("resolution not checked: a live check")
    elif not facts.own.ok:
        status = Verdict.FAIL
        notes.append(f"{host} does not resolve here: {facts.own.error}")
        fixes.append(f"make {host} resolve on every node (DNS or /etc/hosts)")
    else:
        notes.append(f"{host} resolves to {', '.join(facts.own.addresses)}")
        if facts.peers and facts.own.loopback_only:
            status = Verdict.WARN
            notes.append("loopback only, so peers cannot reach it")
            fixes.append(f"name the node after a host name peers resolve, not {host}")
    bad = {peer: r for peer, r in facts.peers.items() if not r.ok}
    if bad:
        status = Verdict.FAIL
        notes.append("peers not resolvable here: " + ", ".join(
            f"{peer} ({r.error})" for peer, r in sorted(bad.items())))
        fixes.append("make each peer's host resolve here (DNS or /etc/hosts)")
    elif facts.peers:
        notes.append(f"{len(facts.peers)} peers resolve")
    return Finding("node_name", status, "; ".join(notes),
                   "-sname/-name set; its host and every peer's resolve on every node",
                   why, "; ".join(fixes))


# -- dist_port_range --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DistFacts:
    port_range: tuple[int, int] | None
    source: str
    dist_port: int | None
    cluster_size: int
    live: bool
    known: bool = True


def check_dist_port_range(facts: DistFacts) -> Finding:
    why = WHY["dist_port_range"]
    if not facts.known:
        return skipped("dist_port_range", "neither a running node nor REL_ROOT/etc/vm.args "
                       "was found", why)
    size = max(1, facts.cluster_size)
    ports = "port" if size == 1 else "ports"
    recommended = f"inet_dist_listen_min/max set, at least {size} {ports} wide (the cluster's size)"
    example = "add `-kernel inet_dist_listen_min 50000 inet_dist_listen_max 50010` to " \
              "REL_ROOT/etc/vm.args on every node and open that range between them"
    port = f"; the node listens on {facts.dist_port}" if facts.dist_port is not None else ""
    if facts.port_range is None:
        return Finding("dist_port_range", Verdict.WARN,
                       f"not set ({facts.source}): a random port{port}", recommended, why,
                       example, recommended_value=float(size))
    low, high = facts.port_range
    if low > high:
        return Finding("dist_port_range", Verdict.FAIL,
                       f"inet_dist_listen_min {low} above inet_dist_listen_max {high}",
                       recommended, why, example, recommended_value=float(size))
    width = high - low + 1
    notes = [f"{low}..{high} ({width} port{'' if width == 1 else 's'}, {facts.source})"]
    status = Verdict.PASS
    fix = ""
    if width < size:
        status = Verdict.WARN
        notes.append(f"narrower than the cluster's {size} nodes")
        fix = f"widen the range to at least {size} ports"
    if facts.dist_port is not None:
        if low <= facts.dist_port <= high:
            notes.append(f"the node listens on {facts.dist_port}, inside it")
        else:
            status = Verdict.FAIL
            notes.append(f"the node listens on {facts.dist_port}, OUTSIDE it")
            fix = ("the node did not get the range: check the -kernel arguments in vm.args "
                   "and restart it")
    elif facts.live:
        notes.append("the node's port is not known (not registered in epmd)")
    return Finding("dist_port_range", status, "; ".join(notes), recommended, why, fix,
                   observed_value=float(width), recommended_value=float(size))


# -- epmd -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EpmdFacts:
    live: bool
    address: str
    error: str | None
    registered: bool | None
    listeners: Sequence[Listener] | None
    epmd_port: int
    dist_port: int | None
    port_range: tuple[int, int] | None


def check_epmd(facts: EpmdFacts) -> Finding:
    why = WHY["epmd"]
    if not facts.live:
        return skipped("epmd", LIVE_ONLY, why)
    recommended = (f"epmd answering on {facts.epmd_port}; bound to the cluster network or "
                   "firewalled, with a distribution port range")
    if facts.error is not None:
        return Finding("epmd", Verdict.FAIL, f"epmd at {facts.address} does not answer: "
                       f"{facts.error}", recommended, why,
                       "start epmd (`epmd -daemon`, or the epmd.socket unit), restart the node "
                       "so it registers, and keep 4369 open between nodes")
    notes = [f"epmd answers at {facts.address}"]
    status = Verdict.PASS
    fix = ""
    if facts.registered is False:
        notes.append("the node is not registered in it (epmd restarted under the node?)")
        status = Verdict.FAIL
        fix = "restart the node so it registers with epmd again"
    if facts.listeners is not None:
        exposed = []
        if any(item.port == facts.epmd_port and item.all_interfaces
               for item in facts.listeners):
            exposed.append(f"epmd ({facts.epmd_port})")
        if facts.dist_port is not None and any(
            item.port == facts.dist_port and item.all_interfaces for item in facts.listeners
        ):
            exposed.append(f"the distribution port ({facts.dist_port})")
        if exposed:
            notes.append(" and ".join(exposed) + " listen on all interfaces")
            if facts.port_range is None:
                status = worst(status, Verdict.WARN)
                notes.append("with no port range configured, so no firewall rule can "
                             "narrow what is exposed")
                fix = fix or (
                    "set `-kernel inet_dist_listen_min A inet_dist_listen_max B` and allow "
                    "4369 and A..B only from cluster peers (or bind epmd with "
                    "ERL_EPMD_ADDRESS and the node with -kernel inet_dist_use_interface)")
        else:
            notes.append("not listening on all interfaces")
    return Finding("epmd", status, "; ".join(notes), recommended, why, fix)


# -- cookie -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileFacts:
    path: str
    mode: int
    uid: int
    owner: str


@dataclass(frozen=True, slots=True)
class CookieFacts:
    # "-setcookie (command line)", "-setcookie in PATH", "PATH", or None: none found.
    source: str | None
    is_default: bool | None
    unreadable: str | None = None
    cookie_file: FileFacts | None = None
    # The file holding -setcookie (vm.args), when the cookie comes from there.
    args_file: FileFacts | None = None
    service_user: str | None = None
    service_uid: int | None = None
    rejected_by: tuple[str, ...] = ()
    accepted_by: tuple[str, ...] = ()
    unchecked: Mapping[str, str] = field(default_factory=dict)
    peers_checked: bool = False
    peers_note: str | None = None


def check_cookie(facts: CookieFacts) -> Finding:
    why = WHY["cookie"]
    user = facts.service_user or "the service user"
    recommended = (f"a random cookie, the same on every node, in ~{user}/.erlang.cookie "
                   f"(mode 0400, owned by {user}) or -setcookie in a vm.args only {user} reads")
    new_cookie = ("generate a random one (`openssl rand -hex 32`), install it on every node "
                  f"(~{user}/.erlang.cookie mode 0400, or -setcookie in vm.args) and restart "
                  "the nodes together")
    if facts.source is None:
        return Finding("cookie", Verdict.FAIL, "no cookie found (no -setcookie, no "
                       f"~{user}/.erlang.cookie)" + (f": {facts.unreadable}"
                                                     if facts.unreadable else ""),
                       recommended, why, new_cookie)
    notes = [f"set by {facts.source} (value not shown)"]
    status = Verdict.PASS
    fixes: list[str] = []
    if facts.is_default:
        status = Verdict.FAIL
        notes.append("it is MongooseIM's release default, which everyone knows")
        fixes.append(new_cookie)
    elif facts.is_default is None:
        notes.append(f"could not read it to compare with the default: {facts.unreadable}")
        status = Verdict.WARN
        fixes.append("run the audit as root or as the service user")
    cookie_file = facts.cookie_file
    if cookie_file is not None:
        mode = cookie_file.mode & 0o777
        notes.append(f"{cookie_file.path} mode {mode:04o}, owner {cookie_file.owner}")
        if mode & 0o077:
            status = Verdict.FAIL
            fixes.append(f"chmod 0400 {cookie_file.path}")
        elif mode != 0o400:
            status = worst(status, Verdict.WARN)
            fixes.append(f"chmod 0400 {cookie_file.path}")
        if facts.service_uid is not None and cookie_file.uid != facts.service_uid:
            status = Verdict.FAIL
            fixes.append(f"chown {user} {cookie_file.path}")
    args_file = facts.args_file
    if args_file is not None and args_file.mode & 0o004:
        status = worst(status, Verdict.WARN)
        notes.append(f"{args_file.path} holds it and is readable by every local user "
                     f"(mode {args_file.mode & 0o777:04o})")
        fixes.append(f"chmod o-r {args_file.path} (or move the cookie to "
                     f"~{user}/.erlang.cookie, mode 0400)")
    if facts.rejected_by:
        status = Verdict.FAIL
        notes.append("rejected by peers (the handshake failed): " + ", ".join(facts.rejected_by))
        fixes.append("give every node the same cookie, then restart the ones that differ")
    if facts.accepted_by:
        notes.append(f"accepted by {len(facts.accepted_by)} peers")
    if facts.unchecked:
        notes.append("peers not checked: " + ", ".join(
            f"{peer} ({reason})" for peer, reason in sorted(facts.unchecked.items())))
    if facts.peers_note:
        notes.append(facts.peers_note)
    return Finding("cookie", status, "; ".join(notes), recommended, why, "; ".join(fixes))


# -- kernel_limits ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KernelFacts:
    # (value, where it comes from); file_max None: not known (an image on unknown hardware).
    file_max: tuple[int, str] | None
    nr_open: tuple[int, str] | None
    port_range: tuple[tuple[int, int], str] | None
    # Every nofile value something configures or the node has: (value, where).
    nofile_values: Sequence[tuple[int, str]]
    dist_range: tuple[int, int] | None
    problems: tuple[str, ...] = ()


def check_kernel_limits(facts: KernelFacts, targets: Targets) -> Finding:
    why = WHY["kernel_limits"]
    recommended_nofile = targets.nofile_recommended
    recommended = (f"fs.nr_open and fs.file-max at least {recommended_nofile} (the nofile "
                   f"recommendation) and every configured nofile; ip_local_port_range at least "
                   f"{MIN_EPHEMERAL_PORTS} wide, clear of the distribution ports")
    notes: list[str] = []
    fixes: list[str] = []
    status = Verdict.PASS
    largest = max(facts.nofile_values, default=None)
    if facts.nr_open is not None:
        nr_open, where = facts.nr_open
        notes.append(f"fs.nr_open {nr_open} ({where})")
        above = [(v, w) for v, w in facts.nofile_values if v > nr_open]
        if above:
            status = Verdict.FAIL
            notes.append("above it, and so silently not applied: " + ", ".join(
                f"{v} ({w})" for v, w in above))
            fixes.append(f"raise fs.nr_open to at least {max(v for v, _ in above)} in "
                         "/etc/sysctl.d/60-mongooseim.conf before the limit is applied")
        elif nr_open < recommended_nofile:
            status = worst(status, Verdict.WARN)
            fixes.append(f"set fs.nr_open = {recommended_nofile} in "
                         "/etc/sysctl.d/60-mongooseim.conf before raising nofile")
    if facts.file_max is not None:
        file_max, where = facts.file_max
        notes.append(f"fs.file-max {file_max} ({where})")
        if largest is not None and file_max < largest[0]:
            status = Verdict.FAIL
            fixes.append(f"set fs.file-max = {max(largest[0], recommended_nofile) * 2} in "
                         "/etc/sysctl.d/60-mongooseim.conf")
        elif file_max < recommended_nofile:
            status = worst(status, Verdict.WARN)
            fixes.append(f"set fs.file-max = {recommended_nofile * 2} in "
                         "/etc/sysctl.d/60-mongooseim.conf")
    else:
        notes.append("fs.file-max: the kernel's default (scales with memory), not known here")
    if facts.port_range is not None:
        (low, high), where = facts.port_range
        width = high - low + 1
        notes.append(f"ip_local_port_range {low}..{high}, {width} ports ({where})")
        if width < MIN_EPHEMERAL_PORTS:
            status = worst(status, Verdict.WARN)
            fixes.append(f"widen net.ipv4.ip_local_port_range to {MIN_EPHEMERAL_PORTS}+ ports")
        if facts.dist_range is not None:
            dist_low, dist_high = facts.dist_range
            if dist_low <= high and low <= dist_high:
                status = worst(status, Verdict.WARN)
                notes.append(f"it overlaps the distribution range {dist_low}..{dist_high}, so "
                             "an outgoing connection can take the node's port")
                fixes.append(f"reserve them: net.ipv4.ip_local_reserved_ports = "
                             f"{dist_low}-{dist_high}")
    if facts.problems:
        status = worst(status, Verdict.WARN)
        notes.append("could not read: " + "; ".join(facts.problems))
    observed = [v for v in (facts.file_max, facts.nr_open) if v is not None]
    return Finding(
        "kernel_limits", status, "; ".join(notes), recommended, why, "; ".join(fixes),
        observed_value=float(min(v for v, _ in observed)) if observed else None,
        recommended_value=float(recommended_nofile),
    )


# -- cluster ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    db_nodes: tuple[str, ...]
    stopped: tuple[str, ...]
    expected_missing: tuple[str, ...]
    source: str


def check_cluster(facts: ClusterFacts | None, reason: str) -> Finding:
    why = WHY["cluster"]
    if facts is None:
        return skipped("cluster", reason, why)
    notes = [f"{len(facts.db_nodes)} db nodes ({facts.source})"]
    status = Verdict.PASS
    fixes = []
    if facts.stopped:
        status = Verdict.FAIL
        notes.append("stopped: " + ", ".join(facts.stopped))
        fixes.append("start the stopped nodes, or `mongooseimctl remove_from_cluster NODE` "
                     "for one that is gone for good")
    if facts.expected_missing:
        status = Verdict.FAIL
        notes.append("expected but not members: " + ", ".join(facts.expected_missing))
        fixes.append("on each missing node: `mongooseimctl join_cluster` a running member")
    return Finding("cluster", status, "; ".join(notes),
                   "no stopped db nodes; every expected member present", why,
                   "; ".join(fixes), observed_value=float(len(facts.stopped)),
                   recommended_value=0.0)
