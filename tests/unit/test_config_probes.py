"""[probes] and [vm] configuration: defaults, validation naming the bad entry."""

from __future__ import annotations

import pytest

from mongooseim_agent.config import ConfigError, parse_config, parse_host_port


def test_defaults() -> None:
    """Listeners default to c2s 5222, s2s 5269, http 5280 on 127.0.0.1; epmd 4369."""
    config = parse_config({})
    assert config.probes.listeners == {
        "c2s": "127.0.0.1:5222", "s2s": "127.0.0.1:5269", "http": "127.0.0.1:5280"}
    assert config.probes.epmd_port == 4369
    assert config.probes.peers == ()
    assert config.vm.warning_ratio < config.vm.critical_ratio


def test_values() -> None:
    """Durations, peers and listeners as an operator writes them."""
    config = parse_config({"probes": {
        "interval": "30s", "timeout": "500ms", "peers": ["mongooseim@node2"],
        "listeners": {"c2s": "10.0.0.1:5222", "admin": "[::1]:5551"}}})
    assert config.probes.interval == 30
    assert config.probes.timeout == 0.5
    assert config.probes.peers == ("mongooseim@node2",)
    assert parse_host_port(config.probes.listeners["admin"]) == ("::1", 5551)


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        ({"listeners": {"c2s": "localhost"}},
         "probes.listeners: listener 'c2s': expected host:port"),
        ({"listeners": {"s2s": "h:99999"}}, "listener 's2s': port out of range"),
        ({"peers": ["node2"]}, "probes.peers: peer 'node2'"),
        ({"timeout": "20s", "interval": "10s"}, "must not exceed interval"),
        ({"epmd_port": 70000}, "probes.epmd_port"),
        ({"listener": {}}, "did you mean 'listeners'"),
    ],
)
def test_errors_name_the_entry(probes: dict[str, object], message: str) -> None:
    """Each bad entry is named in the error."""
    with pytest.raises(ConfigError, match=message):
        parse_config({"probes": probes})


def test_vm_ratios_ordered() -> None:
    """warning_ratio above critical_ratio is refused."""
    with pytest.raises(ConfigError, match="warning_ratio"):
        parse_config({"vm": {"warning_ratio": 0.95, "critical_ratio": 0.9}})
