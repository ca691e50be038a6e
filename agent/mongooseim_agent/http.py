"""The agent's HTTP face: /metrics, /, /-/healthy, /-/ready, /node/ready."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from mongooseim_agent.landing import LandingPage
from mongooseim_agent.loadbalancer.readiness import Verdict
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
        landing: LandingPage | None = None,
    ) -> None:
        self._landing = landing or LandingPage(store, readiness, clock=clock)
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
        return web.Response(text=self._landing.render(), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

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
