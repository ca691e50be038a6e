"""Drain state: a marker file under state_dir, so it survives agent restarts."""

from __future__ import annotations

import os
from pathlib import Path

MARKER = "drained"


def marker(state_dir: Path) -> Path:
    return state_dir / MARKER


def is_drained(state_dir: Path) -> bool:
    return marker(state_dir).exists()


def drain(state_dir: Path, reason: str) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{MARKER}.tmp"
    tmp.write_text(reason + "\n")
    os.replace(tmp, marker(state_dir))


def undrain(state_dir: Path) -> bool:
    """Remove the marker; False when the node was not drained."""
    try:
        marker(state_dir).unlink()
    except FileNotFoundError:
        return False
    return True
