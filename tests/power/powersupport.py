"""Helpers of the power tests: rack files with a power: entry, and small real programs."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

from hil.power import PowerDriver, driver_for
from hil.rack.inventory import load_rack


def write_rack(directory: Path, power: str, *, rack_id: str = "f4-a",
               probe: str = "hilsim:f4-a", extra: str = "") -> Path:
    """A rack file with one nucleo-f4 entry whose power: block is ``power`` (YAML lines at
    the power mapping's indentation, without the 'power:' line)."""
    body = textwrap.indent(textwrap.dedent(power).strip(), " " * 6)
    path = directory / "rack.yaml"
    path.write_text("schema: 1\nboards:\n"
                    f"  - id: {rack_id}\n    board: nucleo-f4\n    probe: '{probe}'\n"
                    f"    power:\n{body}\n{extra}")
    return path


def driver(path: Path, rack_id: str = "f4-a") -> PowerDriver:
    entry = load_rack(path).entry(rack_id)
    assert entry is not None
    found = driver_for(entry)
    assert found is not None
    return found


def script(path: Path, body: str) -> Path:
    """An executable shell script at ``path``."""
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body).lstrip())
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def recorder(bin_dir: Path, name: str, log: Path, *, exit_code: int = 0,
             stderr: str = "") -> Path:
    """A stand-in program ``name`` in ``bin_dir`` that appends its argv (one line) to ``log``,
    prints ``stderr`` there and exits with ``exit_code``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    err = f"printf '%s\\n' '{stderr}' >&2\n" if stderr else ""
    return script(bin_dir / name, f'printf "%s\\n" "$*" >> "{log}"\n{err}exit {exit_code}\n')


def path_with(bin_dir: Path) -> str:
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
