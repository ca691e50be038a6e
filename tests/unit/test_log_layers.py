"""logwatch/ sits below the collectors: it imports nothing of collectors, commands, config,
the daemon or the runner (it may use mongooseim/ knowledge and the standard library)."""

from __future__ import annotations

import ast
from pathlib import Path

import mongooseim_agent.logwatch

ABOVE = ("collectors", "commands", "config", "daemon", "runner", "cli", "http", "store")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_logwatch_imports_nothing_above_it() -> None:
    """No module under logwatch/ imports a layer above it."""
    package = Path(mongooseim_agent.logwatch.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) > 5
    offending = {
        f"{module.name}: {name}"
        for module in modules for name in _imports(module)
        if any(name == f"mongooseim_agent.{layer}"
               or name.startswith(f"mongooseim_agent.{layer}.") for layer in ABOVE)
    }
    assert offending == set()
