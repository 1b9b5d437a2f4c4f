"""The firmware C code (hil/runtime, hil/templates, firmware_examples) keeps the style that
.clang-format at the repository root describes: `clang-format --dry-run --Werror` passes on
every .c and .h file. Reformat a file with `clang-format -i FILE`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
C_DIRS = (ROOT / "hil", ROOT / "firmware_examples")


def _clang_format() -> str:
    exe = shutil.which("clang-format")
    if exe is None:
        pytest.fail("clang-format is not installed: `make deps` installs it (Debian package "
                    "clang-format)")
    return exe


def _c_files() -> list[Path]:
    return sorted(p for d in C_DIRS for p in d.rglob("*") if p.suffix in (".c", ".h"))


def _check(exe: str, source: str, name: str) -> subprocess.CompletedProcess[str]:
    """clang-format's verdict on ``source`` as if it were the file ``name`` of the repo."""
    return subprocess.run([exe, "--dry-run", "--Werror", f"--assume-filename={ROOT / name}"],
                          input=source, capture_output=True, text=True, timeout=60, check=False)


def test_every_firmware_c_file_is_formatted():
    exe = _clang_format()
    files = _c_files()
    names = {str(p.relative_to(ROOT)) for p in files}
    assert {"hil/runtime/hil.h", "hil/runtime/console_stm32_usart.c",
            "hil/templates/init/hello/main.c", "firmware_examples/shell/main.c"} <= names
    result = subprocess.run([exe, "--dry-run", "--Werror", *map(str, files)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, (
        "C files differ from .clang-format (fix with `clang-format -i FILE`):\n"
        + result.stderr[-4000:])


GOOD = """\
#include "hil.h"

static int twice(int x)
{
    if (x > 0) {
        return 2 * x;
    }
    return 0;
}
"""


@pytest.mark.parametrize(("source", "formatted"), [
    pytest.param(GOOD, True, id="house-style"),
    pytest.param(GOOD.replace("    ", "  "), False, id="two-space-indent"),
    pytest.param(GOOD.replace(")\n{", ") {"), False, id="function-brace-on-signature-line"),
    pytest.param(GOOD.replace("if (x > 0) {", "if (x > 0)\n    {"), False,
                 id="if-brace-on-own-line"),
    pytest.param(GOOD.replace("return 0;", "return 0; "), False, id="trailing-space"),
])
def test_the_style_check_reads_the_repository_style(source: str, formatted: bool):
    """The check can fail, and it reads .clang-format (LLVM's default indents by two)."""
    result = _check(_clang_format(), source, "firmware_examples/sample/main.c")
    assert (result.returncode == 0) == formatted, result.stderr
