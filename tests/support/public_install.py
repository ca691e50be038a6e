"""The agent and its dependencies copied where any user can read them, to run it unprivileged.

The checkout and its .venv may sit in a directory only root can enter (root's home, any
`mktemp -d`), so a process dropped to `nobody` cannot import from them. This copies the
package and the installed distributions it requires (no network, the very versions under
test) into a fresh world-readable directory, run by the base interpreter with PYTHONPATH.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import Distribution, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import mongooseim_agent


@dataclass(frozen=True)
class PublicInstall:
    root: Path
    python: str

    @property
    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.root / "lib"), "PYTHONNOUSERSITE": "1",
                "PYTHONDONTWRITEBYTECODE": "1"}


def _required(name: str) -> Iterator[Distribution]:
    """`name`'s installed runtime requirements, transitively (extras and markers honoured)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        dist = distribution(todo.pop())
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            key = canonicalize_name(req.name)
            if key not in seen:
                seen.add(key)
                todo.append(req.name)
                yield distribution(req.name)


def _copy_distribution(dist: Distribution, lib: Path) -> None:
    base = Path(str(dist.locate_file(""))).resolve()
    for entry in dist.files or ():
        source = Path(str(dist.locate_file(entry))).resolve()
        if base not in source.parents or "__pycache__" in source.parts or not source.is_file():
            continue
        target = lib / source.relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def _open_up(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def make_public_install() -> PublicInstall:
    """A world-readable copy; remove `root` when done."""
    root = Path(tempfile.mkdtemp(prefix="agent-public-"))
    lib = root / "lib"
    package = Path(mongooseim_agent.__file__).resolve().parent
    shutil.copytree(package, lib / "mongooseim_agent",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for dist in _required("mongooseim-agent"):
        _copy_distribution(dist, lib)
    _open_up(root)
    # The interpreter the venv was made from: a venv's bin/ may itself be unreadable.
    python = os.path.realpath(sys.executable)
    return PublicInstall(root, python)
