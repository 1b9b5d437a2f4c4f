"""Helpers of tests that set up a hil project of their own or read a board's serial port."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import serial


def empty_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hil project as the current directory: apps/ and an empty rack."""
    root = tmp_path / "proj"
    (root / "apps").mkdir(parents=True)
    (root / "hil.toml").write_text('apps = ["apps/*"]\nrack = "rack.yaml"\n')
    (root / "rack.yaml").write_text("schema: 1\nboards: []\n")
    monkeypatch.chdir(root)
    monkeypatch.delenv("HIL_PROJECT_ROOT", raising=False)
    return root


def read_until(port: serial.Serial, text: bytes, timeout: float = 30.0) -> bytes:
    """What ``port`` gives until ``text`` came (asserted, within ``timeout`` seconds)."""
    got = b""
    deadline = time.monotonic() + timeout
    while text not in got and time.monotonic() < deadline:
        got += port.read(256)
    assert text in got, got
    return got
