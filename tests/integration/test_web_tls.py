"""TLS, mutual TLS, basic auth and certificate rotation through --web.config.file, for real.

Certificates are made by openssl at test time; the agent runs as a subprocess; a real
Prometheus scrapes it over TLS with basic auth.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.support.agentproc import AgentProcess, parse_metrics, value
from tests.support.certs import Pair, issue, make_ca
from tests.support.mimnode import free_port
from tests.support.require import require_binary

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


class Certs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = make_ca(root / "ca")
        self.server = issue(self.ca, root, "server", server=True)
        self.server2 = issue(self.ca, root / "ca", "server2", server=True)
        self.client = issue(self.ca, root / "ca", "scraper", server=False)
        rogue_ca = make_ca(root / "rogue", "rogue-ca")
        self.rogue_client = issue(rogue_ca, root / "rogue", "intruder", server=False)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    require_binary("openssl")
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()


def _agent_config(directory: Path, extra: str = "") -> Path:
    path = directory / "agent.toml"
    path.write_text(
        f'[agent]\nstate_dir = "{directory / "state"}"\n'
        '[node]\nname = "absent@nowhere"\n[probes]\nlisteners = {}\n' + extra
    )
    return path


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def _start(agents: list[AgentProcess], directory: Path, web_config: Path,
           extra: str = "") -> AgentProcess:
    agent = AgentProcess(_agent_config(directory, extra),
                         extra_args=["--web.config.file", str(web_config)])
    agents.append(agent)
    return agent


def _context(certs: Certs, client: Pair | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca.cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def _get(port: int, path: str, context: ssl.SSLContext,
         auth: tuple[str, str] | None = None) -> tuple[int, dict[str, str], str, bytes]:
    """(status, headers, body, the server certificate in DER) over TLS."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        headers = {}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        assert conn.sock is not None
        peer = conn.sock.getpeercert(binary_form=True) or b""
        return response.status, dict(response.headers), response.read().decode(), peer
    finally:
        conn.close()


def _bcrypt_seconds(hashed: str) -> float:
    """CPU time of one check: what scheduling on a busy machine cannot shrink or stretch."""
    started = time.thread_time()
    bcrypt.checkpw(b"not the password", hashed.encode())
    return time.thread_time() - started


def _poll_counter(port: int, context: ssl.SSLContext, auth: tuple[str, str] | None,
                  name: str, at_least: float, **labels: str) -> float:
    """The counter once it reaches `at_least` (or its value after 10 s): /metrics is served
    from a cache for up to a second, and the server may count a failed handshake after the
    client has given up on it."""
    deadline = time.monotonic() + 10
    while True:
        found = value(parse_metrics(_get(port, "/metrics", context, auth)[2]), name, **labels)
        if (found or 0) >= at_least or time.monotonic() > deadline:
            return found or 0
        time.sleep(0.2)


def _der(pair: Pair) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pair.cert.read_text())


def test_scrape_over_tls_with_configured_headers(
    tmp_path: Path, certs: Certs, agents: list[AgentProcess]
) -> None:
    """/metrics over TLS with relative cert paths; headers set; plain HTTP gets no answer."""
    web = certs.root / "web-tls.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  min_version: TLS12\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        "    X-Content-Type-Options: nosniff\n"
    )
    agent = _start(agents, tmp_path, web)
    status, headers, body, peer = _get(agent.port, "/metrics", _context(certs))
    assert status == 200
    assert 'mongooseim_agent_build_info{version="' in body
    assert headers["X-Frame-Options"] == "deny"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert peer == _der(certs.server)
    with pytest.raises((http.client.HTTPException, OSError)):
        plain = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=5)
        plain.request("GET", "/metrics")
        plain.getresponse().read()


def test_mutual_tls_refuses_clients_without_a_trusted_certificate(
    tmp_path: Path, certs: Certs, agents: list[AgentProcess]
) -> None:
    """RequireAndVerifyClientCert: no cert and a foreign CA's cert refused; ours accepted."""
    web = certs.root / "web-mtls.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca/test-ca.crt\n"
    )
    agent = _start(agents, tmp_path, web)
    for client in (None, certs.rogue_client):
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            _get(agent.port, "/metrics", _context(certs, client))
    status, _, body, _ = _get(agent.port, "/metrics", _context(certs, certs.client))
    assert status == 200 and "mongooseim_agent_build_info" in body
    closed = _poll_counter(agent.port, _context(certs, certs.client), None,
                           "mongooseim_agent_http_connections_closed_total", 2,
                           reason="tls_handshake_failed")
    assert closed >= 2


def test_require_any_client_cert_accepts_an_unverified_certificate(
    tmp_path: Path, certs: Certs, agents: list[AgentProcess]
) -> None:
    """RequireAnyClientCert: any certificate will do, none will not."""
    web = certs.root / "web-any.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAnyClientCert\n"
    )
    agent = _start(agents, tmp_path, web)
    assert _get(agent.port, "/-/healthy", _context(certs, certs.rogue_client))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        _get(agent.port, "/-/healthy", _context(certs))


def _timed_status(
    port: int, context: ssl.SSLContext, user: str, password: str
) -> tuple[int, float]:
    started = time.perf_counter()
    status = _get(port, "/metrics", context, (user, password))[0]
    return status, time.perf_counter() - started


def test_basic_auth_refuses_wrong_password_and_unknown_user_alike(
    tmp_path: Path, certs: Certs, agents: list[AgentProcess], password_hash: str
) -> None:
    """401 for a wrong password, an unknown user and no credentials; unknown users cost a
    bcrypt check too; /node/ready exempted only when [load_balancer] says so."""
    web = certs.root / "web-auth.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{password_hash}'\n"
    )
    agent = _start(agents, tmp_path, web, "[load_balancer]\nnode_ready_without_auth = true\n")
    context = _context(certs)
    assert _get(agent.port, "/metrics", context, ("prometheus", PASSWORD))[0] == 200
    status, headers, _, _ = _get(agent.port, "/metrics", context)
    assert status == 401 and headers["WWW-Authenticate"] == "Basic"
    wrong = [_timed_status(agent.port, context, "prometheus", f"guess{i}") for i in range(5)]
    unknown = [_timed_status(agent.port, context, f"nobody{i}", f"guess{i}") for i in range(5)]
    assert {s for s, _ in wrong + unknown} == {401}
    wrong_median = statistics.median(t for _, t in wrong)
    unknown_median = statistics.median(t for _, t in unknown)
    # One bcrypt check of this hash's cost takes this much CPU; load only makes the agent's
    # answers slower, so an unknown user answered faster would have skipped the check.
    check = min(_bcrypt_seconds(password_hash) for _ in range(3))
    print(f"401 median: wrong password {wrong_median * 1000:.1f} ms, "
          f"unknown user {unknown_median * 1000:.1f} ms; one bcrypt check {check * 1000:.1f} ms")
    assert min(t for _, t in unknown) >= 0.7 * check
    assert min(t for _, t in wrong) >= 0.7 * check
    assert _get(agent.port, "/node/ready", context)[0] in (200, 503)
    assert _get(agent.port, "/", context)[0] == 401
    refused = _poll_counter(agent.port, context, ("prometheus", PASSWORD),
                            "mongooseim_agent_http_requests_refused_total", 12,
                            reason="unauthorized")
    assert refused == 12
    assert not any(password_hash in json.dumps(line) for line in agent.all_logs())


def test_rotated_certificate_is_served_on_the_next_handshake(
    tmp_path: Path, certs: Certs, agents: list[AgentProcess]
) -> None:
    """Replace the cert on disk: the next connection gets it; a broken one is refused and
    the last good one kept."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(certs.server.cert, site / "tls.crt")
    shutil.copy(certs.server.key, site / "tls.key")
    web = site / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    agent = _start(agents, tmp_path, web)
    context = _context(certs)
    assert _get(agent.port, "/-/healthy", context)[3] == _der(certs.server)

    for source, name in ((certs.server2.key, "tls.key.new"), (certs.server2.cert, "tls.crt.new")):
        shutil.copy(source, site / name)
    os.replace(site / "tls.key.new", site / "tls.key")
    os.replace(site / "tls.crt.new", site / "tls.crt")
    assert _get(agent.port, "/-/healthy", context)[3] == _der(certs.server2)

    (site / "tls.crt").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    _, _, body, peer = _get(agent.port, "/metrics", context)
    assert peer == _der(certs.server2)
    assert value(parse_metrics(body), "mongooseim_agent_web_config_reload_success") == 0
    refused = agent.wait_log("web config reload refused; keeping the running one")
    assert "tls.crt" in refused["error"]

    shutil.copy(certs.server.cert, site / "tls.crt.new")
    shutil.copy(certs.server.key, site / "tls.key")
    os.replace(site / "tls.crt.new", site / "tls.crt")
    _, _, body, peer = _get(agent.port, "/metrics", context)
    assert peer == _der(certs.server)
    assert value(parse_metrics(body), "mongooseim_agent_web_config_reload_success") == 1


def test_bad_web_config_stops_the_agent_at_start_naming_the_key(tmp_path: Path) -> None:
    """An unknown key is an error with its path, before anything listens."""
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_flie: x.crt\nbasic_auth_users:\n"
                   "  admin: '$2b$10$notarealhash'\n")
    result = subprocess.run(
        [sys.executable, "-m", "mongooseim_agent", "--config", str(_agent_config(tmp_path)),
         "--web.config.file", str(web), "--web.listen-address", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "tls_server_config.cert_flie: unknown key" in result.stderr
    assert "basic_auth_users.admin" in result.stderr
    assert "notarealhash" not in result.stderr


def _prom_query(port: int, expr: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, object]] = json.load(response)["data"]["result"]
        return result


def test_prometheus_scrapes_over_tls_with_basic_auth(
    tmp_path: Path, certs: Certs, agents: list[AgentProcess], password_hash: str
) -> None:
    """A real Prometheus with ca_file and basic_auth: the target is up and its series stored."""
    prometheus = require_binary("prometheus")
    web = certs.root / "web-prom.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{password_hash}'\n"
    )
    agent = _start(agents, tmp_path, web)
    (tmp_path / "password").write_text(PASSWORD)
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: mongooseim-agent\n    scheme: https\n"
        f"    tls_config:\n      ca_file: {certs.ca.cert}\n      server_name: localhost\n"
        f"    basic_auth:\n      username: prometheus\n"
        f"      password_file: {tmp_path / 'password'}\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{agent.port}']\n"
    )
    server = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        up: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            try:
                up = _prom_query(prom_port, 'up{job="mongooseim-agent"} == 1')
            except OSError:
                up = []
            if up:
                break
            time.sleep(0.5)
        assert up, "Prometheus never scraped the agent over TLS with basic auth"
        info = _prom_query(prom_port, "mongooseim_agent_build_info")
        assert info and float(info[0]["value"][1]) == 1  # type: ignore[index]
    finally:
        server.terminate()
        server.wait(20)
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    logs = json.dumps(agent.all_logs())
    assert PASSWORD not in logs and digest not in logs
