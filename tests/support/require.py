"""Real components are required: locally a missing one skips, under CI=true it fails."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """Path of `name` on PATH; skip the test when absent, or fail it under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it)"
        if in_ci():
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    return path
