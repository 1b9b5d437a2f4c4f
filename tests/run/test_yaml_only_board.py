"""A board added by YAML alone (issue 12, item 4): an STM32F405 with its console on USART3
(QEMU netduinoplus2, serial index 2) runs the shell suite in QEMU, with no C change."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.cli import main
from hil.errors import ExitCode

pytestmark = pytest.mark.slow
BOARDS = Path(__file__).resolve().parents[1] / "fixtures" / "boards"


@pytest.mark.parametrize("toolchain", ["gcc", "clang"])
def test_f405_with_console_on_usart3_passes_the_shell_suite(
        toolchain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setenv("HIL_BOARDS_PATH", str(BOARDS))
    junit = tmp_path / "verdict.xml"
    rc = main(["test", "--board", "f405-usart3", "shell", "--on", "qemu",
               "--toolchain", toolchain, "--junit", str(junit)])
    out, err = capsys.readouterr()
    assert rc == ExitCode.OK, out + err
    assert "PASSED in QEMU" in out
    suites = list(ET.parse(junit).getroot().iter("testsuite"))
    assert len(suites) == 1
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props["hil.board"] == "f405-usart3"
    assert props["hil.toolchain"].startswith(f"{toolchain} ")
    assert int(suites[0].get("tests")) > 0
    assert int(suites[0].get("failures")) == 0 and int(suites[0].get("errors")) == 0
