"""``hil test --debug-on-failure``: the board of a test that crashed or timed out is kept
halted, the printed gdb command reaches it, and an unattended run is never blocked."""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from debugsupport import TARGET, HilProcess, gdb_batch, held_leases

from hil.cli import main

pytestmark = pytest.mark.slow

ELF = re.compile(r"gdb-multiarch -q(?: -d \S+)* (\S+\.elf) -ex")
PC = re.compile(r"^pc\s+0x([0-9a-f]+)", re.MULTILINE)


def _elf(run: HilProcess) -> Path:
    m = ELF.search(run.stderr())
    assert m, run.stderr()
    return Path(m.group(1))


VIRTUAL_RACK = ("schema: 1\nboards:\n  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a', "
                "emulator: qemu}\n")


@pytest.mark.parametrize("rack", [
    pytest.param("schema: 1\nboards: []\n", id="plain-qemu"),
    pytest.param(VIRTUAL_RACK, id="virtual-board"),
])
def test_a_timed_out_run_keeps_the_board_halted_for_gdb(tmp_path: Path, shared_cache: Path,
                                                         rack: str) -> None:
    junit = tmp_path / "junit.xml"
    run = HilProcess(tmp_path / "run", rack=rack, cache=shared_cache)
    run.start("test", "--board", "nucleo-f4", "blinky", "--expect", "^never printed$",
              "--timeout", "2", "--junit", str(junit), "--debug-on-failure",
              "--debug-wait", "600")
    try:
        address = run.gdb_address()
        assert "--debug-on-failure: nucleo-f4 timed out" in run.stderr()
        assert "waiting 600 s for the debugger" in run.stderr()
        gdb = gdb_batch(_elf(run), address, "info registers pc", "info registers pc")
        assert gdb.returncode == 0, gdb.stderr
        pcs = PC.findall(gdb.stdout)
        assert len(pcs) == 2 and pcs[0] == pcs[1], gdb.stdout  # halted: it does not move
        assert 0x08000000 <= int(pcs[0], 16) < 0x08080000  # in the image, in flash
        if rack == VIRTUAL_RACK:
            assert "halted on virtual board f4-a" in run.stderr()
            assert held_leases(run.state) == ["f4-a"]  # held while gdb may attach
        assert run.interrupt() == 130, run.stderr()  # Ctrl-C ends the wait and the run
    finally:
        run.kill()
    assert run.leftovers() == []
    assert held_leases(run.state) == []
    cases = {c.get("name"): c for c in ET.parse(junit).iter("testcase")}
    assert cases["expect[0] /^never printed$/"].find("failure") is not None
    assert "cancelled" in cases


def test_an_unattended_run_prints_the_command_and_does_not_wait(tmp_path: Path,
                                                                 shared_cache: Path) -> None:
    run = HilProcess(tmp_path / "run", cache=shared_cache)
    run.start("test", "--board", "nucleo-f4", "blinky", "--expect", "^never printed$",
              "--timeout", "2", "--debug-on-failure")
    try:
        assert run.wait(timeout=300) == 1, run.stderr()  # the test failed; nothing waited
    finally:
        run.kill()
    err = run.stderr()
    assert TARGET.search(err)
    assert "not waiting for a debugger: stdin is not a terminal" in err
    assert run.leftovers() == []


def test_a_crashed_pytest_test_keeps_the_board_halted_in_the_fault(tmp_path: Path,
                                                                   shared_cache: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_crash.py").write_text(textwrap.dedent("""\
        def test_fault_command(dut):
            dut.command("fault")
        """))
    run = HilProcess(tmp_path / "run", cache=shared_cache)
    run.start("test", "--board", "nucleo-f4", "shell", "--suite", str(suite),
              "--debug-on-failure", "--debug-wait", "600")
    try:
        address = run.gdb_address()
        assert "--debug-on-failure: nucleo-f4 crashed" in run.stderr()
        gdb = gdb_batch(_elf(run), address, "info registers pc", "backtrace")
        assert gdb.returncode == 0, gdb.stderr
        assert PC.search(gdb.stdout), gdb.stdout
        assert "hil_cortexm_fault" in gdb.stdout  # halted in the fault handler's halt
        assert run.interrupt() == 130, run.stderr()
    finally:
        run.kill()
    assert run.leftovers() == []


def test_on_a_terminal_it_waits_for_ctrl_c(tmp_path: Path, shared_cache: Path) -> None:
    """A developer's run: stdin is a terminal, no --debug-wait; Ctrl-C reaches hil and its
    pytest (one process group) and ends the wait and the run."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_crash.py").write_text(textwrap.dedent("""\
        def test_fault_command(dut):
            dut.command("fault")
        """))
    run = HilProcess(tmp_path / "run", cache=shared_cache)
    run.start("test", "--board", "hifive1-revb", "shell", "--suite", str(suite),
              "--debug-on-failure", terminal=True)
    try:
        address = run.gdb_address()
        run.wait_for(re.compile("waiting for the debugger; Ctrl-C ends the wait"))
        gdb = gdb_batch(_elf(run), address, "info registers pc", "backtrace")
        assert gdb.returncode == 0, gdb.stderr
        assert "hil_riscv_trap" in gdb.stdout, gdb.stdout  # halted in the trap handler
        assert run.proc is not None and run.proc.poll() is None  # still waiting
        assert run.ctrl_c() == 130, run.stderr()
    finally:
        run.kill()
    assert run.leftovers() == []


def test_ctrl_c_ends_the_wait_of_boards_run_in_parallel(tmp_path: Path,
                                                       shared_cache: Path) -> None:
    """Two boards time out, each waits in its own thread; one Ctrl-C ends both waits."""
    run = HilProcess(tmp_path / "run", cache=shared_cache)
    run.start("test", "--board", "nucleo-f4", "--board", "hifive1-revb", "blinky",
              "--expect", "^never printed$", "--timeout", "2", "--debug-on-failure",
              terminal=True)
    try:
        run.wait_for(re.compile(r"(?s)(waiting for the debugger.*){2}"))
        assert len(TARGET.findall(run.stderr())) == 2
        assert run.ctrl_c() == 130, run.stderr()
    finally:
        run.kill()
    assert run.leftovers() == []


def test_debug_wait_without_debug_on_failure_is_a_usage_error(capsys) -> None:
    assert main(["test", "--board", "nucleo-f4", "blinky", "--debug-wait", "5"]) == 2
    err = capsys.readouterr().err
    assert "--debug-wait goes with --debug-on-failure" in err
