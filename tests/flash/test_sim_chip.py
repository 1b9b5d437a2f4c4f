"""The simulated chip: pyOCD's real flash algorithm executed against the flash controller
model, directly through the debug registers and through a real pyOCD session."""

from __future__ import annotations

import struct

import pytest

from hil.boards import load_board
from hil.flash.sim.chip import BusFault, SimChip
from hil.flash.sim.faults import Faults
from hil.flash.sim.store import SimFlashStore
from hil.flash.target import flash_algo

BOARD = load_board("nucleo-f4")
ALGO = flash_algo(BOARD)
DHCSR, DEMCR, AIRCR = 0xE000EDF0, 0xE000EDFC, 0xE000ED0C
FLASH_SR, FLASH_CR, FLASH_KEYR = 0x40023C0C, 0x40023C10, 0x40023C04
FLASH_OPTKEYR, FLASH_OPTCR = 0x40023C08, 0x40023C14
S_HALT = 1 << 17
WRPERR, PGPERR, PGSERR = 1 << 4, 1 << 6, 1 << 7
ERASE, PROGRAM = 1, 2  # pyOCD's Init() operation codes


def make_chip(tmp_path, faults: Faults | None = None) -> SimChip:
    chip = SimChip(BOARD, SimFlashStore.for_board("t", BOARD, tmp_path), faults or Faults())
    chip.write32(DHCSR, 0xA05F0003)  # debug enabled, halted
    return chip


@pytest.fixture
def chip(tmp_path) -> SimChip:
    return make_chip(tmp_path)


def resume(chip: SimChip, pc: int, *args: int) -> None:
    """Set registers the way pyOCD calls an algorithm function, then clear C_HALT."""
    for i, value in enumerate(args):
        chip.core[i] = value
    chip.core[9] = ALGO["static_base"]
    chip.core[13] = ALGO["begin_stack"]
    chip.core[14] = ALGO["load_address"] + 1
    chip.core[15] = pc
    chip.core[16] = 1 << 24
    chip.write32(DHCSR, 0xA05F0001)


def halted_within(chip: SimChip, polls: int) -> bool:
    return any(chip.read32(DHCSR) & S_HALT for _ in range(polls))


def call(chip: SimChip, fn: str, *args: int) -> int:
    """Run one algorithm function to its breakpoint, as pyOCD does; its result (r0)."""
    resume(chip, ALGO[fn], *args)
    assert halted_within(chip, 200), f"{fn} did not return"
    assert chip.core[15] == ALGO["load_address"]  # stopped at the return breakpoint
    return chip.core[0]


def load_algo(chip: SimChip) -> None:
    words = ALGO["instructions"]
    chip.write_block(ALGO["load_address"], struct.pack(f"<{len(words)}I", *words))


def program(chip: SimChip, address: int, data: bytes) -> int:
    buf = ALGO["page_buffers"][0]
    chip.write_block(buf, data)
    return call(chip, "pc_program_page", address, len(data), buf)


def test_bus_write_to_flash_without_the_controller_sets_pgserr(chip):
    assert chip.read32(0x08000000) == 0xFFFFFFFF
    chip.write32(0x08000000, 0)  # no PG: the controller refuses, as the chip does
    assert chip.read32(0x08000000) == 0xFFFFFFFF
    assert chip.read32(FLASH_SR) & PGSERR
    chip.write32(FLASH_SR, PGSERR)  # write 1 to clear
    assert chip.read32(FLASH_SR) == 0
    with pytest.raises(BusFault):
        chip.read32(0x30000000)  # nothing there


def test_code_that_is_not_there_faults_instead_of_returning(chip):
    # RAM holds zeros, not the algorithm: the core runs off the end of RAM and faults.
    resume(chip, ALGO["pc_init"], 0x08000000, 0, ERASE)
    assert not halted_within(chip, 50)  # pyOCD would time out
    chip.write32(DHCSR, 0xA05F0003)  # pyOCD's halt after its timeout
    assert chip.core[16] & 0x1FF == 3  # in HardFault, as pyOCD reports (IPSR=3)
    load_algo(chip)
    assert call(chip, "pc_init", 0x08000000, 0, ERASE) == 0


def test_algorithm_unlocks_programs_only_clearing_bits_and_erases_by_chip_sector(chip):
    load_algo(chip)
    assert chip.read32(FLASH_CR) >> 31 == 1  # locked after reset
    assert call(chip, "pc_init", 0x08000000, 0, PROGRAM) == 0
    assert chip.read32(FLASH_CR) >> 31 == 0  # the algorithm wrote both keys
    assert program(chip, 0x08010000, b"\x0f" * 16) == 0
    assert program(chip, 0x08010000, b"\xf1" * 16) == 0
    assert chip.read_block(0x08010000, 16) == b"\x01" * 16  # 0x0F & 0xF1
    assert program(chip, 0x0800FFFC, b"\x00" * 4) == 0  # end of sector 3
    assert call(chip, "pc_erase_sector", 0x08010000) == 0  # sector 4: 64K
    assert chip.read_block(0x08010000, 0x10000) == b"\xff" * 0x10000
    assert chip.read32(0x0800FFFC) == 0  # the sector before is untouched
    assert call(chip, "pc_unInit", 0) == 0
    assert chip.read32(FLASH_CR) >> 31 == 1  # locked again
    assert chip.stats == {"erased_sectors": 1, "programmed_bytes": 36}


def test_an_algorithm_with_a_wrong_key_faults_as_on_the_chip(chip):
    # The chip runs whatever is in RAM: pyOCD's algorithm with its second unlock key changed
    # bus-faults in Init() and never returns (pyOCD reports a timeout), and the controller
    # stays locked until reset.
    words = list(ALGO["instructions"])
    words[words.index(0xCDEF89AB)] = 0xCDEF89AC
    chip.write_block(ALGO["load_address"], struct.pack(f"<{len(words)}I", *words))
    resume(chip, ALGO["pc_init"], 0x08000000, 0, ERASE)
    assert not halted_within(chip, 20)
    chip.write32(DHCSR, 0xA05F0003)
    assert chip.core[16] & 0x1FF == 3
    load_algo(chip)  # the right algorithm cannot unlock either until a reset
    resume(chip, ALGO["pc_init"], 0x08000000, 0, ERASE)
    assert not halted_within(chip, 20)
    chip.write32(AIRCR, 0x05FA0004)
    chip.write32(DHCSR, 0xA05F0003)
    assert call(chip, "pc_init", 0x08000000, 0, ERASE) == 0


def test_wrong_key_locks_the_controller_until_reset(chip):
    chip.write32(FLASH_KEYR, 0x45670123)
    with pytest.raises(BusFault, match="wrong key"):
        chip.write32(FLASH_KEYR, 0x12345678)
    with pytest.raises(BusFault, match="locked until reset"):
        chip.write32(FLASH_KEYR, 0x45670123)
    chip.write32(AIRCR, 0x05FA0004)  # SYSRESETREQ
    chip.write32(FLASH_KEYR, 0x45670123)
    chip.write32(FLASH_KEYR, 0xCDEF89AB)
    assert chip.read32(FLASH_CR) >> 31 == 0


def test_write_protection_from_option_bytes_refuses_erase_and_program(chip):
    load_algo(chip)
    assert call(chip, "pc_init", 0x08000000, 0, PROGRAM) == 0
    assert program(chip, 0x08004000, b"\x00" * 8) == 0
    chip.write32(FLASH_OPTKEYR, 0x08192A3B)
    chip.write32(FLASH_OPTKEYR, 0x4C5D6E7F)
    optcr = chip.read32(FLASH_OPTCR)
    assert optcr == 0x0FFFAAEC  # reset option bytes, unlocked
    chip.write32(FLASH_OPTCR, (optcr & ~(1 << 17)) | 2)  # nWRP1 = 0, OPTSTRT
    assert call(chip, "pc_erase_sector", 0x08004000) == 1
    assert chip.read32(0x08004000) == 0  # not erased
    assert program(chip, 0x08004010, b"\x00" * 4) == 1
    assert chip.read32(0x08004010) == 0xFFFFFFFF  # not programmed
    assert chip.read32(FLASH_SR) & 0xF0 == 0  # the algorithm cleared WRPERR after seeing it
    assert call(chip, "pc_erase_sector", 0x08000000) == 0  # sector 0 is not protected


def test_wrp_fault_protects_the_sector_and_psize_mismatch_sets_pgperr(tmp_path):
    chip = make_chip(tmp_path, Faults(wrp=(2,)))
    assert (chip.read32(FLASH_OPTCR) >> 16) & 0xFFF == 0xFFF & ~(1 << 2)
    chip.write32(FLASH_KEYR, 0x45670123)
    chip.write32(FLASH_KEYR, 0xCDEF89AB)
    chip.write32(FLASH_CR, 0x1 | (2 << 8))  # PG, PSIZE x32
    chip.write_sized(0x08000000, 0x00, 1)  # a byte write with x32 parallelism
    assert chip.read32(FLASH_SR) & PGPERR
    chip.write32(0x08008000, 0)  # sector 2
    assert chip.read32(FLASH_SR) & WRPERR
    assert chip.read32(0x08008000) == 0xFFFFFFFF
    chip.write32(0x08000000, 0x12345678)
    assert chip.read32(0x08000000) == 0x12345678


def test_hung_code_keeps_running_until_halted(chip):
    chip.write_block(0x20000100, b"\xfe\xe7")  # b .
    resume(chip, 0x20000100)
    assert not halted_within(chip, 3)
    chip.write32(DHCSR, 0xA05F0003)
    assert chip.read32(DHCSR) & S_HALT and chip.core[15] == 0x20000100


def test_step_executes_one_instruction(chip):
    chip.write_block(0x20000100, b"\x05\x20\x00\xbe")  # movs r0, #5; bkpt
    chip.core[0], chip.core[15] = 0, 0x20000100
    chip.write32(DHCSR, 0xA05F0005)  # C_STEP, C_DEBUGEN
    assert chip.read32(DHCSR) & S_HALT
    assert (chip.core[0], chip.core[15]) == (5, 0x20000102)


def test_reset_loads_sp_and_pc_from_the_vector_table(chip):
    load_algo(chip)
    assert call(chip, "pc_init", 0x08000000, 0, PROGRAM) == 0
    assert program(chip, 0x08000000, struct.pack("<II", 0x20008000, 0x08000199)) == 0
    chip.write32(DEMCR, 1)  # DEMCR.VC_CORERESET
    chip.write32(AIRCR, 0x05FA0004)  # AIRCR.SYSRESETREQ
    assert chip.halted
    assert (chip.core[13], chip.core[15], chip.core[16]) == (0x20008000, 0x08000198, 1 << 24)
    assert chip.read32(FLASH_CR) >> 31 == 1  # the reset locked the controller again


def test_device_id_register_is_read_only(chip):
    assert chip.read32(0xE0042000) & 0xFFF == 0x431
    chip.write32(0xE0042000, 0)
    assert chip.read32(0xE0042000) & 0xFFF == 0x431


def test_pyocd_session_cannot_write_flash_over_the_bus(rack):
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
        session.target.write32(0x08000000, 0)
        session.target.flush()
        assert session.target.read32(0x08000000) == 0xFFFFFFFF
        assert session.target.read32(FLASH_SR) & PGSERR  # as on the chip: no PG set
