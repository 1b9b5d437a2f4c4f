"""``hil debug``: the image starts halted at reset where hil test would run it, and the
printed gdb-multiarch command line reaches it.

Each test runs the real ``hil`` console script (its own state, build and rack directories),
attaches ``gdb-multiarch`` in batch mode to the printed address, then sends SIGINT (Ctrl-C)
and checks that nothing is left: no QEMU, no gdbserver, no lease.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from debugsupport import HilProcess, gdb_batch, held_leases, printed_gdb
from intelhex import IntelHex

from hil.cli import main

pytestmark = pytest.mark.slow

BANNER = re.compile(r"hil-shell (\S+) ")
ELF = re.compile(r"gdb-multiarch -q(?: -d \S+)* (\S+\.elf) -ex")


def _debug_to_main(run: HilProcess, board: str) -> None:
    """gdb stops at main, reads the shell's command table, and the console shows the boot
    once gdb has let the core run."""
    address = run.gdb_address()
    elf = Path(ELF.search(run.stderr()).group(1))  # type: ignore[union-attr]
    assert elf.is_file()
    assert run.stdout() == "", "the core ran before gdb continued it"
    assert address in run.stderr()
    gdb = printed_gdb(run.stderr(), "info registers pc", "break main", "continue",
                      "print commands[0].name", "print sizeof(commands)/sizeof(commands[0])")
    assert gdb.returncode == 0, gdb.stderr
    assert "Breakpoint 1, main ()" in gdb.stdout
    # the printed -d directories let gdb show the source line it stopped at
    assert "No such file or directory" not in gdb.stdout + gdb.stderr
    assert "linebuf_init(&lb, storage" in gdb.stdout or "static char storage" in gdb.stdout
    assert '"ping"' in gdb.stdout
    assert "= 8" in gdb.stdout  # ping echo add crc32 mem version help fault
    if board == "nucleo-f4":  # halted at reset: the first stop is the reset handler
        first = gdb.stdout.split("Breakpoint 1 at", 1)[0]
        assert "<Reset_Handler>" in first
    # gdb detached: the core runs on, the banner reaches hil's console copy
    run.wait_for_output(BANNER)
    assert BANNER.search(run.stdout()).group(1) == board  # type: ignore[union-attr]


@pytest.mark.parametrize("board", [pytest.param("nucleo-f4", id="cortex-m4"),
                                   pytest.param("hifive1-revb", id="risc-v")])
def test_gdb_stops_at_main_of_a_plain_qemu_board(tmp_path: Path, shared_cache: Path,
                                                 board: str) -> None:
    run = HilProcess(tmp_path / "run", cache=shared_cache)
    run.start("debug", "--board", board, "shell")
    try:
        _debug_to_main(run, board)
        assert "running in QEMU" in run.stderr()
        assert run.interrupt() == 0, run.stderr()
    finally:
        run.kill()
    assert "debug session ended" in run.stderr()
    assert run.leftovers() == []


def test_gdb_on_a_virtual_board_holds_its_lease_until_ctrl_c(tmp_path: Path,
                                                             shared_cache: Path) -> None:
    rack = ("schema: 1\nboards:\n  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a', "
            "emulator: qemu}\n")
    run = HilProcess(tmp_path / "run", rack=rack, cache=shared_cache)
    run.start("debug", "--board", "nucleo-f4", "shell")
    try:
        _debug_to_main(run, "nucleo-f4")
        assert "virtual board f4-a" in run.stderr()
        assert held_leases(run.state) == ["f4-a"]
        assert run.interrupt() == 0, run.stderr()
    finally:
        run.kill()
    assert held_leases(run.state) == []
    assert run.leftovers() == []


def test_a_probe_outside_the_rack_is_served_by_pyocd_gdbserver(tmp_path: Path,
                                                               shared_cache: Path) -> None:
    """The hardware path: the image is flashed through the probe, then ``pyocd gdbserver``
    (a child process) serves it; a simulated probe stands in for an ST-LINK."""
    run = HilProcess(tmp_path / "run", cache=shared_cache)
    run.start("debug", "--board", "nucleo-f4", "--probe", "hilsim:dbg-bare", "shell")
    try:
        address = run.gdb_address()
        assert "pyocd gdbserver on 127.0.0.1:" in run.stderr()
        assert "-ex 'monitor reset halt'" in run.stderr()
        elf = Path(ELF.search(run.stderr()).group(1))  # type: ignore[union-attr]
        gdb = gdb_batch(elf, address, "monitor reset halt", "info registers pc",
                        "print commands[0].name")
        assert gdb.returncode == 0, gdb.stderr
        assert "<Reset_Handler>" in gdb.stdout
        assert '"ping"' in gdb.stdout  # read from the flash the probe wrote
        assert run.interrupt() == 0, run.stderr()
    finally:
        run.kill()
    assert run.leftovers() == []


def test_a_hex_image_starts_without_symbols(tmp_path: Path, shared_cache: Path) -> None:
    from hil.boards import load_board
    from hil.build import build

    built = build(load_board("nucleo-f4"), "shell", out=tmp_path / "fw").hex
    hex_path = tmp_path / "alone" / "shell.hex"  # no ELF beside it to find
    hex_path.parent.mkdir()
    hex_path.write_bytes(built.read_bytes())
    run = HilProcess(tmp_path / "run", cache=shared_cache)
    run.start("debug", "--board", "nucleo-f4", "--image", str(hex_path), "--timeout", "600")
    try:
        address = run.gdb_address()
        err = run.stderr()
        assert "no ELF for this image" in err
        assert "-ex 'set architecture arm'" in err
        gdb = gdb_batch(None, address, "x/2wx 0x08000000", arch="arm")
        assert gdb.returncode == 0, gdb.stderr
        words = IntelHex(str(hex_path))
        sp = int.from_bytes(bytes(words.tobinarray(start=0x08000000, size=4)), "little")
        reset = int.from_bytes(bytes(words.tobinarray(start=0x08000004, size=4)), "little")
        assert f"0x{sp:08x}\t0x{reset:08x}" in gdb.stdout
        assert run.interrupt() == 0, run.stderr()
    finally:
        run.kill()
    assert run.leftovers() == []


def test_on_a_terminal_typed_lines_reach_the_board(tmp_path: Path,
                                                  shared_cache: Path) -> None:
    run = HilProcess(tmp_path / "run", cache=shared_cache)
    run.start("debug", "--board", "nucleo-f4", "shell", terminal=True)
    try:
        address = run.gdb_address()
        gdb = gdb_batch(None, address, arch="arm")  # attach, detach: the core runs
        assert gdb.returncode == 0, gdb.stderr
        run.wait_for_output(re.compile(r"^READY", re.MULTILINE))
        run.type("echo typed on the terminal\n")
        run.wait_for_output(re.compile(r"^typed on the terminal\r?$", re.MULTILINE))
        assert run.ctrl_c() == 0, run.stderr()
    finally:
        run.kill()
    assert run.leftovers() == []


@pytest.mark.parametrize("argv", [
    pytest.param(["debug", "--board", "nucleo-f4", "shell", "--image", "x.elf"],
                 id="app-and-image"),
    pytest.param(["debug", "--board", "nucleo-f4", "--probe", "hilsim:x", "--on", "qemu"],
                 id="probe-and-on"),
])
def test_contradicting_options_are_usage_errors(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_help_explains_with_examples(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["debug", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "gdb-multiarch" in out and "hil debug --board nucleo-f4" in out
    assert "--timeout" in out and "--probe" in out


def test_a_board_pyocd_cannot_drive_is_refused_on_hardware_with_the_fix(capsys) -> None:
    """hifive1-revb is flashed with OpenOCD: its probe gets no pyocd gdbserver."""
    argv = ["debug", "--board", "hifive1-revb", "--probe", "hilsim:hifive-bare", "shell",
            "--timeout", "60"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "flashed with openocd, not pyOCD" in err and "--on qemu" in err
    assert "Traceback" not in err


def test_the_printed_command_survives_a_shell() -> None:
    """What the user pastes is what gdb gets: paths with spaces are quoted."""
    import shlex

    from hil.debug import GdbAccess

    access = GdbAccess("127.0.0.1", 4242, Path("/tmp/my firmware/app.elf"), "QEMU gdbstub",
                       source_dirs=(Path("/src/my project"),),
                       after_connect=("monitor reset halt",))
    assert shlex.split(access.command()) == [
        "gdb-multiarch", "-q", "-d", "/src/my project", "/tmp/my firmware/app.elf",
        "-ex", "target remote 127.0.0.1:4242", "-ex", "monitor reset halt"]
    bare = GdbAccess("127.0.0.1", 4242, None, "QEMU gdbstub", arch="riscv")
    assert "-ex 'set architecture riscv:rv32'" in bare.command()
    assert "gdb has no symbols" in bare.describe()
