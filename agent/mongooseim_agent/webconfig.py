"""The web config file (`--web.config.file`), as the Prometheus exporter-toolkit reads it.

The same YAML a node_exporter takes works here: `tls_server_config`, `http_server_config`,
`basic_auth_users`, `rate_limit`. Unknown keys and duplicate keys are errors naming the key
path; relative file paths are taken against the file's own directory. Error texts never
quote a password hash or an inline key.

`WebConfigSource` re-reads the file, and the certificate, key and CA files it names, when any
of them changes: each new connection asks it for the current config, so a rotated
certificate is served on the next TLS handshake. A change that does not load is refused and
the running config kept, as the toolkit does.
"""

from __future__ import annotations

import difflib
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import bcrypt
import structlog
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from mongooseim_agent import tlsnative

MAX_FILE_BYTES = 1024 * 1024

ClientAuthType = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
_CLIENT_AUTH_ALIASES = {"": "NoClientCert", "RequireClientCert": "RequireAnyClientCert"}

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's names (crypto/tls) -> OpenSSL's. TLS 1.3 suites are not configurable in Go either:
# they are accepted and change nothing.
_CIPHERS: dict[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}
_CURVES = {"CurveP256": "P-256", "CurveP384": "P-384", "CurveP521": "P-521", "X25519": "X25519"}

# The toolkit's allowed response headers; None: any value.
ALLOWED_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SECRET_PARTS = frozenset({"basic_auth_users", "key"})


class WebConfigError(Exception):
    """A web config that must not be used; str() is the operator-facing text."""


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration such as "1s", "1m30s", "250ms"."""
    pos, total = 0, 0.0
    for match in _GO_DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration such as '1s' or '250ms', got {text!r}")
    return total


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class TLSServerConfig(_Model):
    cert_file: str = ""
    key_file: str = ""
    cert: str = ""
    key: str = ""
    client_auth_type: str = ""
    client_ca_file: str = ""
    client_ca: str = ""
    client_allowed_sans: tuple[str, ...] | None = None
    cipher_suites: tuple[str, ...] = ()
    curve_preferences: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True

    @field_validator("client_auth_type")
    @classmethod
    def _auth(cls, value: str) -> str:
        value = _CLIENT_AUTH_ALIASES.get(value, value)
        if value not in ClientAuthType.__args__:  # type: ignore[attr-defined]
            raise ValueError(
                f"invalid value {value!r}; expected one of "
                + ", ".join(ClientAuthType.__args__)  # type: ignore[attr-defined]
            )
        return value

    @field_validator("min_version", "max_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value not in _TLS_VERSIONS:
            raise ValueError(
                f"unknown TLS version {value!r}; expected one of {list(_TLS_VERSIONS)}"
            )
        return value

    @field_validator("cipher_suites")
    @classmethod
    def _ciphers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in _CIPHERS:
                raise ValueError(f"unknown or unsupported cipher {name!r}")
        return value

    @field_validator("curve_preferences")
    @classmethod
    def _curves(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in _CURVES:
                raise ValueError(f"unknown curve {name!r}; expected one of {list(_CURVES)}")
        return value

    @property
    def enabled(self) -> bool:
        """The toolkit's IsEnabled: any TLS key set turns TLS on."""
        return any(
            (self.cert_file, self.cert, self.key_file, self.key, self.client_ca_file,
             self.client_ca, self.client_auth_type)
        )

    def files(self) -> tuple[str, ...]:
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p)


class HTTPServerConfig(_Model):
    # Accepted for compatibility; the agent serves HTTP/1.1 only.
    http2: bool = True
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if name not in ALLOWED_HEADERS:
                raise ValueError(
                    f"HTTP header {name!r} can not be configured "
                    f"(allowed: {', '.join(ALLOWED_HEADERS)})"
                )
            allowed = ALLOWED_HEADERS[name]
            if allowed is not None and text not in allowed:
                raise ValueError(
                    f"invalid value for {name}: expected one of {allowed}, got {text!r}"
                )
        return value


class RateLimitConfig(_Model):
    burst: int = Field(default=0, ge=0)
    interval: str = "0s"

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        parse_go_duration(value)
        return value

    @property
    def interval_seconds(self) -> float:
        return parse_go_duration(self.interval)


def _bcrypt_hash(value: str) -> str:
    if bcrypt_cost(value) is None:
        raise ValueError("not a bcrypt hash (make one with htpasswd -nBC 10 USER)")
    return value


BcryptHash = Annotated[str, AfterValidator(_bcrypt_hash)]


class WebConfigFile(_Model):
    tls_server_config: TLSServerConfig = TLSServerConfig()
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    basic_auth_users: dict[str, BcryptHash] = Field(default_factory=dict)


def bcrypt_cost(hashed: str) -> int | None:
    match = re.fullmatch(r"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}", hashed)
    if match is None or not 4 <= int(match.group(1)) <= 31:
        return None
    return int(match.group(1))


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, as Go's yaml.UnmarshalStrict does."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _describe(error: Any) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        model: Any = WebConfigFile
        for part in loc[:-1]:
            field_info = model.model_fields.get(part)
            model = field_info.annotation if field_info is not None else None
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                return f"{key}: unknown key"
        guess = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
        return f"{key}: unknown key" + (f"; did you mean '{guess[0]}'?" if guess else "")
    message = str(error["msg"]).removeprefix("Value error, ")
    if _SECRET_PARTS & set(loc) or "input" not in error or isinstance(error["input"], dict):
        return f"{key}: {message}"
    return f"{key}: {message} (got {error['input']!r})"


def parse_web_config(text: str, source: str = "web config") -> WebConfigFile:
    """Validate the YAML text; WebConfigError lists every bad key with its path."""
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{source}: invalid YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise WebConfigError(f"{source}: expected a mapping at the top level")
    try:
        config = WebConfigFile.model_validate(document)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise WebConfigError(f"{source}: " + "\n  ".join(lines)) from None
    tls = config.tls_server_config
    if tls.enabled:
        if not (tls.cert_file or tls.cert):
            raise WebConfigError(f"{source}: tls_server_config: missing one of cert or cert_file")
        if not (tls.key_file or tls.key):
            raise WebConfigError(f"{source}: tls_server_config: missing one of key or key_file")
        no_client_cert = tls.client_auth_type in ("", "NoClientCert")
        if (tls.client_ca_file or tls.client_ca) and no_client_cert:
            raise WebConfigError(
                f"{source}: tls_server_config.client_ca_file: client CAs have been configured "
                "without a client_auth_type"
            )
        if tls.client_allowed_sans is not None and tls.client_auth_type != (
            "RequireAndVerifyClientCert"
        ):
            raise WebConfigError(
                f"{source}: tls_server_config.client_allowed_sans: needs client_auth_type "
                "RequireAndVerifyClientCert here (an unverified certificate's names are not "
                "read)"
            )
        if _TLS_VERSIONS[tls.min_version] > _TLS_VERSIONS[tls.max_version]:
            raise WebConfigError(
                f"{source}: tls_server_config.min_version {tls.min_version} is above "
                f"max_version {tls.max_version}"
            )
    return config


def _join(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def _read_text(path: Path, key: str, source: str) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise WebConfigError(f"{source}: {key} {path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise WebConfigError(f"{source}: {key} {path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise WebConfigError(f"{source}: {key} {path}: not UTF-8 text") from None


def _load_chain(
    context: ssl.SSLContext, cert_pem: str, key_pem: str, names: str, source: str
) -> None:
    """Load a certificate and key given as text, through anonymous memory files."""
    cert_fd = os.memfd_create("web-cert", os.MFD_CLOEXEC)
    key_fd = os.memfd_create("web-key", os.MFD_CLOEXEC)
    try:
        os.write(cert_fd, cert_pem.encode())
        os.write(key_fd, key_pem.encode())
        context.load_cert_chain(f"/proc/self/fd/{cert_fd}", f"/proc/self/fd/{key_fd}")
    except ssl.SSLError as exc:
        reason = exc.reason or exc.strerror or "not a PEM certificate and matching key"
        raise WebConfigError(
            f"{source}: tls_server_config: cannot load the certificate and key ({names}): "
            f"{reason}"
        ) from None
    finally:
        os.close(cert_fd)
        os.close(key_fd)


def build_ssl_context(tls: TLSServerConfig, base: Path, source: str) -> ssl.SSLContext:
    """A server SSLContext for `tls`; blocking file IO."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    ciphers = [c for c in (_CIPHERS[name] for name in tls.cipher_suites) if c]
    if ciphers:
        context.set_ciphers(":".join(ciphers))
    cert = tls.cert or _read_text(_join(base, tls.cert_file), "cert_file", source)
    key = tls.key or _read_text(_join(base, tls.key_file), "key_file", source)
    names = ", ".join(
        f"{key_name} {_join(base, value)}"
        for key_name, value in (("cert_file", tls.cert_file), ("key_file", tls.key_file))
        if value
    ) or "inline cert and key"
    _load_chain(context, cert, key, names, source)
    auth = tls.client_auth_type or "NoClientCert"
    if tls.client_ca_file or tls.client_ca:
        cadata = tls.client_ca or _read_text(
            _join(base, tls.client_ca_file), "client_ca_file", source
        )
        try:
            context.load_verify_locations(cadata=cadata)
        except ssl.SSLError as exc:
            raise WebConfigError(
                f"{source}: tls_server_config.client_ca_file: no CA certificate loaded: "
                f"{exc.reason}"
            ) from None
    elif auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    try:
        if auth == "RequestClientCert":
            tlsnative.request_unverified_client_cert(context, require=False)
        elif auth == "RequireAnyClientCert":
            tlsnative.request_unverified_client_cert(context, require=True)
        elif auth == "VerifyClientCertIfGiven":
            context.verify_mode = ssl.CERT_OPTIONAL
        elif auth == "RequireAndVerifyClientCert":
            context.verify_mode = ssl.CERT_REQUIRED
        if tls.curve_preferences:
            tlsnative.set_groups(context, [_CURVES[c] for c in tls.curve_preferences])
    except tlsnative.NativeTLSError as exc:
        raise WebConfigError(f"{source}: tls_server_config: {exc}") from None
    return context


def allowed_sans_match(peercert: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> bool:
    """The toolkit's client_allowed_sans: any DNS, email, IP or URI name in the list."""
    if not peercert:
        return False
    return any(name in allowed for _kind, name in peercert.get("subjectAltName", ()))


@dataclass(frozen=True)
class WebConfig:
    """A loaded web config: the parsed file and, with TLS, its SSL context."""

    file: WebConfigFile
    ssl_context: ssl.SSLContext | None = None
    # The highest-cost hash, checked against for unknown users so they cost the same time.
    decoy_hash: bytes | None = None

    @property
    def users(self) -> dict[str, str]:
        return self.file.basic_auth_users

    @property
    def headers(self) -> dict[str, str]:
        return self.file.http_server_config.headers

    @property
    def allowed_sans(self) -> tuple[str, ...] | None:
        return self.file.tls_server_config.client_allowed_sans


OPEN = WebConfig(WebConfigFile())


def load_web_config(path: Path) -> WebConfig:
    """Read and check `path` and every file it names (blocking IO)."""
    source = str(path)
    text = _read_text(path, "web config", source)
    parsed = parse_web_config(text, source)
    context = None
    if parsed.tls_server_config.enabled:
        context = build_ssl_context(parsed.tls_server_config, path.parent, source)
    decoy = None
    if parsed.basic_auth_users:
        decoy = max(
            parsed.basic_auth_users.values(), key=lambda h: bcrypt_cost(h) or 0
        ).encode()
        bcrypt.checkpw(b"", decoy)  # proves the hash is one bcrypt can use
    return WebConfig(parsed, context, decoy)


Signature = tuple[tuple[int, int, int, int] | None, ...]


def _signature(paths: list[Path]) -> Signature:
    sig: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            sig.append(None)
            continue
        sig.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(sig)


@dataclass
class WebConfigSource:
    """The current web config, re-read when the file or a file it names changes.

    `current()` costs a few stat() calls; it is asked on every new connection and request,
    as the toolkit re-reads its file on every handshake.
    """

    path: Path | None
    loader: Callable[[Path], WebConfig] = load_web_config
    stat_paths: Callable[[list[Path]], Signature] = _signature
    # Called after every reload attempt (cached pages that show its outcome are dropped).
    on_change: Callable[[], None] = lambda: None
    reload_ok: bool = True
    reloads_refused: int = 0
    _config: WebConfig = OPEN
    _watched: list[Path] = field(default_factory=list)
    _signature: Signature = ()
    _loaded: bool = False

    def __post_init__(self) -> None:
        self._log = structlog.get_logger("webconfig")

    def load(self) -> WebConfig:
        """The first load: an error here stops the agent (WebConfigError)."""
        if self.path is not None:
            self._watched = [self.path]
            self._config = self._read()
        return self._config

    def _read(self) -> WebConfig:
        # Stat before reading: a change racing the read shows as a change next time.
        before = self.stat_paths(self._watched)
        path = self._require_path()
        config = self.loader(path)
        if (config.ssl_context is not None) != self.tls and self._loaded:
            raise WebConfigError(f"{path}: turning TLS on or off needs a restart of the agent")
        self._loaded = True
        watched = self._paths(config)
        self._signature = before if watched == self._watched else self.stat_paths(watched)
        self._watched = watched
        return config

    @property
    def tls(self) -> bool:
        return self._config.ssl_context is not None

    def _require_path(self) -> Path:
        if self.path is None:
            raise WebConfigError("no web config file")
        return self.path

    def _paths(self, config: WebConfig) -> list[Path]:
        path = self._require_path()
        return [path, *(_join(path.parent, f) for f in config.file.tls_server_config.files())]

    def current(self) -> WebConfig:
        if self.path is None:
            return self._config
        signature = self.stat_paths(self._watched)
        if signature == self._signature:
            return self._config
        self._signature = signature
        try:
            config = self._read()
        except WebConfigError as exc:
            self.reload_ok = False
            self.reloads_refused += 1
            self.on_change()
            self._log.error("web config reload refused; keeping the running one", error=str(exc))
            return self._config
        self._config = config
        self.reload_ok = True
        self.on_change()
        self._log.info("web config reloaded", tls=self.tls, users=len(config.users))
        return config
