"""pyOCD's real STM32F4 flash algorithm, executed by the simulated probe: what a user checks
after `hil flash` (flash contents, errors, exit codes, audit records)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from intelhex import IntelHex

from hil.cli import main
from hil.errors import ExitCode
from hil.flash.sim.store import SimFlashStore

F4_FLASH, F4_SIZE = 0x08000000, 512 * 1024


def flash(capsys, *args: str, board: str = "nucleo-f4", probe: str = "hilsim:f4-a"):
    code = main(["flash", "--board", board, "--probe", probe, "--json", *args])
    out, err = capsys.readouterr()
    return code, out, err


def flash_records(image: Path) -> list:
    from hil.audit.store import open_store
    from hil.fsutil import sha256_file

    with open_store(None) as store:
        return [r for r in store.for_image(sha256_file(image)) if r.kind == "flash"]


@pytest.fixture
def full_image(tmp_path: Path) -> tuple[Path, bytes]:
    """Random bytes filling the whole 512 KiB flash of the F411 (every sector, every word)."""
    rng = random.Random(16)
    # A vector table (stack top, reset handler) first, as hil checks; random bytes after.
    body = (0x20020000).to_bytes(4, "little") + (0x08000101).to_bytes(4, "little") + \
        rng.randbytes(F4_SIZE - 8)
    ih = IntelHex()
    ih.frombytes(body, offset=F4_FLASH)
    ih.write_hex_file(str(tmp_path / "full.hex"))
    return tmp_path / "full.hex", body


def test_executed_algorithm_programs_the_whole_flash_byte_exact(full_image, rack, capsys):
    image, body = full_image
    code, out, err = flash(capsys, "--image", str(image))
    assert code == 0, err
    report = json.loads(out)
    assert report["erased_sectors"] == 8 and report["programmed_bytes"] == F4_SIZE
    assert SimFlashStore.open("f4-a").read(F4_FLASH, F4_SIZE) == body
    # Smart flash: pyOCD's CRC analyzer, executed on the simulated core, finds every
    # sector unchanged.
    code, out, err = flash(capsys, "--image", str(image))
    assert code == 0, err
    again = json.loads(out)
    assert (again["erased_sectors"], again["programmed_bytes"]) == (0, 0)
    assert again["skipped_sectors"] == 8


def test_board_file_with_wrong_sectors_fails_naming_the_sector(images, tmp_path, capsys,
                                                               monkeypatch):
    from hil.catalog import BOARDS_DIR

    boards = tmp_path / "boards"
    boards.mkdir()
    text = (BOARDS_DIR / "nucleo-f4.yaml").read_text()
    layout = ("      - {size: 16K, count: 4}\n      - {size: 64K, count: 1}\n"
              "      - {size: 128K, count: 3}\n")
    assert layout in text
    bad = boards / "f4-wrong-sectors.yaml"
    bad.write_text(text.replace("name: nucleo-f4", "name: f4-wrong-sectors")
                   .replace("aliases: [nucleo-f411re]\n", "")
                   .replace(layout, "      - {size: 64K, count: 8}\n"))
    monkeypatch.setenv("HIL_BOARDS_PATH", str(boards))
    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards:\n"
                    "  - {id: w, board: f4-wrong-sectors, probe: 'hilsim:w'}\n")
    monkeypatch.setenv("HIL_RACK", str(rack))
    code, out, err = flash(capsys, "--image", str(images.base), board="f4-wrong-sectors",
                           probe="hilsim:w")
    assert code == ExitCode.USAGE, err
    assert out == ""
    assert f"{bad}: memory[0].sectors:" in err
    assert "erased the chip's sector 0 = 0x08000000-0x08003FFF" in err
    assert "the board file has 0x08000000-0x0800FFFF there" in err
    assert "{size: 16K, count: 4}, {size: 64K, count: 1}, {size: 128K, count: 3}" in err
    assert "Traceback" not in err
    [record] = flash_records(images.base)
    assert record.payload["ok"] is False and record.payload["state"] == "unknown"


def test_write_protected_sector_fails_as_on_the_chip(images, rack, capsys, monkeypatch):
    code, _, err = flash(capsys, "--image", str(images.base))
    assert code == 0, err
    before = SimFlashStore.open("f4-a").read(0x08008000, 0x4000)
    monkeypatch.setenv("HIL_SIM_FAULTS", "wrp=2")  # sector 2: 0x08008000-0x0800BFFF
    code, out, err = flash(capsys, "--image", str(images.one_function))
    assert code == ExitCode.FLASH_FAILED, err
    assert out == ""
    assert "failed at 0x08008000" in err and "erase sector failure" in err
    assert SimFlashStore.open("f4-a").read(0x08008000, 0x4000) == before  # refused
    [record] = flash_records(images.one_function)
    assert record.payload["ok"] is False and record.payload["state"] == "unknown"


def test_locked_flash_controller_fails_flash_init(images, rack, capsys):
    from hil.boards import load_board
    from hil.errors import FlashProgramError
    from hil.flash.pyocd import PyOCDFlasher
    from hil.flash.sim.faults import Faults
    from hil.flash.sim.registry import resolve

    code, _, err = flash(capsys, "--image", str(images.base))
    assert code == 0, err
    os.environ["HIL_SIM_FAULTS"] = "locked"
    try:
        spec = resolve("f4-a")
        assert spec is not None and spec.faults == Faults(locked=True)
        flasher = PyOCDFlasher(load_board("nucleo-f4"), "hilsim:f4-a",
                               timeouts={"init": 0.5})
        with pytest.raises(FlashProgramError, match="init timed out"):
            flasher.flash(images.one_function)
    finally:
        del os.environ["HIL_SIM_FAULTS"]
    ih = IntelHex(str(images.base))  # still the old image: nothing was erased or written
    assert SimFlashStore.open("f4-a").read(F4_FLASH, 200 * 1024) == \
        ih.tobinstr(start=F4_FLASH, size=200 * 1024)
