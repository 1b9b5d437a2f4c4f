"""The shell example built for nucleo-f4 once per test module (a fixture to import)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def shell_hex(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shell example's HEX for nucleo-f4; skips when no cross toolchain is installed."""
    from hil.boards import load_board
    from hil.build import build
    from hil.catalog import EXAMPLES_DIR
    from hil.errors import HilError

    saved = {k: os.environ.get(k) for k in ("HIL_STATE_DIR", "HIL_CACHE_DIR")}
    os.environ["HIL_STATE_DIR"] = str(tmp_path_factory.mktemp("buildstate"))
    os.environ.setdefault("HIL_CACHE_DIR", str(tmp_path_factory.mktemp("buildcache")))
    try:
        return build(load_board("nucleo-f4"), EXAMPLES_DIR / "shell",
                     out=tmp_path_factory.mktemp("shell")).hex
    except HilError as exc:
        pytest.skip(f"cannot build the shell example here: {exc}")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
