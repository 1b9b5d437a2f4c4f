"""Fixtures of the harness tests: a private state dir and an empty rack for every test (so
"no hardware" is certain and runs are parallel-safe)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def hil_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("HIL_STATE_DIR", str(state))
    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards: []\n")
    monkeypatch.setenv("HIL_RACK", str(rack))
    return state
