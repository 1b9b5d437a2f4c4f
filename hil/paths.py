"""Where hil keeps its cache, its state and its images: the active settings decide."""

from __future__ import annotations

from pathlib import Path

from hil.settings import current

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"


def cache_dir() -> Path:
    """Build cache: HIL_CACHE_DIR, else $XDG_CACHE_HOME/hil, else ~/.cache/hil."""
    return current().cache_dir


def state_dir() -> Path:
    """State (audit store, leases, simulated flash, logs): the project's state_dir."""
    return current().state_dir


def build_root() -> Path:
    """Output root of images: the project's build_dir."""
    return current().build_dir


def project_root() -> Path:
    """The project's root directory (where hil.toml is, else the current directory)."""
    return current().root
