"""Fixtures for the gdb tests: a private state dir and an empty rack for in-process calls."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def hil_env(private_state_and_empty_rack: Path) -> Path:
    return private_state_and_empty_rack
