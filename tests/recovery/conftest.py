"""Fixtures of the recovery tests: a hil project of its own per test (apps, rack)."""

from __future__ import annotations

from pathlib import Path

import pytest
from projects import empty_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hil project as the current directory: apps/ and an empty rack."""
    root = empty_project(tmp_path, monkeypatch)
    monkeypatch.setenv("HIL_LEASE_WAIT", "60")
    return root


@pytest.fixture(scope="module")
def shell_hex(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shell example's HEX for nucleo-f4, built once per module."""
    from hil.boards import load_board
    from hil.build import build
    from hil.errors import HilError

    try:
        return build(load_board("nucleo-f4"), "shell", out=tmp_path_factory.mktemp("shell")).hex
    except HilError as exc:  # pragma: no cover - the toolchain is part of `make deps`
        pytest.skip(f"cannot build the shell example here: {exc}")
