"""The [audit] section: defaults, scaling keys, and errors naming the key path."""

import pytest

from mongooseim_agent.config import ConfigError, parse_config


def test_audit_defaults() -> None:
    """Every five minutes, the guide's sizing, TLS read from mongooseim.toml."""
    audit = parse_config({}).audit
    assert audit.interval == 300 and audit.timeout == 30
    assert audit.expected_connections is None and audit.tls is None
    assert audit.measure_port_memory is True


def test_audit_keys() -> None:
    """Durations with units; the expected load, TLS, service user and unit."""
    audit = parse_config({"audit": {"interval": "10m", "expected_connections": 50000,
                                    "tls": True, "user": "mongooseim",
                                    "unit": "mongooseim@a.service"}}).audit
    assert audit.interval == 600 and audit.expected_connections == 50000
    assert audit.unit == "mongooseim@a.service"


@pytest.mark.parametrize(("section", "message"), [
    ({"expected_connections": 0}, "audit.expected_connections"),
    ({"unit": "mongooseim"}, "audit.unit: expected a systemd service name"),
    ({"user": "two words"}, "audit.user: expected a user name"),
    ({"interval": "1m", "timeout": "2m"}, "audit.timeout: must not exceed interval (60s)"),
    ({"expected_conections": 5},
     "audit.expected_conections: unknown key; did you mean 'expected_connections'?"),
])
def test_audit_errors_name_the_key(section: dict[str, object], message: str) -> None:
    """Bad values are refused with the key path and the value."""
    with pytest.raises(ConfigError, match="audit") as caught:
        parse_config({"audit": section})
    assert message in str(caught.value)
