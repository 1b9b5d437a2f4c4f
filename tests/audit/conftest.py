"""Fixtures for the audit tests: an isolated state dir per test, and the PostgreSQL
server fixtures from tests/pgserver.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pgserver

from pgserver import pg_server, pg_url  # noqa: F401  (fixtures re-exported)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state dir (and no inherited HIL_AUDIT_DB / HIL_AUDIT_KEY)."""
    d = tmp_path / "state"
    monkeypatch.setenv("HIL_STATE_DIR", str(d))
    monkeypatch.delenv("HIL_AUDIT_DB", raising=False)
    monkeypatch.delenv("HIL_AUDIT_KEY", raising=False)
    return d


@pytest.fixture
def db(state: Path) -> Path:
    """Path of the default SQLite store in the private state dir."""
    return state / "audit.sqlite"
