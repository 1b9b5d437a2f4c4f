"""Fixtures for the run/test harness tests: private state dirs and rack, images built once.

Every test gets its own HIL_STATE_DIR and an empty rack (so "no hardware" is certain); QEMU
consoles are sockets hil binds itself (port 0); nothing here depends on another test's files,
so the suite runs under ``pytest -n 2``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runsupport import BOARDS  # noqa: F401  (shared with the test modules)

from hil.boards import load_board
from hil.image import Image


@pytest.fixture(autouse=True)
def hil_env(private_state_and_empty_rack: Path) -> Path:
    return private_state_and_empty_rack


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory):
    """build(board_name, app) -> Image, built once per session into a private directory."""
    from hil.build import build

    cache: dict[tuple[str, str], Image] = {}
    root = tmp_path_factory.mktemp("images")

    def get(board_name: str, app: str | Path = "shell") -> Image:
        key = (board_name, str(app))
        if key not in cache:
            out = root / board_name / Path(str(app)).name
            cache[key] = Image.from_build(build(load_board(board_name), app, out=out))
        return cache[key]

    return get


def pytest_configure(config: pytest.Config) -> None:
    # The plugin tests use pytester; load it here rather than in the top-level conftest.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")
