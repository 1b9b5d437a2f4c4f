"""The resolved toolchain is remembered across runs only while its files are unchanged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def built_cc(project: Path, env: dict[str, str]) -> dict:
    subprocess.run([sys.executable, "-m", "hil", "build", "--board", "nucleo-f4", "blinky"],
                   cwd=project, env=env, check=True, capture_output=True)
    record = json.loads((project / "build" / "nucleo-f4" / "blinky" / "build.json").read_text())
    return record["toolchain"]["tools"]["cc"]


def test_a_replaced_compiler_is_fingerprinted_again(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    gcc = tools / "arm-none-eabi-gcc"
    gcc.write_text(f'#!/bin/sh\nexec {shutil.which("arm-none-eabi-gcc")} "$@"\n')
    gcc.chmod(0o755)
    project = tmp_path / "p"
    project.mkdir()
    (project / "hil.toml").write_text("")
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
           "HIL_BUILD_DIR": str(project / "build")}
    first = built_cc(project, env)
    assert first["path"] == str(gcc)
    assert list((Path(env["HIL_CACHE_DIR"]) / "toolchains").glob("*.json"))
    assert built_cc(project, env) == first  # remembered: the same fingerprint
    with open(gcc, "a") as f:  # the compiler changes in place (an upgrade, a rebuild)
        f.write("# another version\n")
    again = built_cc(project, env)
    assert again["path"] == str(gcc)
    assert again["sha256"] != first["sha256"]
