"""[cluster] and the [probes] peer caps: defaults, and errors that name the key and value."""

from __future__ import annotations

import re

import pytest

from mongooseim_agent.config import ConfigError, parse_config


def test_defaults() -> None:
    """auto source, one running member needed, no GraphQL until a URL is given, 64 peers."""
    config = parse_config({})
    assert config.cluster.source == "auto"
    assert config.cluster.min_running_members == 1
    assert config.cluster.graphql_url is None
    assert config.cluster.graphql_host == "localhost"
    assert config.probes.max_peers == 64
    assert config.probes.max_concurrency == 32


@pytest.mark.parametrize(("cluster", "message"), [
    ({"source": "etcd"}, "cluster.source"),
    ({"expected_members": ["nohost"]}, "cluster.expected_members: member 'nohost'"),
    ({"graphql_url": "ftp://x"}, "cluster.graphql_url"),
    ({"graphql_url": "http://admin:pw@h/api"}, "cluster.graphql_url"),
    ({"source": "graphql"}, "needs graphql_url"),
    ({"graphql_user": "admin"}, "graphql_password_file"),
    ({"min_running_members": -1}, "cluster.min_running_members"),
    ({"interval": "1s", "timeout": "2s"}, "cluster.timeout"),
    ({"graphql_host": "a b"}, "cluster.graphql_host"),
    ({"sorce": "dist"}, "did you mean 'source'"),
])
def test_errors_name_the_key(cluster: dict[str, object], message: str) -> None:
    """Each bad value is refused with its key path."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"cluster": cluster})


def test_password_never_in_errors() -> None:
    """A URL with credentials is refused without echoing them."""
    with pytest.raises(ConfigError) as refused:
        parse_config({"cluster": {"graphql_url": "http://admin:hunter2@h/api"}})
    assert "hunter2" not in str(refused.value)


def test_peer_caps_bounded() -> None:
    """max_peers and max_concurrency have sane bounds."""
    with pytest.raises(ConfigError, match=r"probes\.max_concurrency"):
        parse_config({"probes": {"max_concurrency": 0}})
    with pytest.raises(ConfigError, match=r"probes\.max_peers"):
        parse_config({"probes": {"max_peers": 100000}})
