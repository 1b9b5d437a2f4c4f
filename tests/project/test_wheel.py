"""hil as a package in somebody else's repository: the wheel built from this checkout,
installed into a fresh venv outside it, runs the whole flow in a directory made by
`hil init`, writing only into that directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, check=False, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with hil installed from a wheel of this checkout; returns its bin/."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIL_")}
    # build from a copy of the tracked files: the build leaves nothing in the checkout
    source = base / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=CHECKOUT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        src, dst = CHECKOUT / name, source / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        elif src.is_file():
            shutil.copy2(src, dst)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
          str(source)], base, env, timeout=600)
    wheels = list(dist.glob("hil-*.whl"))
    assert len(wheels) == 1, wheels
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], base, env)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--prefer-binary",
          str(wheels[0])], base, env, timeout=600)
    return venv / "bin"


def test_the_wheel_serves_a_project_made_by_hil_init(installed, tmp_path):
    bin_dir = installed
    venv = bin_dir.parent
    project = tmp_path / "fw-repo"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIL_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    hil = str(bin_dir / "hil")
    checkout_before = subprocess.run(["git", "status", "--porcelain", "--ignored"],
                                     cwd=CHECKOUT, check=False, capture_output=True,
                                     text=True).stdout
    venv_before = _files(venv)

    _run([hil, "init"], project, env)
    out = _run([hil, "boards"], project, env)
    for board in ("nucleo-f4", "nucleo-f446re", "lm3s6965evb", "hifive1-revb"):
        assert board in out
    assert "built-in" in out

    out = _run([hil, "build", "--board", "nucleo-f4", "--all"], project, env)
    assert (project / "build" / "nucleo-f4" / "hello" / "firmware.hex").is_file()

    # from a subdirectory: the project root is found
    out = _run([hil, "test", "--board", "nucleo-f4", "--on", "qemu"],
               project / "apps" / "hello", env)
    assert "PASSED in QEMU" in out and "not a hardware pass" in out
    out = _run([hil, "test", "--board", "nucleo-f4"], project, env)
    assert "PASSED in virtual board f4-" in out
    out = _run([hil, "flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-b", "hello"],
               project, env)
    assert "verify passed" in out
    out = _run([hil, "audit", "image", "build/nucleo-f4/hello/firmware.hex"], project, env)
    assert "f4-b" in out

    # every output is inside the project; nothing was written into the venv or the checkout
    assert {p.name for p in project.iterdir()} >= {"build", ".hil", "hil.toml", "apps"}
    assert not (project / "apps" / "hello" / "build").exists()
    assert not (project / "apps" / "hello" / ".hil").exists()
    assert _files(venv) == venv_before
    assert subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=CHECKOUT,
                          check=False, capture_output=True, text=True).stdout == checkout_before
