"""The app file's ``defines:`` reach the firmware: the README's own example (the shell's line
limit) builds under -Werror and changes what the shell accepts, in QEMU."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from fwsupport import EXAMPLES, ROOT, require_tools

from hil.boards import load_board
from hil.build import build

pytestmark = pytest.mark.slow


def readme_defines() -> dict:
    """The ``defines:`` line of the README's app file reference, as YAML."""
    readme = (ROOT / "README.md").read_text()
    (line,) = re.findall(r"^defines: .*$", readme, re.MULTILINE)
    return yaml.safe_load(line.split("  #")[0])["defines"]


@pytest.mark.parametrize("toolchain", ["gcc", "clang"])
def test_readme_defines_example_sets_the_shell_line_limit(toolchain, tmp_path: Path, qemu):
    defines = readme_defines()
    assert defines == {"SHELL_LINE_MAX": 128}
    board = load_board("nucleo-f4")
    require_tools(board, toolchain)
    shutil.copytree(EXAMPLES / "shell", tmp_path / "shell", ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(EXAMPLES / "lib", tmp_path / "lib")
    app_file = tmp_path / "shell" / "app.yaml"
    app = yaml.safe_load(app_file.read_text())
    app_file.write_text(yaml.safe_dump({**app, "defines": defines}))

    image = build(board, tmp_path / "shell", toolchain=toolchain, out=tmp_path / "out")
    assert "#define SHELL_LINE_MAX 128" in (tmp_path / "out" / "hil_board.h").read_text()

    shell = qemu(board, image.hex)
    shell.expect("^READY$")
    fits = "y" * (128 - 5)
    assert shell.command("echo " + fits) == ([fits], "OK")
    shell.write(b"echo " + b"y" * (129 - 5) + b"\r\n")
    assert shell.read_line() == "ERR line too long"
