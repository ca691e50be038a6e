"""One loader for agent.toml: frozen typed models, unknown keys rejected, errors name the key path.

The cookie never passes through here: only the *path* of a cookie file is configured, and
error messages quote values only for keys that cannot hold secrets.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mongooseim_agent.mongooseim import log_patterns

DEFAULT_CONFIG_PATH = Path("/etc/mongooseim-agent/agent.toml")
DEFAULT_STATE_DIR = Path("/var/lib/mongooseim-agent")

_NODE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+(@[A-Za-z0-9_.-]+)?$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ConfigError(Exception):
    """A configuration that must not start the agent; str() is the operator-facing text."""


def _parse_duration(value: object) -> object:
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError("expected a duration such as 5, 2.5, '500ms', '15s' or '1m'")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(_parse_duration), Field(gt=0, le=86400)]
Ratio = Annotated[float, Field(gt=0, le=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class _PeriodicSection(_Section):
    """A section run every `interval` with a `timeout`.

    An unset timeout is the smaller of its default and the interval (as Prometheus does for
    scrape_timeout), so `interval = "1s"` alone is valid; a timeout set above the interval is
    an error on `<section>.timeout`.
    """

    interval: Duration = 15.0
    timeout: Duration = 5.0

    @model_validator(mode="before")
    @classmethod
    def _default_timeout(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "timeout" in data or "interval" not in data:
            return data
        try:
            interval = float(_parse_duration(data["interval"]))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return data  # the interval's own validation reports it
        default = cls.model_fields["timeout"].default
        if 0 < interval < default:
            return {**data, "timeout": interval}
        return data

    @field_validator("timeout")
    @classmethod
    def _timeout_fits(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and value > interval:
            raise ValueError(f"must not exceed interval ({interval:g}s)")
        return value


class AgentSection(_Section):
    state_dir: Path = DEFAULT_STATE_DIR


class NodeSection(_Section):
    # The node to watch, e.g. "mongooseim@localhost"; None = the single MongooseIM node here.
    name: str | None = None
    release_root: Path | None = None
    cookie_file: Path | None = None
    # How often discovery re-validates the node's process (one read of /proc/PID/stat) or,
    # when it is gone, looks for it again; it runs before and beside the collectors.
    interval: Duration = 1.0

    @field_validator("name")
    @classmethod
    def _node_name(cls, value: str | None) -> str | None:
        if value is not None and not _NODE_NAME_RE.match(value):
            raise ValueError("expected a node name such as mongooseim@localhost")
        return value


class FdsSection(_PeriodicSection):
    interval: Duration = 5.0
    timeout: Duration = 2.0
    warning_ratio: Ratio = 0.8
    critical_ratio: Ratio = 0.9
    host_warning_ratio: Ratio = 0.8
    host_critical_ratio: Ratio = 0.9

    @model_validator(mode="after")
    def _ordered(self) -> FdsSection:
        if self.warning_ratio > self.critical_ratio:
            raise ValueError(
                f"warning_ratio ({self.warning_ratio}) must not exceed "
                f"critical_ratio ({self.critical_ratio})"
            )
        if self.host_warning_ratio > self.host_critical_ratio:
            raise ValueError(
                f"host_warning_ratio ({self.host_warning_ratio}) must not exceed "
                f"host_critical_ratio ({self.host_critical_ratio})"
            )
        return self


class ProcessSection(_PeriodicSection):
    """The node process's memory, CPU, threads and context switches (psutil)."""

    # false: the collector is not built and psutil never imported.
    enabled: bool = True
    interval: Duration = 5.0
    timeout: Duration = 2.0


def parse_host_port(value: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" into its parts; ValueError naming what is wrong."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or any(c.isspace() for c in host) or not port.isdigit():
        raise ValueError(f"expected host:port, got {value!r}")
    if not 0 < int(port) <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    return host, int(port)


DEFAULT_LISTENERS = {"c2s": "127.0.0.1:5222", "s2s": "127.0.0.1:5269", "http": "127.0.0.1:5280"}


class ProbesSection(_PeriodicSection):
    interval: Duration = 15.0
    # Per probe: each epmd query, TCP connect and handshake gets this long.
    timeout: Duration = 2.0
    # Cluster peers probed besides the node's own nodes(), e.g. "mongooseim@node2".
    peers: tuple[str, ...] = ()
    # name -> "host:port" of the node's listeners; replaces the defaults when set.
    listeners: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LISTENERS))
    epmd_port: int = Field(default=4369, ge=1, le=65535)
    # At most this many peers are probed (configured first, then mnesia members, then
    # nodes()); the cap is reported by the cluster_peers check and cluster_peers_known.
    max_peers: int = Field(default=64, ge=0, le=4096)
    # At most this many peers are probed at once (each holds up to two sockets).
    max_concurrency: int = Field(default=32, ge=1, le=1024)

    @field_validator("peers")
    @classmethod
    def _peer_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for peer in value:
            if "@" not in peer or not _NODE_NAME_RE.match(peer):
                raise ValueError(f"peer {peer!r}: expected a node name such as mongooseim@host")
        return value

    @field_validator("listeners")
    @classmethod
    def _listener_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for name, target in value.items():
            try:
                parse_host_port(target)
            except ValueError as exc:
                raise ValueError(f"listener {name!r}: {exc}") from None
        return value


class VmSection(_PeriodicSection):
    interval: Duration = 15.0
    timeout: Duration = 5.0
    # Port and process table use, as a share of the table size, that warns / is critical.
    warning_ratio: Ratio = 0.8
    critical_ratio: Ratio = 0.9

    @model_validator(mode="after")
    def _ordered(self) -> VmSection:
        if self.warning_ratio > self.critical_ratio:
            raise ValueError(
                f"warning_ratio ({self.warning_ratio}) must not exceed "
                f"critical_ratio ({self.critical_ratio})"
            )
        return self


class LogPatternSection(_Section):
    """A user-defined pattern: a line counts when it contains `literal` / matches `regex`."""

    literal: str | None = None
    # Matched against each line's bytes; ^ and $ anchor at line start and end.
    regex: str | None = None

    @field_validator("literal")
    @classmethod
    def _literal(cls, value: str | None) -> str | None:
        if value is not None:
            log_patterns.check_user_literal(value)
        return value

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            log_patterns.compile_user_regex(value)
        return value

    @model_validator(mode="after")
    def _one_of(self) -> LogPatternSection:
        if (self.literal is None) == (self.regex is None):
            raise ValueError("set exactly one of 'literal' or 'regex'")
        return self


class LogsSection(_Section):
    # Globs of the log files to follow; empty: the discovered release root's
    # log/mongooseim.log* and log/mongooseim.json* (disk_log .idx/.siz files skipped).
    paths: tuple[str, ...] = ()
    # Where files never seen before start on the agent's first run: "end" so old history
    # does not page anyone. Files created later are always read from their start.
    start_at: Literal["end", "beginning"] = "end"
    # With the collector's 0.25 s collect interval, a matching line is in /metrics within
    # about 0.8 s.
    poll_interval: Duration = 0.5
    # Longer lines are counted as long and matched on their first max_line_bytes only.
    max_line_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    # How long a matched fault keeps its check failing.
    match_window: Duration = 300.0
    patterns: dict[str, LogPatternSection] = Field(default_factory=dict)
    # The systemd unit whose journal to follow too (MongooseIM logging to stdout).
    journal_unit: str | None = None

    @field_validator("paths")
    @classmethod
    def _absolute(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"path {path!r} must be absolute")
        return value

    @field_validator("journal_unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9@._:\\-]+", value):
            raise ValueError("expected a systemd unit name such as mongooseim.service")
        return value

    @field_validator("patterns")
    @classmethod
    def _names(cls, value: dict[str, LogPatternSection]) -> dict[str, LogPatternSection]:
        for name in value:
            log_patterns.check_pattern_name(name)
        return value


class WebSection(_Section):
    """The HTTP server's bounds (TLS and basic auth live in --web.config.file)."""

    # A request's headers (and a TLS handshake) must arrive within this of their first byte.
    header_timeout: Duration = 10.0
    # An idle keep-alive connection is closed after this.
    idle_timeout: Duration = 60.0
    # Open HTTP connections at most; also kept fd_reserve below the agent's nofile limit.
    max_connections: int = Field(default=512, ge=1, le=1_000_000)
    # File descriptors kept free for the collectors, whatever the HTTP clients do.
    fd_reserve: int = Field(default=256, ge=16, le=1_000_000)


class LoadBalancerSection(_PeriodicSection):
    """What /node/ready and the HAProxy agent-check answer, and the collector behind them."""

    # The lb collector: the node's process state, its answer over distribution, and the
    # established connections on each [probes] listener.
    interval: Duration = 2.0
    timeout: Duration = 1.5
    # Condition names (check names such as "node_fds", "listener_s2s", "cluster_members",
    # or "drained", "agent_started") that are shown but never make the node not ready.
    exempt: tuple[str, ...] = ()
    # Conditions that must be present: missing means "no verdict yet", which is not ready.
    required: tuple[str, ...] = ("node_process",)
    # A readiness check at this status or worse makes the node not ready.
    fail_on: Literal["critical", "warning"] = "critical"
    # A verdict older than stale_after intervals of its collector (plus its timeout)
    # counts as failing with the reason "stale".
    stale_after: float = Field(default=3.0, ge=1.0, le=100.0)
    # How often the lb collector counts listener connections (a sock_diag dump walks every
    # TCP socket on the host: ~10 ms of CPU at 10k); at most once per run.
    connections_interval: Duration = 10.0
    # The node is not ready when it has not answered over distribution for this long
    # (a frozen or wedged VM still accepts TCP on its listeners).
    silent_after: Duration = 10.0
    # "host:port" of the HAProxy agent-check listener; None: off.
    agent_check_address: str | None = None
    agent_check_max_connections: int = Field(default=64, ge=1, le=10000)
    # How long one agent-check connection may stay open.
    agent_check_timeout: Duration = 2.0
    # Lower the agent-check weight as the node's fd use nears its soft nofile limit.
    weight_by_fd_headroom: bool = False
    # fd use (open / soft limit) above which the weight starts to fall; at the limit: 1%.
    weight_fd_start_ratio: float = Field(default=0.5, ge=0.0, lt=1.0)
    # /node/ready answers without basic auth (TLS still applies), for load balancers that
    # cannot authenticate (web config). Anyone who reaches the port then sees the verdict
    # and its reasons.
    node_ready_without_auth: bool = False

    @field_validator("agent_check_address")
    @classmethod
    def _agent_address(cls, value: str | None) -> str | None:
        if value is not None:
            # Port 0 picks a free port (logged as "agent-check listening"), as for the web.
            parse_host_port(value[:-1] + "1" if value.endswith(":0") else value)
        return value


class AuditSection(_PeriodicSection):
    """The operations guide's checklist, run every `interval` (see docs/configuration.md)."""

    interval: Duration = 300.0
    timeout: Duration = 30.0
    # Scales the nofile and ERL_MAX_PORTS recommendations; unset: the guide's 1,000,000 and
    # 250000/350000 (sized for 100k users).
    expected_connections: int | None = Field(default=None, ge=1, le=100_000_000)
    # Listeners use TLS (ERL_MAX_PORTS 350000 instead of 250000); unset: read from
    # REL_ROOT/etc/mongooseim.toml.
    tls: bool | None = None
    # The service user and systemd unit; unset: the node process's user and cgroup, else
    # the unit's User= and mongooseim.service.
    user: str | None = None
    unit: str | None = None
    # Measure the port table's memory with `erl` (one VM start per size, cached).
    measure_port_memory: bool = True

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?", value):
            raise ValueError("expected a user name such as mongooseim")
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9@._:\\-]+\.service", value):
            raise ValueError("expected a systemd service name such as mongooseim.service")
        return value


class ClusterSection(_PeriodicSection):
    interval: Duration = 15.0
    # Per source: a dist or GraphQL read of the membership gets this long.
    timeout: Duration = 5.0
    # Where membership is read: "auto" = the first of dist, graphql (when graphql_url is
    # set), ctl (when a mongooseimctl is found) that answers.
    source: Literal["auto", "dist", "graphql", "ctl"] = "auto"
    # Members that should be in the cluster; empty: every member seen since the agent started.
    expected_members: tuple[str, ...] = ()
    # The node is not ready for traffic when fewer members than this run (itself included).
    min_running_members: int = Field(default=1, ge=0, le=1024)
    # MongooseIM 6's GraphQL admin endpoint, e.g. "http://127.0.0.1:5551/api/graphql".
    graphql_url: str | None = None
    graphql_user: str | None = None
    # A file holding the admin password (basic auth); never logged or shown.
    graphql_password_file: Path | None = None
    # The Host header MongooseIM's handler matches (its listener's `host`, "localhost").
    graphql_host: str = "localhost"
    # mongooseimctl to run; None: REL_ROOT/bin/mongooseimctl of the discovered node.
    ctl_path: Path | None = None
    # Each mongooseimctl run (it starts a whole VM: about 1.2 s).
    ctl_timeout: Duration = 10.0

    @field_validator("expected_members")
    @classmethod
    def _members(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for member in value:
            if "@" not in member or not _NODE_NAME_RE.match(member):
                raise ValueError(f"member {member!r}: expected a node name such as mongooseim@host")
        return value

    @field_validator("graphql_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/@]+(/[^\s]*)?", value):
            raise ValueError("expected an http:// or https:// URL without credentials, such "
                             "as http://127.0.0.1:5551/api/graphql")
        return value

    @field_validator("graphql_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.:\[\]-]{1,255}", value):
            raise ValueError("expected a host name such as localhost")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSection:
        if self.source == "graphql" and self.graphql_url is None:
            raise ValueError("source = \"graphql\" needs graphql_url")
        if (self.graphql_user is None) != (self.graphql_password_file is None):
            raise ValueError("set both graphql_user and graphql_password_file, or neither")
        return self


class Config(_Section):
    agent: AgentSection = AgentSection()
    node: NodeSection = NodeSection()
    fds: FdsSection = FdsSection()
    process: ProcessSection = ProcessSection()
    probes: ProbesSection = ProbesSection()
    vm: VmSection = VmSection()
    logs: LogsSection = LogsSection()
    web: WebSection = WebSection()
    load_balancer: LoadBalancerSection = LoadBalancerSection()
    audit: AuditSection = AuditSection()
    cluster: ClusterSection = ClusterSection()


_TYPE_REPR = re.compile(r" for <class '[^']*'>")
# A URL may carry credentials (user:password@host): never echoed either.
_SECRET_KEYS = frozenset({"cookie", "password", "secret", "url"})


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model a key path leads to; a dict-of-models table ([logs.patterns.NAME]) is
    stepped through by its value type."""
    model: type[BaseModel] = Config
    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        if field is None:
            return None
        annotation = field.annotation
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is dict and len(args) == 2 and parts:
            parts.pop(0)
            annotation = args[1]
        found = _model_of(annotation)
        if found is None:
            return None
        model = found
    return model


def _describe(error: Any) -> str:
    loc: tuple[int | str, ...] = tuple(error["loc"])
    key = _path(loc)
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = sorted(parent.model_fields) if parent is not None else []
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if guess:
            return f"{key}: unknown key; did you mean '{guess[0]}'?"
        return f"{key}: unknown key (valid keys: {', '.join(known)})"
    message = _TYPE_REPR.sub("", str(error["msg"]).removeprefix("Value error, "))
    if any(word in key for word in _SECRET_KEYS):
        return f"{key}: {message}"
    if error["type"] in {"model_type", "model_attributes_type"} and loc:
        return f"{key}: expected a table, got {error['input']!r}"
    if loc and "input" in error and not isinstance(error["input"], dict):
        return f"{key}: {message} (got {error['input']!r})"
    return f"{key}: {message}"


def parse_config(document: dict[str, Any], source: str = "config") -> Config:
    """Validate a parsed TOML document; ConfigError lists every bad key with its path."""
    try:
        return Config.model_validate(document)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise ConfigError(f"{source}: " + "\n  ".join(lines)) from None


def load_config(path: Path | None) -> Config:
    """Load `path`, or the default file when it exists, or built-in defaults.

    An explicitly given path that does not exist is an error; the default path missing is not
    (the agent runs on auto-discovered defaults).
    """
    explicit = path is not None
    target = path if path is not None else DEFAULT_CONFIG_PATH
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{target}: no such file") from None
        return Config()
    except OSError as exc:
        raise ConfigError(f"{target}: cannot read: {exc.strerror}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{target}: not UTF-8 text at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{target}: invalid TOML: {exc}") from None
    return parse_config(document, str(target))
