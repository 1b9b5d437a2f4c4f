"""Fixtures of the gate tests: a project of its own per test (apps, rack, hil.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from projects import empty_project


@pytest.fixture
def gate_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hil project as the current directory: apps/ and an empty rack."""
    root = empty_project(tmp_path, monkeypatch)
    return root
