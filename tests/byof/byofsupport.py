"""Helpers for the bring-your-own-firmware tests: boot an image in QEMU and read its console."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from hil.boards import Board
from hil.emulator.qemu import QemuProcess

FW = Path(__file__).resolve().parent / "fw"


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")


def boot_output(board: Board, hex_path: Path, until: str, work_dir: Path,
                timeout: float = 10.0) -> str:
    """Boot ``hex_path`` in QEMU and return its console output up to the first line matching
    ``until``; AssertionError with what came if it never does."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with QemuProcess(board, hex_path, stderr_path=work_dir / "qemu.stderr") as qemu:
        sock = qemu.connect()
        try:
            sock.settimeout(0.1)
            text = ""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if re.search(until, text, re.MULTILINE):
                    return text.replace("\r", "")
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                text += chunk.decode(errors="replace")
        finally:
            sock.close()
        raise AssertionError(f"no line matching {until!r} from {hex_path.name}; got {text!r}; "
                             f"qemu stderr {qemu.stderr_text()!r}")
