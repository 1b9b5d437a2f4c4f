"""Where hil keeps its cache and its state; both overridable for tests and parallel jobs."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
EXAMPLES_DIR = PROJECT_ROOT / "firmware_examples"


def cache_dir() -> Path:
    """Build cache: HIL_CACHE_DIR, else $XDG_CACHE_HOME/hil, else ~/.cache/hil."""
    if os.environ.get("HIL_CACHE_DIR"):
        return Path(os.environ["HIL_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hil"


def state_dir() -> Path:
    """State (audit store, leases, simulated flash, logs): HIL_STATE_DIR, else .hil/ in the
    project (the current directory when hil is installed outside a checkout)."""
    if os.environ.get("HIL_STATE_DIR"):
        return Path(os.environ["HIL_STATE_DIR"]).expanduser()
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return root / ".hil"


def build_root() -> Path:
    """Default output root for images: HIL_BUILD_DIR, else build/ in the project."""
    if os.environ.get("HIL_BUILD_DIR"):
        return Path(os.environ["HIL_BUILD_DIR"]).expanduser()
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return root / "build"
