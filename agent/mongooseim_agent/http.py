"""The agent's HTTP face: /metrics, /, /-/healthy, /-/ready, /node/ready."""

from __future__ import annotations

import html
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from mongooseim_agent import __version__
from mongooseim_agent.loadbalancer.readiness import Verdict
from mongooseim_agent.snapshot import Status
from mongooseim_agent.store import Store


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str | None  # None: every interface, as Go's ":9925" means
    port: int

    def __str__(self) -> str:
        host = self.host or ""
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def bind(address: ListenAddress) -> socket.socket:
    """A listening socket for `address`; no host means every interface, IPv6 too if present."""
    if address.host is None:
        if socket.has_dualstack_ipv6():
            return socket.create_server(
                ("", address.port), family=socket.AF_INET6, dualstack_ipv6=True,
                reuse_port=False,
            )
        return socket.create_server(("", address.port))
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    return socket.create_server((address.host, address.port), family=family)


def parse_listen_address(text: str) -> ListenAddress:
    """`host:port`, `:port` or `[v6]:port`; ValueError names the bad value."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"--web.listen-address {text!r}: expected host:port or :port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--web.listen-address {text!r}: port is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--web.listen-address {text!r}: port out of range")
    return ListenAddress(host or None, port)


_STATUS_CLASS = {
    Status.OK: "ok",
    Status.WARNING: "warning",
    Status.CRITICAL: "critical",
    Status.UNKNOWN: "unknown",
}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
.ok{background:#dfd}.warning{background:#ffd}.critical{background:#fdd}.unknown{background:#eee}
"""


def render_landing(store: Store, readiness: Verdict, now: float) -> str:
    esc = html.escape
    rows = []
    for snap in store:
        state = "ok" if snap.ok else "critical"
        age = f"{now - snap.timestamp:.1f}s ago" if snap.timestamp else "never"
        rows.append(
            f"<tr class={state}><td>{esc(snap.collector)}</td>"
            f"<td>{'ok' if snap.ok else 'failed'}</td><td>{esc(age)}</td>"
            f"<td>{snap.duration_seconds * 1000:.1f} ms</td><td>{esc(snap.error or '')}</td></tr>"
        )
    checks = []
    for check in store.checks():
        cls = _STATUS_CLASS[check.status]
        checks.append(
            f"<tr class={cls}><td>{esc(check.name)}</td><td>{check.status.name}</td>"
            f"<td>{esc(check.summary)}</td><td>{esc(check.hint)}</td></tr>"
        )
    verdict = "ready" if readiness.ready else "NOT ready: " + "; ".join(readiness.reasons)
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>mongooseim-agent</title><style>{_STYLE}</style></head><body>"
        f"<h1>mongooseim-agent {esc(__version__)}</h1>"
        f"<p>Load balancer verdict (<a href=/node/ready>/node/ready</a>): {esc(verdict)}</p>"
        "<h2>Checks</h2><table><tr><th>check</th><th>state</th><th>value</th>"
        f"<th>what to do</th></tr>{''.join(checks)}</table>"
        "<h2>Collectors</h2><table><tr><th>collector</th><th>last run</th><th>when</th>"
        f"<th>took</th><th>error</th></tr>{''.join(rows)}</table>"
        "<p><a href=/metrics>/metrics</a> · <a href=/-/healthy>/-/healthy</a> · "
        "<a href=/-/ready>/-/ready</a></p></body></html>"
    )


class MetricsCache:
    """The last rendering per content type, reused while the store is unchanged.

    Scrapes that arrive together (several Prometheus servers, HA pairs) then cost one
    render. `max_age` bounds how stale the agent's own process metrics may get.
    """

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age
        self._clock = clock
        self._entries: dict[str, tuple[int, float, bytes]] = {}

    def get(self, content_type: str, version: int, render: Callable[[], bytes]) -> bytes:
        now = self._clock()
        entry = self._entries.get(content_type)
        if entry is not None and entry[0] == version and now - entry[1] < self._max_age:
            return entry[2]
        body = render()
        self._entries[content_type] = (version, now, body)
        return body


class WebApp:
    def __init__(
        self,
        store: Store,
        registry: CollectorRegistry,
        readiness: Callable[[], Verdict],
        started: Callable[[], bool],
        *,
        clock: Callable[[], float] = time.time,
        cache_max_age: float = 1.0,
    ) -> None:
        self._store = store
        self._registry = registry
        self._readiness = readiness
        self._started = started
        self._clock = clock
        self._cache = MetricsCache(cache_max_age)

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.landing)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/-/healthy", self.healthy)
        app.router.add_get("/-/ready", self.ready)
        app.router.add_get("/node/ready", self.node_ready)
        return app

    async def metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = self._cache.get(
            content_type, self._store.version, lambda: encoder(self._registry)
        )
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def landing(self, request: web.Request) -> web.Response:
        page = render_landing(self._store, self._readiness(), self._clock())
        return web.Response(text=page, content_type="text/html")

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def ready(self, request: web.Request) -> web.Response:
        if self._started():
            return web.Response(text="OK\n")
        return web.Response(status=503, text="first collection not done yet\n")

    async def node_ready(self, request: web.Request) -> web.Response:
        ignore = [
            name for value in request.query.getall("ignore", [])[:_MAX_IGNORED]
            for name in value.split(",")[:_MAX_IGNORED] if name
        ]
        return node_ready_response(self._readiness().ignoring(ignore))


# `?ignore=` names at most this many conditions; more are not read.
_MAX_IGNORED = 32


def node_ready_response(verdict: Verdict) -> web.Response:
    """200 or 503 with every condition and its value, for HAProxy, Nginx, ELB and Route53.

    HEAD gets the same status without the body (aiohttp drops it).
    """
    body = json.dumps(verdict.to_json())
    return web.Response(
        status=200 if verdict.ready else 503, text=body + "\n",
        content_type="application/json", headers={"Cache-Control": "no-store"},
    )
