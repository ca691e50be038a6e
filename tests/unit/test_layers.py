"""Dependencies point down: the wire layer and the log watcher import nothing above them."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "agent" / "mongooseim_agent"

ABOVE_LOGWATCH = tuple(
    f"mongooseim_agent.{name}"
    for name in ("collectors", "commands", "daemon", "runner", "http", "cli", "loadbalancer")
)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.append("." * node.level + (node.module or ""))
    return names


def _offending(layer: str, forbidden: Callable[[str], bool]) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(".") or forbidden(name)
    ]


def test_erlang_imports_nothing_of_the_agent() -> None:
    """erlang/ (wire protocols) imports only erlang/: not mongooseim/, not the agent."""
    bad = _offending(
        "erlang",
        lambda name: name.startswith("mongooseim_agent")
        and not name.startswith("mongooseim_agent.erlang"),
    )
    assert not bad, "erlang/ imports the agent:\n" + "\n".join(bad)


def test_logwatch_imports_no_collector() -> None:
    """logwatch/ imports nothing above it (collectors, commands, daemon ...)."""
    bad = _offending("logwatch", lambda name: name.startswith(ABOVE_LOGWATCH))
    assert not bad, "logwatch/ imports from above it:\n" + "\n".join(bad)
