"""The simulated chip's flash semantics, directly and through a real pyOCD session."""

from __future__ import annotations

import struct

import pytest

from hil.boards import load_board
from hil.flash.sim.chip import BusFault, SimChip
from hil.flash.sim.faults import Faults
from hil.flash.sim.store import SimFlashStore

BOARD = load_board("nucleo-f4")


@pytest.fixture
def chip(tmp_path) -> SimChip:
    return SimChip(BOARD, SimFlashStore.for_board("t", BOARD, tmp_path), Faults())


def call(chip: SimChip, fn: str, *args: int) -> int:
    """Run one flash-algorithm function the way pyOCD does: registers, then resume."""
    algo = chip.algo
    assert algo is not None
    for i, value in enumerate(args):
        chip.core[i] = value
    chip.core[14] = algo["load_address"] + 1
    chip.core[15] = algo[fn]
    chip.halted = True
    chip.debugen = True
    chip.write32(0xE000EDF0, 0xA05F0001)  # DHCSR: resume
    assert chip.halted
    return chip.core[0]


def load_algo(chip: SimChip) -> None:
    words = chip.algo["instructions"]
    chip.write_block(chip.algo["load_address"], struct.pack(f"<{len(words)}I", *words))


def test_erased_flash_reads_ff_and_bus_writes_fault(chip):
    assert chip.read32(0x08000000) == 0xFFFFFFFF
    with pytest.raises(BusFault, match="only through the flash controller"):
        chip.write32(0x08000000, 0)
    with pytest.raises(BusFault):
        chip.read32(0x30000000)  # nothing there


def test_algorithm_must_be_loaded_before_it_runs(chip):
    assert call(chip, "pc_init", 0x08000000, 0, 1) == 1
    load_algo(chip)
    assert call(chip, "pc_init", 0x08000000, 0, 1) == 0


def test_program_only_clears_bits_and_erase_uses_board_sectors(chip):
    load_algo(chip)
    buf = chip.algo["page_buffers"][0]
    chip.write_block(buf, b"\x0f" * 16)
    assert call(chip, "pc_program_page", 0x08010000, 16, buf) == 0
    chip.write_block(buf, b"\xf1" * 16)
    assert call(chip, "pc_program_page", 0x08010000, 16, buf) == 0
    assert chip.read_block(0x08010000, 16) == b"\x01" * 16  # 0x0F & 0xF1
    chip.write_block(buf, b"\x00" * 4)
    assert call(chip, "pc_program_page", 0x0800FFFC, 4, buf) == 0  # end of sector 3
    assert call(chip, "pc_erase_sector", 0x08010000) == 0  # sector 4: 64K
    assert chip.read_block(0x08010000, 0x10000) == b"\xff" * 0x10000
    assert chip.read32(0x0800FFFC) == 0  # the sector before is untouched


def test_device_id_register_is_read_only(chip):
    assert chip.read32(0xE0042000) & 0xFFF == 0x431
    chip.write32(0xE0042000, 0)
    assert chip.read32(0xE0042000) & 0xFFF == 0x431


def test_reset_loads_sp_and_pc_from_the_vector_table(chip):
    load_algo(chip)
    buf = chip.algo["page_buffers"][0]
    chip.write_block(buf, struct.pack("<II", 0x20008000, 0x08000199))
    assert call(chip, "pc_program_page", 0x08000000, 8, buf) == 0
    chip.debugen = True
    chip.write32(0xE000EDFC, 1)  # DEMCR.VC_CORERESET
    chip.write32(0xE000ED0C, 0x05FA0004)  # AIRCR.SYSRESETREQ
    assert chip.halted
    assert (chip.core[13], chip.core[15], chip.core[16]) == (0x20008000, 0x08000198, 1 << 24)


def test_pyocd_session_cannot_write_flash_over_the_bus(rack):
    from pyocd.core import exceptions
    from pyocd.core.helpers import ConnectHelper

    from hil.flash import target

    name, _ = target.register(BOARD)
    session = ConnectHelper.session_with_chosen_probe(
        unique_id="hilsim:f4-a", target_override=name, blocking=False, no_config=True)
    assert session is not None
    with session:
        session.target.halt()
        session.target.write32(0x20000100, 0x12345678)
        assert session.target.read32(0x20000100) == 0x12345678
        with pytest.raises(exceptions.TransferFaultError):
            session.target.write32(0x08000000, 0)
            session.target.flush()
        assert session.target.read32(0x08000000) == 0xFFFFFFFF
