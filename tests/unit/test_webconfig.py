"""The exporter-toolkit web config: parsing, errors with key paths, reload keeping the old one."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from mongooseim_agent.webauth import TokenBucket, parse_basic_auth
from mongooseim_agent.webconfig import (
    OPEN,
    WebConfig,
    WebConfigError,
    WebConfigFile,
    WebConfigSource,
    build_ssl_context,
    parse_go_duration,
    parse_web_config,
)
from tests.support.certs import issue, make_ca
from tests.support.require import require_binary

HASH = "$2b$04$" + "a" * 53


def _error(text: str) -> str:
    with pytest.raises(WebConfigError) as caught:
        parse_web_config(text, "web.yml")
    return str(caught.value)


def test_node_exporter_style_file_parses() -> None:
    """A file written for node_exporter is accepted as it is."""
    config = parse_web_config(
        "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
        "  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
        "  curve_preferences: [X25519, CurveP256]\n"
        "http_server_config:\n  http2: false\n  headers:\n"
        "    Strict-Transport-Security: max-age=31536000\n"
        f"basic_auth_users:\n  prometheus: '{HASH}'\n"
        "rate_limit:\n  burst: 10\n  interval: 1s\n"
    )
    assert config.tls_server_config.enabled
    assert config.tls_server_config.files() == ("a.crt", "a.key", "ca.crt")
    assert config.basic_auth_users == {"prometheus": HASH}
    assert config.rate_limit.interval_seconds == 1.0


def test_empty_file_means_plain_http_without_auth() -> None:
    """No keys: no TLS, no users, as the toolkit."""
    config = parse_web_config("")
    assert not config.tls_server_config.enabled and not config.basic_auth_users


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tls_server_config:\n  cert_flie: a\n",
         "tls_server_config.cert_flie: unknown key; did you mean 'cert_file'?"),
        ("basic_auth_user:\n  a: b\n", "basic_auth_user: unknown key"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Always\n",
         "tls_server_config.client_auth_type: invalid value 'Always'"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n",
         "tls_server_config.min_version: unknown TLS version 'TLS14'"),
        ("tls_server_config:\n  cert_file: a\n", "missing one of key or key_file"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
         "client CAs have been configured without a client_auth_type"),
        ("http_server_config:\n  headers:\n    Server: x\n",
         "http_server_config.headers: HTTP header 'Server' can not be configured"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
         "invalid value for X-Frame-Options"),
        ("rate_limit:\n  interval: soon\n", "rate_limit.interval: expected a duration"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("- a\n", "expected a mapping at the top level"),
    ],
)
def test_bad_files_are_refused_naming_the_key(text: str, expected: str) -> None:
    """Every error names its key path (or the YAML problem)."""
    assert expected in _error(text)


def test_password_hashes_never_appear_in_errors() -> None:
    """A bad basic_auth_users entry names the user, never the value."""
    message = _error("basic_auth_users:\n  admin: plaintext-password\n")
    assert "basic_auth_users.admin: not a bcrypt hash" in message
    assert "plaintext-password" not in message


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("250ms", 0.25), ("1m30s", 90.0), ("0s", 0.0)]
)
def test_go_durations(text: str, seconds: float) -> None:
    """rate_limit.interval takes Go's duration syntax."""
    assert parse_go_duration(text) == seconds


def test_basic_auth_header_parsing() -> None:
    """Go's BasicAuth: case-insensitive scheme, password may contain colons."""
    assert parse_basic_auth("Basic dTpwOnc=") == ("u", b"p:w")
    assert parse_basic_auth("basic dTpwOnc=") == ("u", b"p:w")
    assert parse_basic_auth("Bearer x") is None
    assert parse_basic_auth("Basic !!!") is None
    assert parse_basic_auth("Basic dXNlcg==") is None  # no colon


def test_token_bucket_allows_burst_then_one_per_interval() -> None:
    """golang.org/x/time/rate semantics, on a fake clock."""
    now = [0.0]
    bucket = TokenBucket(2, 1.0, lambda: now[0])
    assert [bucket.allow() for _ in range(3)] == [True, True, False]
    now[0] = 1.0
    assert bucket.allow() and not bucket.allow()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_binary("openssl")
    root = tmp_path_factory.mktemp("pki")
    ca = make_ca(root)
    issue(ca, root, "server", server=True)
    return root


@pytest.mark.parametrize(
    ("auth", "mode"),
    [
        ("NoClientCert", ssl.CERT_NONE),
        ("RequestClientCert", ssl.CERT_OPTIONAL),
        ("RequireAnyClientCert", ssl.CERT_REQUIRED),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_each_client_auth_type_builds_a_context(
    pki: Path, auth: str, mode: ssl.VerifyMode
) -> None:
    """The five values map onto OpenSSL's verify modes; relative paths use the file's dir."""
    ca = "  client_ca_file: test-ca.crt\n" if auth != "NoClientCert" else ""
    parsed = parse_web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"  client_auth_type: {auth}\n{ca}  curve_preferences: [X25519]\n"
    )
    context = build_ssl_context(parsed.tls_server_config, pki, "web.yml")
    assert context.verify_mode == mode
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_reload_keeps_the_running_config_when_the_new_one_is_bad(tmp_path: Path) -> None:
    """A change that fails to load is refused once (until the file changes again)."""
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  a: '{HASH}'\n")
    loads: list[str] = []

    def loader(p: Path) -> WebConfig:
        loads.append(p.read_text())
        return WebConfig(parse_web_config(p.read_text()), None, HASH.encode())

    source = WebConfigSource(path, loader=loader)
    first = source.load()
    assert source.current() is first and len(loads) == 1
    path.write_text("basic_auth_users: [\n")
    assert source.current() is first and not source.reload_ok
    assert source.current() is first and len(loads) == 2
    path.write_text(f"basic_auth_users:\n  b: '{HASH}'\n")
    assert set(source.current().users) == {"b"} and source.reload_ok


def test_turning_tls_on_needs_a_restart(tmp_path: Path) -> None:
    """A plain-HTTP agent refuses a reload that would add TLS."""
    path = tmp_path / "web.yml"
    path.write_text("")
    tls = WebConfig(WebConfigFile(), ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    source = WebConfigSource(path, loader=lambda p: OPEN if not p.read_text() else tls)
    source.load()
    path.write_text("tls_server_config: {}\n")
    assert source.current() is OPEN and not source.reload_ok
