"""Fixtures for the run/test harness tests: private state dirs and rack, images built once.

Every test gets its own HIL_STATE_DIR and an empty rack (so "no hardware" is certain); QEMU
consoles use free loopback ports; nothing here depends on another test's files, so the suite
runs under ``pytest -n 2``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from hil.boards import load_board
from hil.executors import Image

BOARDS = ["nucleo-f4", "nucleo-f446re", "lm3s6965evb", "hifive1-revb"]


@pytest.fixture(autouse=True)
def hil_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("HIL_STATE_DIR", str(state))
    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards: []\n")
    monkeypatch.setenv("HIL_RACK", str(rack))
    return state


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


def write_app(directory: Path, main_c: str, name: str | None = None) -> Path:
    """A one-file firmware app in ``directory`` (built with hil's runtime)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.c").write_text(main_c)
    (directory / "app.yaml").write_text(f"name: {name or directory.name}\nversion: 0.1.0\n")
    return directory


def bad_stack_image(image: Image, out: Path) -> Image:
    """``image`` with its initial stack pointer moved to unmapped memory: the first push
    faults, the fault cannot be stacked, and a Cortex-M locks up."""
    from intelhex import IntelHex

    ih = IntelHex(str(image.hex))
    start = ih.minaddr()
    ih.puts(start, struct.pack("<I", 0x30000000))
    ih.write_hex_file(str(out))
    return Image(hex=out, elf=image.elf, sha256="", toolchain=image.toolchain, app="bad-stack")


def qemu_pids_for(path: Path) -> list[int]:
    """PIDs of live processes whose command line mentions ``path`` (a /proc scan)."""
    pids = []
    needle = str(path).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and b"qemu-system" in cmdline and state != b"Z":
            pids.append(int(entry))
    return pids


def pytest_configure(config: pytest.Config) -> None:
    # The plugin tests use pytester; load it here rather than in the top-level conftest.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")
