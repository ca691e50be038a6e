"""Session-wide real epmd and Erlang nodes for the epmd, distribution and probe tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mongooseim_agent.erlang.secret import Secret
from tests.integration.erlang.erlnodes import Epmd, ErlNode, NodeSpec, free_port, new_cookie, unique
from tests.support.require import require_binary


@pytest.fixture(scope="session")
def erl_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("erlang")


@pytest.fixture(scope="session")
def epmd(erl_workdir: Path) -> Iterator[Epmd]:
    require_binary("epmd")
    daemon = Epmd(erl_workdir)
    yield daemon
    daemon.stop()


def _start(spec: NodeSpec, epmd: Epmd, workdir: Path) -> ErlNode:
    require_binary("erl")
    return ErlNode(spec, epmd, workdir)


@pytest.fixture(scope="session")
def cluster_cookie() -> Secret:
    return new_cookie()


@pytest.fixture(scope="session")
def node_a(epmd: Epmd, erl_workdir: Path, cluster_cookie: Secret) -> Iterator[ErlNode]:
    """-sname node with -setcookie and a one-port inet_dist range."""
    port = free_port()
    node = _start(NodeSpec(unique("a"), cluster_cookie, dist_range=(port, port)), epmd,
                  erl_workdir)
    yield node
    node.stop()


@pytest.fixture(scope="session")
def node_a2(
    epmd: Epmd, erl_workdir: Path, cluster_cookie: Secret, node_a: ErlNode
) -> Iterator[ErlNode]:
    """A second -sname node with the same cookie, connected to node_a (a cluster peer)."""
    node = _start(NodeSpec(unique("a2"), cluster_cookie), epmd, erl_workdir)
    assert node.eval(f"net_kernel:connect_node('{node_a.name}').") == "true"
    yield node
    node.stop()


@pytest.fixture(scope="session")
def node_b(epmd: Epmd, erl_workdir: Path) -> Iterator[ErlNode]:
    """-name NAME@127.0.0.1 node whose cookie comes from HOME/.erlang.cookie."""
    node = _start(NodeSpec(unique("b"), None, longnames=True, home_cookie=new_cookie()), epmd,
                  erl_workdir)
    yield node
    node.stop()


@pytest.fixture(scope="session")
def node_c(epmd: Epmd, erl_workdir: Path) -> Iterator[ErlNode]:
    """-sname node with a cookie of its own: a peer that rejects the cluster's cookie."""
    node = _start(NodeSpec(unique("c"), new_cookie()), epmd, erl_workdir)
    yield node
    node.stop()


@pytest.fixture
def fresh_node(epmd: Epmd, erl_workdir: Path, cluster_cookie: Secret) -> Iterator[ErlNode]:
    """A node for one test only: for tests that freeze it, stop it, or count its atoms."""
    node = _start(NodeSpec(unique("f"), cluster_cookie), epmd, erl_workdir)
    yield node
    node.stop()
