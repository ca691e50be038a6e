"""Helpers for the load-balancer tests: /node/ready polling with latency figures, the
agent's footprint, and a real HAProxy on loopback read through its stats socket."""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil


def footprint(pid: int) -> dict[str, float]:
    """fds, RSS (MiB) and threads of a process, for before/after lines in test output."""
    process = psutil.Process(pid)
    return {
        "fds": process.num_fds(),
        "rss_mib": round(process.memory_info().rss / 2**20, 1),
        "threads": process.num_threads(),
    }


class ReadyPoller:
    """GET /node/ready on one keep-alive connection, timing every request."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self._host, self._port = host, port
        self._conn: http.client.HTTPConnection | None = None
        self.latencies: list[float] = []

    def get(self, method: str = "GET") -> tuple[int, dict[str, Any] | None]:
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=5)
            started = time.perf_counter()
            try:
                self._conn.request(method, "/node/ready")
                response = self._conn.getresponse()
                raw = response.read()
            except (ConnectionError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
                continue
            self.latencies.append(time.perf_counter() - started)
            return response.status, json.loads(raw) if raw else None
        raise AssertionError("unreachable")

    def until(self, status: int, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            got, body = self.get()
            if got == status:
                assert body is not None
                return body
            assert time.monotonic() < deadline, f"still {got} after {within}s: {body}"
            time.sleep(0.02)

    def until_condition(self, name: str, ok: bool, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            _, body = self.get()
            assert body is not None
            if any(c["name"] == name and c["ok"] is ok for c in body["conditions"]):
                return body
            assert time.monotonic() < deadline, f"{name} not ok={ok} after {within}s: {body}"
            time.sleep(0.02)

    def sample(self, seconds: float, expect: int) -> None:
        """Poll back to back for `seconds`; every answer must be `expect`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            got, body = self.get()
            assert got == expect, body
            time.sleep(0.005)

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def summary(self) -> str:
        ordered = sorted(self.latencies)
        if not ordered:
            return "no requests"
        p50 = ordered[len(ordered) // 2]
        return (f"{len(ordered)} requests, p50 {p50 * 1000:.2f} ms, "
                f"p99 {self.p99() * 1000:.2f} ms, max {ordered[-1] * 1000:.2f} ms")


def agent_check(port: int, host: str = "127.0.0.1") -> str:
    """What the agent-check listener answers, as HAProxy reads it: one line, then EOF."""
    with socket.create_connection((host, port), timeout=5) as sock:
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode()


class HAProxy:
    """A real haproxy in the foreground (-db) on loopback, stopped by its PID."""

    def __init__(self, binary: str, workdir: Path, config: str) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        # A short private directory: a unix socket path must fit in 108 bytes.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="hap-"))
        self.stats_socket = self._socket_dir / "stats.sock"
        self.config_file = workdir / "haproxy.cfg"
        self.config_file.write_text(config.replace("@STATS@", str(self.stats_socket)))
        checked = subprocess.run([binary, "-c", "-f", str(self.config_file)],
                                 capture_output=True, text=True, check=False)
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy -c failed:\n{checked.stdout}{checked.stderr}")
        self.log = (workdir / "haproxy.log").open("wb")
        self.proc = subprocess.Popen(
            [binary, "-db", "-f", str(self.config_file)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.stats_socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start: {self.output()}")
            time.sleep(0.02)

    def output(self) -> str:
        self.log.flush()
        return (self.workdir / "haproxy.log").read_text(errors="replace")[-4000:]

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self, backend: str) -> dict[str, dict[str, str]]:
        """`show stat` rows of the backend's servers by name (status, weight, stot ...)."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: row for row in rows
            if row["pxname"] == backend and row["svname"] not in {"FRONTEND", "BACKEND"}
        }

    def wait_server(self, backend: str, server: str, within: float, **want: str) -> dict[str, str]:
        """Poll `show stat` until the server's columns match (`"DOWN*"`: a prefix)."""
        deadline = time.monotonic() + within
        while True:
            row = self.servers(backend)[server]
            if all(_matches(row[key], value) for key, value in want.items()):
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"{server}: wanted {want}, have status={row['status']} "
                                     f"weight={row['weight']} check={row.get('check_desc')} "
                                     f"agent={row.get('agent_status')} "
                                     f"{row.get('agent_desc')}: {row.get('last_agt')}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self._socket_dir, ignore_errors=True)


def _matches(have: str, want: str) -> bool:
    if want.endswith("*"):
        return have.startswith(want[:-1])
    return have == want
