"""Runs the real agent as a subprocess on a free port and scrapes it like Prometheus does."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


class AgentProcess:
    """`python -m mongooseim_agent` with JSON logs read on a thread into a queue."""

    def __init__(
        self,
        config: Path | None,
        extra_args: Sequence[str] = (),
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        argv = [*prefix, python, "-m", "mongooseim_agent"]
        if config is not None:
            argv += ["--config", str(config)]
        argv += ["--web.listen-address", "127.0.0.1:0", "--log.format", "json", *extra_args]
        self.proc = subprocess.Popen(
            argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            env={**os.environ, **(env or {})},
        )
        self.logs: list[dict[str, Any]] = []
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        assert self.proc.stderr is not None
        self._pump_thread = threading.Thread(
            target=self._pump, args=(self.proc.stderr,), daemon=True
        )
        self._pump_thread.start()
        self.port = int(self.wait_log("listening", timeout=20)["address"].rsplit(":", 1)[1])

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "non-json output", "line": line}
            self._lines.put(event)

    def wait_log(self, event: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {event!r} log line within {timeout}s: {self.logs}")
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"agent exited {self.proc.returncode}: {self.logs}"
                    ) from None
                continue
            self.logs.append(line)
            if line.get("event") == event:
                return line

    def all_logs(self) -> list[dict[str, Any]]:
        """Every log line, once the agent has exited."""
        self.stop()
        self._pump_thread.join(10)
        while not self._lines.empty():
            self.logs.append(self._lines.get_nowait())
        return self.logs

    def get(self, path: str, accept: str | None = None) -> tuple[int, str, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if accept:
            request.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - http only
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()

    def metrics(self) -> Series:
        status, _, body = self.get("/metrics")
        assert status == 200
        return parse_metrics(body)

    def poll_metrics(self, predicate: Callable[[Series], bool], timeout: float = 15) -> Series:
        """Scrape until `predicate` holds; the last scrape is returned either way."""
        deadline = time.monotonic() + timeout
        series = self.metrics()
        while not predicate(series) and time.monotonic() < deadline:
            time.sleep(0.1)
            series = self.metrics()
        return series

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
