"""Fixtures for the firmware tests (helpers live in fwsupport.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fwsupport import QemuConsole, build_example, require_tools

from hil.boards import Board, load_board
from hil.build import BuildResult


@pytest.fixture(scope="session")
def firmware(tmp_path_factory: pytest.TempPathFactory):
    """firmware(board_name, app, toolchain) -> (Board, built image); built once per session."""
    cache: dict[tuple[str, str, str], tuple[Board, BuildResult]] = {}

    def get(board_name: str, app: str, toolchain: str):
        key = (board_name, app, toolchain)
        if key not in cache:
            board = load_board(board_name)
            require_tools(board, toolchain)
            out = tmp_path_factory.mktemp(f"{board_name}-{app}-{toolchain}")
            cache[key] = (board, build_example(board, app, toolchain, out))
        return cache[key]

    return get


@pytest.fixture
def qemu(tmp_path: Path) -> Iterator:
    """qemu(board, hex_path) -> a started QemuConsole; every one is stopped at teardown."""
    started: list[QemuConsole] = []

    def start(board: Board, hex_path: Path, timeout: float = 10.0) -> QemuConsole:
        console = QemuConsole(board, hex_path, timeout,
                              work_dir=tmp_path / f"qemu{len(started)}")
        started.append(console)
        return console.__enter__()

    yield start
    for console in started:
        console.__exit__(None, None, None)
