"""Shared fixtures: every test runs with its own state directory, so tests are
parallel-safe under pytest-xdist and never touch the developer's .hil/ or audit store."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import browser  # noqa: F401  (headless Chromium, for the HTML page tests)


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("HIL_STATE_DIR", str(state))
    monkeypatch.delenv("HIL_RACK", raising=False)
    monkeypatch.delenv("HIL_AUDIT_DB", raising=False)
    monkeypatch.delenv("HIL_BOARDS_PATH", raising=False)
    return state


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build cache per test worker: builds after the first are cache hits."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _cache_env(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIL_CACHE_DIR", str(shared_cache))


@pytest.fixture
def private_state_and_empty_rack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state dir of the test's own and an empty rack ("no hardware" is certain); returns
    the state dir. Test folders that run boards make it autouse through their ``hil_env``."""
    state = tmp_path / "state"
    monkeypatch.setenv("HIL_STATE_DIR", str(state))
    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards: []\n")
    monkeypatch.setenv("HIL_RACK", str(rack))
    return state
