"""OpenOCD flashing of hifive1-revb: command line, log parsing, error paths, the real binary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hil.boards import load_board
from hil.cli import main
from hil.errors import (
    ExitCode,
    FlashProgramError,
    NoProbeError,
    ProbeLostError,
    VerifyError,
    WrongChipError,
)
from hil.flash.openocd import error_for, openocd_command, parse_output

BOARD = load_board("hifive1-revb")


def make_hex(path: Path, segments: list[tuple[int, bytes]]) -> Path:
    from intelhex import IntelHex

    ih = IntelHex()
    for address, data in segments:
        ih.frombytes(data, offset=address)
    ih.write_hex_file(str(path))
    return path
APP = 0x20010000

SUCCESS_LOG = """\
Open On-Chip Debugger 0.12.0
Info : J-Link OB-K22-SiFive compiled Nov 22 2019 12:57:38
Info : clock speed 4000 kHz
Info : JTAG tap: riscv.cpu tap/device found: 0x20000913 (mfg: 0x489 (SiFive Inc), part: 0x0000, ver: 0x2)
Info : [riscv.cpu.0] Examined RISC-V core; found 1 harts
Ready for Remote Connections
** Programming Started **
Info : Found flash device 'issi is25lp032' (ID 0x0016609d)
Info : Padding image section 0 at 0x20010d22 with 2 bytes
wrote 4096 bytes from file fw.hex in 0.812345s (4.924 KiB/s)
** Programming Finished **
** Verify Started **
verified 3362 bytes in 0.100000s (32.832 KiB/s)
** Verified OK **
** Resetting Target **
shutdown command invoked
"""


def hifive_hex(tmp_path: Path) -> Path:
    return make_hex(tmp_path / "fw.hex", [(APP, bytes(range(256)) * 4)])


def test_command_programs_verifies_resets_with_board_config(tmp_path):
    image = tmp_path / "fw.hex"
    assert openocd_command(BOARD, image, probe="jlink", frequency=4_000_000) == [
        "openocd", "-f", "board/sifive-hifive1-revb.cfg", "-c", "adapter speed 4000",
        "-c", f"program {{{image}}} verify reset exit"]


def test_command_selects_jlink_serial_and_bin_offset(tmp_path):
    image = tmp_path / "fw.bin"
    cmd = openocd_command(BOARD, image, probe="jlink:000979012345", reset=False)
    assert cmd[:3] == ["openocd", "-c", "adapter serial 000979012345"]
    assert cmd[-1] == f"program {{{image}}} verify exit 0x20010000"


def test_command_rejects_a_serial_that_would_inject_commands(tmp_path):
    from hil.errors import UsageError

    with pytest.raises(UsageError):
        openocd_command(BOARD, tmp_path / "x.hex", probe="jlink:1; shutdown")


def test_parse_successful_log():
    result = parse_output(SUCCESS_LOG)
    assert result.chip_id == 0x20000913
    assert result.programmed_bytes == 4096
    assert result.programmed and result.verified and result.reset
    assert error_for(SUCCESS_LOG, 0, BOARD, "jlink") is None


@pytest.mark.parametrize(
    ("log", "error", "message"),
    [
        pytest.param("Error: No J-Link device found\n", NoProbeError, "no J-Link found",
                     id="no-jlink"),
        pytest.param("Error: Failed to open device: LIBUSB_ERROR_BUSY.\n", ProbeLostError,
                     "busy", id="jlink-busy"),
        pytest.param(
            "Info : JTAG tap: riscv.cpu tap/device found: 0x4ba00477 (mfg: 0x23b)\n"
            "Error: JTAG tap: riscv.cpu             UNEXPECTED: 0x4ba00477 (mfg: 0x23b)\n"
            "Error: JTAG tap: riscv.cpu  expected 1 of 1: 0x20000913 (mfg: 0x489)\n"
            "Error: Trying to use configured scan chain anyway...\n",
            WrongChipError, "expects 0x20000913", id="wrong-chip"),
        pytest.param(SUCCESS_LOG.replace("** Verified OK **", "** Verify Failed **\n"
                     "diff 0 address 0x20010004. Was 0xff instead of 0x13"), VerifyError,
                     "first difference at 0x20010004", id="verify-mismatch"),
        pytest.param("** Programming Started **\nError: fespi: timed out waiting for flash at "
                     "address 0x20011000\n** Programming Failed **\n", FlashProgramError,
                     "failed at 0x20011000", id="program-failure"),
        pytest.param("Info : JTAG tap: riscv.cpu tap/device found: 0x20000913\n"
                     "Error: Target not examined yet\n", ProbeLostError,
                     "Target not examined yet", id="target-lost"),
    ],
)
def test_error_paths(log, error, message):
    got = error_for(log, 1, BOARD, "jlink")
    assert isinstance(got, error)
    assert message in str(got)


def test_verify_failure_carries_address():
    got = error_for(SUCCESS_LOG.replace("** Verified OK **", "** Verify Failed **\n"
                                        "diff 0 address 0x20010004. Was 0xff instead of 0x13"),
                    1, BOARD, "jlink")
    assert isinstance(got, VerifyError) and got.address == 0x20010004


@pytest.mark.skipif(shutil.which("openocd") is None, reason="openocd is not installed")
def test_real_openocd_without_jlink_is_no_probe(tmp_path, capsys):
    code = main(["flash", "--board", "hifive1-revb", "--probe", "jlink",
                 "--image", str(hifive_hex(tmp_path))])
    out, err = capsys.readouterr()
    assert code == ExitCode.NO_PROBE, err
    assert "no J-Link found for board hifive1-revb" in err
    assert out == ""


def test_image_outside_hifive_flash_is_refused_before_openocd_runs(tmp_path, capsys):
    image = make_hex(tmp_path / "arm.hex", [(0x08000000, b"\x00" * 64)])
    code = main(["flash", "--board", "hifive1-revb", "--probe", "jlink", "--image", str(image),
                 "--json"])
    assert code == ExitCode.BUILD_FAILED
    assert "not inside a flash region" in capsys.readouterr()[1]


def test_virtual_hifive_flashes_into_simulated_flash(tmp_path, capsys):
    from hil.flash.sim.store import SimFlashStore

    image = hifive_hex(tmp_path)
    assert main(["flash", "--board", "hifive1-revb", "--probe", "hilsim:hifive-a",
                 "--image", str(image), "--json"]) == 0
    first = json.loads(capsys.readouterr()[0])
    assert first["verified"] and first["erased_sectors"] == 1 and first["tool"] == "sim"
    assert SimFlashStore.open("hifive-a").read(APP, 1024) == bytes(range(256)) * 4
    assert main(["flash", "--board", "hifive1-revb", "--probe", "hilsim:hifive-a",
                 "--image", str(image), "--json"]) == 0
    again = json.loads(capsys.readouterr()[0])
    assert (again["erased_sectors"], again["programmed_bytes"]) == (0, 0)


def test_a_virtual_board_pyocd_has_no_algorithm_for_flashes_into_simulated_flash(
        tmp_path, capsys):
    """The LM3S6965 has no pyOCD flash algorithm (a real one cannot be flashed with pyOCD),
    but as a virtual board it flashes straight into its simulated flash, like the HiFive1."""
    from hil.flash.sim.store import SimFlashStore

    vectors = (0x20010000).to_bytes(4, "little") + (0x00000101).to_bytes(4, "little")
    data = vectors + bytes(range(256)) * 8
    image = make_hex(tmp_path / "lm3s.hex", [(0x00000000, data)])
    assert main(["flash", "--board", "lm3s6965evb", "--probe", "hilsim:lm3s-a",
                 "--image", str(image), "--json"]) == 0
    report = json.loads(capsys.readouterr()[0])
    assert report["verified"] and report["tool"] == "sim" and report["erased_sectors"] == 3
    assert SimFlashStore.open("lm3s-a").read(0, len(data)) == data
    # a real probe still says why pyOCD cannot flash it
    code = main(["flash", "--board", "lm3s6965evb", "--probe", "stlink:0670FF", "--image",
                 str(image)])
    assert code == ExitCode.USAGE
    assert "no flash algorithm for family 'stellaris'" in capsys.readouterr()[1]
