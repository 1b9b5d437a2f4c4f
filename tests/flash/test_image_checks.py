"""Image checks before anything else: an ELF for another architecture, an image larger than
the board's flash by its file size alone, an empty image and a directory are refused before a
lease is taken, the probe is touched or an emulator boots, with the same exit code in
``hil flash``, ``hil test`` and ``hil run``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hil.cli import main
from hil.errors import ExitCode
from hil.paths import state_dir

EM_RISCV = 243


def patched_elf(source: Path, target: Path, *, machine: int | None = None,
                elf_class: int | None = None) -> Path:
    """A copy of a real ELF with its header's machine or class changed: the same bytes at
    the same addresses, so only the header check can tell it is not for this board."""
    data = bytearray(source.read_bytes())
    if machine is not None:
        data[18:20] = machine.to_bytes(2, "little")
    if elf_class is not None:
        data[4] = elf_class
    target.write_bytes(bytes(data))
    return target


def sim_flash_untouched(name: str) -> bool:
    return not (state_dir() / "simflash" / f"{name}.bin").exists()


@pytest.fixture
def riscv_elf_at_f4_flash(shell, tmp_path) -> Path:
    """The shell ELF for nucleo-f4 (linked at 0x08000000) claiming to be RISC-V."""
    return patched_elf(shell.hex.with_name("firmware.elf"), tmp_path / "rv.elf",
                       machine=EM_RISCV)


def test_riscv_elf_is_not_flashed_to_an_arm_board(riscv_elf_at_f4_flash, rack, capsys):
    code = main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-a",
                 "--image", str(riscv_elf_at_f4_flash)])
    out, err = capsys.readouterr()
    assert code == ExitCode.BUILD_FAILED, err
    assert f"{riscv_elf_at_f4_flash} is a RISC-V ELF for an Arm Cortex-M board: board " \
           "nucleo-f4 has a cortex-m4 core" in err
    assert "hil build --board nucleo-f4" in err
    assert "verify passed" not in out
    assert sim_flash_untouched("f4-a")


@pytest.mark.parametrize("command", [
    pytest.param(["test", "--harness", "unity", "--on", "qemu"], id="test"),
    pytest.param(["run", "--on", "qemu"], id="run"),
])
def test_riscv_elf_is_refused_before_booting(riscv_elf_at_f4_flash, capsys, command):
    code = main([*command, "--board", "nucleo-f4", "--image", str(riscv_elf_at_f4_flash)])
    err = capsys.readouterr().err
    assert code == ExitCode.BUILD_FAILED, err
    assert "is a RISC-V ELF for an Arm Cortex-M board" in err
    assert not list(state_dir().glob("runs/*/*/image/*.hex")), "the ELF was converted"


def test_arm_elf_is_not_flashed_to_a_riscv_board(shell, tmp_path, capsys):
    elf = shutil.copyfile(shell.hex.with_name("firmware.elf"), tmp_path / "arm.elf")
    code = main(["flash", "--board", "hifive1-revb", "--probe", "hilsim:rv",
                 "--image", str(elf)])
    err = capsys.readouterr().err
    assert code == ExitCode.BUILD_FAILED, err
    assert "arm.elf is an Arm ELF for a RISC-V board: board hifive1-revb" in err
    assert sim_flash_untouched("rv")


def test_64_bit_elf_is_refused_by_its_class(shell, tmp_path, capsys):
    elf = patched_elf(shell.hex.with_name("firmware.elf"), tmp_path / "x64.elf", elf_class=2,
                      machine=62)
    code = main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-a",
                 "--image", str(elf)])
    err = capsys.readouterr().err
    assert code == ExitCode.BUILD_FAILED
    assert "x64.elf is a 64-bit ELF, but board nucleo-f4 (cortex-m4) runs 32-bit images" in err


def test_50_mb_bin_fails_on_its_size_before_the_lease(rack, tmp_path, capsys):
    # another job holds the only nucleo-f4: a check after the lease would wait or time out
    assert main(["rack", "lease", "--board", "nucleo-f4", "--ttl", "600"]) == 0
    capsys.readouterr()
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:  # sparse: 50 MB by its size, no disk or memory used
        fh.truncate(50 * 1024 * 1024)
    code = main(["flash", "--board", "nucleo-f4", "--image", str(big), "--wait", "0"])
    err = capsys.readouterr().err
    assert code == ExitCode.BUILD_FAILED, err
    assert f"image {big} is 52428800 bytes, but board nucleo-f4 has 524288 bytes of flash " \
           "from its application start 0x08000000" in err
    assert "waiting" not in err
    assert sim_flash_untouched("f4-a")


def test_hex_larger_than_any_hex_of_the_flash_is_refused_unparsed(rack, tmp_path, capsys):
    huge = tmp_path / "huge.hex"
    huge.write_bytes(b"this is not parsed\n" * 200_000)  # 3.8 MB
    code = main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-a",
                 "--image", str(huge)])
    err = capsys.readouterr().err
    assert code == ExitCode.BUILD_FAILED, err
    assert "HEX image" in err and "3800000 bytes: more than a HEX of the 524288 bytes" in err
    assert "not a valid Intel HEX" not in err


def test_elf_named_bin_is_refused(shell, tmp_path, capsys):
    fake_bin = shutil.copyfile(shell.hex.with_name("firmware.elf"), tmp_path / "fw.bin")
    code = main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-a",
                 "--image", str(fake_bin)])
    assert code == ExitCode.BUILD_FAILED
    assert "fw.bin is an ELF file, not a raw binary" in capsys.readouterr().err


COMMANDS = [
    pytest.param(["flash", "--probe", "hilsim:f4-a"], id="flash"),
    pytest.param(["test", "--harness", "unity", "--on", "qemu"], id="test"),
    pytest.param(["run", "--on", "qemu"], id="run"),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_empty_image_is_the_same_error_in_every_command(tmp_path, capsys, command):
    empty = tmp_path / "empty.hex"
    empty.write_bytes(b"")
    code = main([command[0], "--board", "nucleo-f4", *command[1:], "--image", str(empty)])
    err = capsys.readouterr().err
    assert code == ExitCode.BUILD_FAILED, err
    assert f"image {empty} is empty (0 bytes)" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_directory_as_image_says_it_is_a_directory(tmp_path, capsys, command):
    code = main([command[0], "--board", "nucleo-f4", *command[1:], "--image", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE, err
    assert f"{tmp_path}: is a directory, not an image file" in err
    assert "does not exist" not in err
