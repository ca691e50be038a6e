"""The long-running agent: collectors on their intervals, the HTTP server, signals, reload."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import resource
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from mongooseim_agent.beacon import Beacon
from mongooseim_agent.collectors.base import BackgroundCollector, Collector
from mongooseim_agent.collectors.registry import Assembly, contract, default_assembly
from mongooseim_agent.config import Config, ConfigError, load_config
from mongooseim_agent.exposition import StoreCollector, agent_samples
from mongooseim_agent.history import History
from mongooseim_agent.http import ListenAddress, WebApp, bind
from mongooseim_agent.httpguard import ConnectionGuard, GuardedSite, connection_cap, http_samples
from mongooseim_agent.landing import LandingPage
from mongooseim_agent.loadbalancer.agentcheck import AgentCheckServer, agent_reply, store_weight
from mongooseim_agent.loadbalancer.readiness import STARTING, ReadinessPolicy, Schedule, Verdict
from mongooseim_agent.runner import CollectorRunner
from mongooseim_agent.sdnotify import Notifier, Supervision
from mongooseim_agent.snapshot import Sample
from mongooseim_agent.store import Store
from mongooseim_agent.webauth import WebAuth
from mongooseim_agent.webconfig import WebConfigSource

CollectorFactory = Callable[[Config], Assembly]


@dataclass
class _Generation:
    """The collectors built from one config, and their tasks."""

    config: Config
    assembly: Assembly
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    policy: ReadinessPolicy = field(init=False)
    schedules: dict[str, Schedule] = field(init=False)

    def __post_init__(self) -> None:
        self.policy = ReadinessPolicy(self.config.load_balancer)
        self.schedules = {
            c.name: Schedule(c.interval, c.timeout) for c in self.assembly.collectors
        }

    @property
    def collectors(self) -> list[Collector]:
        return self.assembly.collectors


class Daemon:
    def __init__(
        self,
        config: Config,
        config_path: Path | None,
        listen: list[ListenAddress],
        factory: CollectorFactory = default_assembly,
        wall: Callable[[], float] = time.time,
        *,
        web_config: WebConfigSource | None = None,
        notifier: Notifier | None = None,
        watchdog: float | None = None,
    ) -> None:
        self._config_path = config_path
        self._listen = listen
        self._factory = factory
        self._wall = wall
        self._store = Store()
        self._log = structlog.get_logger("daemon")
        self._generation = _Generation(config, Assembly([]))
        self._reload_ok = True
        self._reload_time = wall()
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[bool]] = set()
        self._beacon = Beacon(lambda: self.config.agent.state_dir, self._store.touch, wall=wall)
        self.landing = LandingPage(self._store, self.readiness, History(clock=wall),
                                   configured_node=lambda: self.config.node.name, clock=wall)
        self.bound: list[tuple[str, int]] = []
        self.agent_check = AgentCheckServer(self._agent_check_reply)
        source = web_config or WebConfigSource(None)
        source.on_change = self._store.touch
        bounds = config.web
        self._guard = ConnectionGuard(
            source,
            connection_cap(
                bounds.max_connections, bounds.fd_reserve,
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            ),
            bounds.header_timeout,
        )
        self._auth = WebAuth(source, exempt=self._exempt_from_auth)
        self._notifier = notifier or Notifier(None)
        self._supervision = Supervision(
            self._notifier, self.started, self.status_line, self._progress, watchdog
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StoreCollector(contract(), self._samples))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    @property
    def config(self) -> Config:
        return self._generation.config

    def started(self) -> bool:
        names = {c.name for c in self._generation.collectors}
        return bool(names) and all(self._store.get(name) is not None for name in names)

    def readiness(self) -> Verdict:
        """The load-balancer verdict, from memory only (no IO on the request path)."""
        if not self.started():
            return STARTING
        generation = self._generation
        state = self._beacon.drain
        drained = state.condition() if state is not None else None
        verdict = generation.policy.evaluate(
            self._store, generation.schedules, self._wall(), drained
        )
        return dataclasses.replace(verdict, drain=state) if state is not None else verdict

    def _agent_check_reply(self) -> str:
        return agent_reply(self.readiness(), store_weight(self._store, self.config.load_balancer))

    def _samples(self) -> Iterator[Sample]:
        for snap in self._store:
            yield from snap.samples
        yield from agent_samples(
            self._store, self.readiness().ready, self._store.overdue(self._wall()),
            self._store.dropped,
        )
        yield from self._beacon.samples()
        yield Sample("mongooseim_agent_config_reload_success", 1 if self._reload_ok else 0)
        yield Sample(
            "mongooseim_agent_config_last_reload_success_timestamp_seconds", self._reload_time
        )
        yield from http_samples(self._guard, self._auth.failures, self._auth.rate_limited)

    def status_line(self) -> str:
        """systemd's STATUS=: the verdict and the collectors, on one line."""
        verdict = self.readiness()
        snapshots = list(self._store)
        ok = sum(1 for snap in snapshots if snap.ok)
        failing = sorted(snap.collector for snap in snapshots if not snap.ok)
        head = "node ready" if verdict.ready else "node NOT ready: " + "; ".join(verdict.reasons)
        tail = f" (failing: {', '.join(failing)})" if failing else ""
        return f"{head}; {ok}/{len(snapshots)} collectors ok{tail}"

    def _progress(self) -> tuple[tuple[str, float], ...]:
        """Changes whenever any collector completes a run (the watchdog's evidence)."""
        return tuple((snap.collector, snap.timestamp) for snap in self._store)

    def _exempt_from_auth(self, path: str) -> bool:
        return path == "/node/ready" and self.config.load_balancer.node_ready_without_auth

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        """SIGHUP: reload in a task kept referenced until it ends (the loop holds only weak
        references). At most one waits behind the running one: it reads the newest file, so
        further signals meanwhile add nothing."""
        if len(self._reloads) >= 2:
            return
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        app = WebApp(self._store, self.registry, self.readiness, self.started,
                     landing=self.landing).build()
        self._auth.install(app)
        runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=self.config.web.idle_timeout
        )
        await runner.setup()
        loop.set_exception_handler(self._guard.exception_handler)
        try:
            await self._start_sites(runner)
            beacon = asyncio.create_task(self._beacon.run(), name="beacon")
            history = asyncio.create_task(self.landing.history.run(self._samples),
                                          name="history")
            await self._start_generation(self._generation.config)
            await self.agent_check.apply(self.config.load_balancer)
            supervision = asyncio.create_task(self._supervision.run(), name="sd-notify")
            await self._stop.wait()
            self._notifier.stopping()
            for task in (supervision, beacon, history):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._beacon.remove()
            self._log.info("stopping")
        finally:
            if self._reloads:
                # A reload under way finishes first (one queued behind it sees the stop and
                # returns), so the generation it starts is the one stopped here.
                await asyncio.wait(self._reloads)
            await self.agent_check.close()
            await self._stop_generation()
            await runner.cleanup()
            self._notifier.close()
            loop.set_exception_handler(None)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _start_sites(self, runner: web.AppRunner) -> None:
        # Binding here, not in aiohttp, gives the real port of ":0" and fails before serving.
        sockets = [bind(address) for address in self._listen]
        for sock in sockets:
            await GuardedSite(runner, sock, self._guard).start()
            host, port = sock.getsockname()[:2]
            self.bound.append((host, port))
            self._log.info(
                "listening", address=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                tls=self._guard.source.tls, max_connections=self._guard.cap,
            )

    async def _start_generation(self, config: Config) -> None:
        assembly = self._factory(config)
        collectors = assembly.collectors
        generation = _Generation(config, assembly)
        watch = assembly.watch
        if watch is not None:
            # Discovery first, so no collector starts without knowing the node.
            await watch.refresh()
            generation.tasks.append(
                asyncio.create_task(watch.run(skip_first=True), name="node-watch")
            )
        for collector in collectors:
            if isinstance(collector, BackgroundCollector):
                generation.tasks.append(
                    asyncio.create_task(collector.run(), name=f"{collector.name}-run")
                )
            runner = CollectorRunner(collector, self._store)
            generation.tasks.append(
                asyncio.create_task(runner.run_forever(), name=f"{collector.name}-collect")
            )
        for stale in {s.collector for s in self._store} - {c.name for c in collectors}:
            self._store.forget(stale)
        self._generation = generation
        self._log.info("collectors started", collectors=[c.name for c in collectors])

    async def _stop_generation(self) -> None:
        generation = self._generation
        for task in generation.tasks:
            task.cancel()
        for task in generation.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        closers = [c.close for c in generation.collectors if isinstance(c, BackgroundCollector)]
        for close in [*closers, *generation.assembly.closers]:
            try:
                await close()
            except Exception as exc:  # noqa: BLE001 - one bad close must not block the rest
                self._log.error("close failed", error=str(exc))
        generation.tasks.clear()

    async def reload(self) -> bool:
        """Re-read the config; a bad one is refused and the running one kept.

        systemd hears RELOADING=1 before and READY=1 after, either way (not once stopping).
        """
        if self._stop.is_set():
            return False
        self._notifier.reloading()
        try:
            return await self._reload()
        finally:
            if not self._stop.is_set():
                self._notifier.ready(self.status_line())

    async def _reload(self) -> bool:
        async with self._reload_lock:
            if self._stop.is_set():
                return False
            try:
                config = load_config(self._config_path)
            except ConfigError as exc:
                self._reload_ok = False
                self._store.touch()
                self._log.error("config reload refused; keeping the running config",
                                error=str(exc))
                return False
            await self._stop_generation()
            await self._start_generation(config)
            try:
                await self.agent_check.apply(config.load_balancer)
            except OSError as exc:
                self._log.error("agent-check listener not started", error=str(exc),
                                address=config.load_balancer.agent_check_address)
            self._reload_ok = True
            self._reload_time = self._wall()
            self._store.touch()
            self._log.info("config reloaded")
            return True
