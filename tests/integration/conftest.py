"""Fixtures shared by the integration tests."""

from pathlib import Path

import pytest


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    """An empty log directory, like a release's log/."""
    path = tmp_path / "log"
    path.mkdir()
    return path
