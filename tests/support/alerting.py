"""Real Prometheus and Alertmanager processes on loopback, and a webhook receiver.

Each process binds 127.0.0.1 on a free port, keeps its data in the test's tmp dir and is
stopped by PID. The Alertmanager config is the shipped one with only its receivers' endpoints
swapped for the test's webhook: the route tree and the inhibitions are what ships.
"""

from __future__ import annotations

import copy
import json
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.support.exporters import ALERTMANAGER, load_yaml
from tests.support.mimnode import free_port

T = TypeVar("T")


@dataclass(frozen=True)
class Delivery:
    """One webhook POST from an Alertmanager."""

    receiver: str
    payload: dict[str, Any]
    received: float  # time.time()

    def alerts(self, alertname: str, status: str = "firing") -> list[dict[str, Any]]:
        return [a for a in self.payload["alerts"]
                if a["labels"].get("alertname") == alertname and a["status"] == status]


class WebhookSink:
    """Collects Alertmanager webhook notifications; the URL path names the receiver."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                delivery = Delivery(self.path.strip("/"), json.loads(body), time.time())
                with sink._lock:
                    sink.deliveries.append(delivery)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, receiver: str) -> str:
        return f"http://127.0.0.1:{self.port}/{receiver}"

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def notifications(self, alertname: str, status: str = "firing") -> list[Delivery]:
        return [d for d in self.snapshot() if d.alerts(alertname, status)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def alertmanager_config(sink: WebhookSink) -> dict[str, Any]:
    """The shipped routing, each receiver sending to the sink under its own name."""
    shipped = load_yaml(ALERTMANAGER)
    config = copy.deepcopy(shipped)
    config["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": sink.url(r["name"]),
                                                 "send_resolved": True}]}
        for r in shipped["receivers"]
    ]
    return config


def wait_for(probe: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.2) -> T:
    """Poll until probe returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except (OSError, ValueError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_json(url: str, data: Any = None, timeout: float = 5) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback http only
        url, data=body, method="POST" if body else "GET"
    )
    if body:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
        raw = response.read()
    return json.loads(raw) if raw else None


class Server:
    """A Prometheus-family server process on 127.0.0.1, stopped by PID."""

    def __init__(self, argv: Sequence[str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        wait_for(self._ready, 30, f"{argv[0]} on port {port} to be ready")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.proc.args[0]} exited: {self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Alertmanager(Server):
    def __init__(self, binary: str, config: dict[str, Any], workdir: Path,
                 cluster_port: int | None = None, peers: Sequence[int] = ()) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config_file = workdir / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        argv = [binary, f"--config.file={config_file}", f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}"]
        if cluster_port is None:
            argv.append("--cluster.listen-address=")
        else:
            argv += [f"--cluster.listen-address=127.0.0.1:{cluster_port}",
                     "--cluster.advertise-address=127.0.0.1:" + str(cluster_port),
                     # Gossip settles in well under a second on loopback.
                     "--cluster.settle-timeout=2s", "--cluster.gossip-interval=100ms",
                     "--cluster.pushpull-interval=2s"]
            argv += [f"--cluster.peer=127.0.0.1:{peer}" for peer in peers]
        super().__init__(argv, port, workdir / "alertmanager.log")

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        http_json(self.url + "/api/v2/alerts", alerts)

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode(
            [("filter", f'{k}="{v}"') for k, v in filters.items()]
            + [("silenced", "true"), ("inhibited", "true"), ("active", "true")]
        )
        result: list[dict[str, Any]] = http_json(f"{self.url}/api/v2/alerts?{query}")
        return result

    def cluster_peers(self) -> int:
        status = http_json(self.url + "/api/v2/status")
        return len(status["cluster"].get("peers") or [])


class Prometheus(Server):
    def __init__(self, binary: str, config: dict[str, Any], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        argv = [binary, f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}"]
        super().__init__(argv, port, workdir / "prometheus.log")

    def query(self, expr: str) -> dict[str, Any]:
        """The API's whole answer (status, data, warnings) for an instant query."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
                answer: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:
            answer = json.load(exc)
        return answer

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        alerts = http_json(self.url + "/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts
                if a["labels"]["alertname"] == alertname and a["state"] == "firing"]
