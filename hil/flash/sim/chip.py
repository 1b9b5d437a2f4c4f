"""The simulated Cortex-M chip behind a simulated probe: memory, debug registers, flash.

Models what pyOCD touches: RAM, the board's flash with real semantics (erased = 0xFF,
programming only clears bits, erase by the board's sectors, no writes from the bus), the
ROM table and the SCS/DWT/FPB identification registers, the debug registers (DHCSR, DCRSR,
DCRDR, DEMCR, AIRCR, DFSR) with halt, core register access and reset with vector catch, and
the device-id register. Instructions are not executed: when pyOCD resumes the core at an
entry point of the flash algorithm it loaded (or of its CRC analyzer), the chip applies that
function's effect, puts the result in r0 and halts on the return breakpoint, as the real
algorithm would.
"""

from __future__ import annotations

import binascii
import logging
import struct
import time
from collections.abc import Callable

from hil.boards import Board
from hil.flash.sim.faults import Faults
from hil.flash.sim.store import SimFlashStore

LOG = logging.getLogger(__name__)


class BusFault(Exception):
    """A bus access the chip rejects (the probe turns it into a FAULT response)."""

    def __init__(self, address: int, why: str) -> None:
        super().__init__(f"bus fault at 0x{address:08X}: {why}")
        self.address = address


# Debug registers (ARMv7-M ARM, C1.6) and friends.
DHCSR, DCRSR, DCRDR, DEMCR = 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000EDFC
AIRCR, DFSR, CPUID = 0xE000ED0C, 0xE000ED30, 0xE000ED00
DBGKEY, VECTKEY = 0xA05F, 0x05FA
C_DEBUGEN, C_HALT, C_STEP = 1 << 0, 1 << 1, 1 << 2
S_REGRDY, S_HALT, S_RETIRE_ST, S_RESET_ST = 1 << 16, 1 << 17, 1 << 24, 1 << 25
DFSR_HALTED, DFSR_BKPT, DFSR_VCATCH = 1 << 0, 1 << 1, 1 << 3
VC_CORERESET = 1 << 0
PPB_START, PPB_END = 0xE0000000, 0xE0100000
ROM_TABLE = 0xE00FF000
PERIPH_START, PERIPH_END = 0x40000000, 0x60000000
XPSR_T = 1 << 24

# Component identification of a Cortex-M4 (CoreSight class 0xE components, ARM designer).
_ARM_PIDR4 = 0x04


def _id_block(cidr_class: int, part: int, pidr2: int = 0x0B) -> dict[int, int]:
    regs = {0xFD0: _ARM_PIDR4, 0xFE0: part & 0xFF, 0xFE4: 0xB0 | (part >> 8), 0xFE8: pidr2,
            0xFEC: 0, 0xFF0: 0x0D, 0xFF4: cidr_class << 4, 0xFF8: 0x05, 0xFFC: 0xB1}
    return regs


def _constant_registers(device_id_address: int | None, device_id: int | None) -> dict[int, int]:
    regs: dict[int, int] = {
        CPUID: 0x410FC241,  # Cortex-M4 r0p1
        0xE000ED6C: 0x01111131,  # ID_ISAR3: SIMD (DSP) present
        0xE000ED78: 0,  # CLIDR: no cache
        0xE000ED90: 0x00000800,  # MPU_TYPE: 8 regions
        0xE000EF40: 0x10110021,  # MVFR0: single-precision FPU (FPv4-SP)
        0xE000EF44: 0x11000011,  # MVFR1
        0xE000EF48: 0,  # MVFR2 (absent on M4)
        0xE0001000: 0x40000000,  # DWT_CTRL: 4 comparators
        0xE0002000: 0x00000260,  # FP_CTRL: 6 code, 2 literal comparators (rev 1)
    }
    # ROM table: SCS, DWT, FPB, then the end marker.
    for offset, base in enumerate((0xE000E000, 0xE0001000, 0xE0002000)):
        regs[ROM_TABLE + 4 * offset] = ((base - ROM_TABLE) & 0xFFFFF000) | 0x3
    regs[ROM_TABLE + 12] = 0
    for base, block in ((ROM_TABLE, _id_block(0x1, 0x4C4)),
                        (0xE000E000, _id_block(0xE, 0x00C)),
                        (0xE0001000, _id_block(0xE, 0x002, 0x3B)),
                        (0xE0002000, _id_block(0xE, 0x003, 0x2B))):
        for offset, value in block.items():
            regs[base + offset] = value
    if device_id_address is not None and device_id is not None:
        regs[device_id_address] = device_id
    return regs


class SimChip:
    """One simulated chip: its memories, its core's debug state and its flash algorithm."""

    def __init__(self, board: Board, store: SimFlashStore, faults: Faults) -> None:
        from hil.flash.target import family_for, flash_algo

        self.board = board
        self.store = store
        self.faults = faults
        self.rams = [(r.origin, r.end, bytearray(r.length)) for r in board.regions
                     if r.kind == "ram"]
        self.flash = [(a.origin, a.end, a.offset) for a in store.areas]
        self.sectors = [s for r in board.flash_regions() for s in r.sectors]
        chip = board.flash.chip_id
        device_id = None
        if chip is not None:
            # STM32: DBGMCU_IDCODE REV_ID in the high half (rev A = 0x1000), DEV_ID below.
            device_id = faults.device_id if faults.device_id is not None else chip.value
            device_id |= 0x10000000 & ~chip.mask & 0xFFFFFFFF
        self.regs = _constant_registers(chip.address if chip else None, device_id)
        self.algo = flash_algo(board) if family_for(board) else None
        self.functions: dict[int, Callable[[], int]] = {}
        if self.algo:
            a = self.algo
            for key, fn in (("pc_init", self._algo_init), ("pc_unInit", self._algo_uninit),
                            ("pc_erase_sector", self._algo_erase_sector),
                            ("pc_eraseAll", self._algo_erase_all),
                            ("pc_program_page", self._algo_program_page)):
                if a.get(key) is not None:
                    self.functions[a[key] & ~1] = fn
            if a.get("analyzer_supported"):
                self.functions[a["analyzer_address"] & ~1] = self._algo_crc
        # Core state.
        self.core = [0] * 128
        self.halted = False
        self.debugen = False
        self.dhcsr_ctrl = 0
        self.reset_sticky = False
        self.retire_sticky = False
        self.busy_until = 0.0
        self.in_reset = False
        self.dirty = False
        # What the flash algorithm did, for tests and benchmarks.
        self.stats = {"erased_sectors": 0, "programmed_bytes": 0, "crc_pages": 0}
        self._reset_core()
        self.retire_sticky = True

    # ------------------------------------------------------------------ memory
    def _ram(self, address: int, size: int) -> tuple[bytearray, int] | None:
        for start, end, buf in self.rams:
            if start <= address and address + size <= end:
                return buf, address - start
        return None

    def _flash(self, address: int, size: int) -> int | None:
        for start, end, offset in self.flash:
            if start <= address and address + size <= end:
                return offset + address - start
        return None

    def read_block(self, address: int, size: int) -> bytes:
        """Bulk read of RAM or flash (fast path for MEM-AP block transfers)."""
        ram = self._ram(address, size)
        if ram is not None:
            buf, off = ram
            return bytes(buf[off:off + size])
        flash_off = self._flash(address, size)
        if flash_off is not None:
            return bytes(self.store.data[flash_off:flash_off + size])
        return b"".join(struct.pack("<I", self.read32(address + i)) for i in range(0, size, 4))

    def write_block(self, address: int, data: bytes) -> None:
        ram = self._ram(address, len(data))
        if ram is not None:
            buf, off = ram
            buf[off:off + len(data)] = data
            return
        for i in range(0, len(data), 4):
            self.write32(address + i, struct.unpack_from("<I", data, i)[0])

    def read32(self, address: int) -> int:
        address &= 0xFFFFFFFC
        ram = self._ram(address, 4)
        if ram is not None:
            return struct.unpack_from("<I", ram[0], ram[1])[0]
        off = self._flash(address, 4)
        if off is not None:
            return struct.unpack_from("<I", self.store.data, off)[0]
        if address == DHCSR:
            return self._read_dhcsr()
        if address == AIRCR:
            return 0xFA050000 | (self.regs.get(AIRCR, 0) & 0x700)
        if PPB_START <= address < PPB_END or PERIPH_START <= address < PERIPH_END:
            return self.regs.get(address, 0)
        raise BusFault(address, "no memory or peripheral here")

    def write32(self, address: int, value: int) -> None:
        address &= 0xFFFFFFFC
        value &= 0xFFFFFFFF
        ram = self._ram(address, 4)
        if ram is not None:
            struct.pack_into("<I", ram[0], ram[1], value)
            return
        if self._flash(address, 4) is not None:
            raise BusFault(address, "flash is written only through the flash controller "
                           "(the flash algorithm)")
        if address == DHCSR:
            self._write_dhcsr(value)
        elif address == DCRSR:
            self._write_dcrsr(value)
        elif address == AIRCR:
            self._write_aircr(value)
        elif address == DFSR:
            self.regs[DFSR] = self.regs.get(DFSR, 0) & ~value
        elif address in (CPUID, 0xE000EF40, 0xE000EF44, 0xE000EF48) or \
                ROM_TABLE <= address < PPB_END:
            pass  # read-only
        elif address == 0xE0002000:  # FP_CTRL: only ENABLE is writable (with KEY)
            if value & 0x2:
                self.regs[address] = (self.regs[address] & ~1) | (value & 1)
        elif PPB_START <= address < PPB_END or PERIPH_START <= address < PERIPH_END:
            if self.board.flash.chip_id and address == self.board.flash.chip_id.address:
                return  # the device id is read-only
            self.regs[address] = value
        else:
            raise BusFault(address, "no memory or peripheral here")

    def read_sized(self, address: int, size: int) -> int:
        """A byte/halfword/word read, returned on its byte lanes as a MEM-AP delivers it."""
        word = self.read32(address)
        if size == 4:
            return word
        mask = (1 << (8 * size)) - 1
        shift = 8 * (address & 3)
        return word & (mask << shift)

    def write_sized(self, address: int, value: int, size: int) -> None:
        if size == 4:
            self.write32(address, value)
            return
        ram = self._ram(address, size)
        shift = 8 * (address & 3)
        mask = ((1 << (8 * size)) - 1)
        part = (value >> shift) & mask
        if ram is not None:
            ram[0][ram[1]:ram[1] + size] = part.to_bytes(size, "little")
            return
        word = self.read32(address)
        self.write32(address, (word & ~(mask << shift)) | (part << shift))

    # ------------------------------------------------------------------ core and debug
    def _reset_core(self) -> None:
        vt = self.board.app_start
        try:
            sp, pc = self.read32(vt), self.read32(vt + 4)
        except BusFault:
            sp, pc = 0, 0
        self.core[:] = [0] * 128
        self.core[13] = self.core[17] = sp & ~3
        self.core[15] = pc & ~1
        self.core[14] = 0xFFFFFFFF
        self.core[16] = XPSR_T if pc & 1 else 0
        self.reset_sticky = True
        self.busy_until = 0.0
        if self.regs.get(DEMCR, 0) & VC_CORERESET and self.debugen:
            self.halted = True
            self.regs[DFSR] = self.regs.get(DFSR, 0) | DFSR_VCATCH
        else:
            self.halted = False
            self.retire_sticky = True

    def system_reset(self) -> None:
        """SYSRESETREQ or nRESET: the core restarts from the vector table in flash."""
        self.persist()
        self._reset_core()
        self.publish_state(reset=True)  # rack host hook (hil/flash/sim/runstate.py)

    # --- rack host hook: publish resets and halts for the process running the CPU in QEMU
    _published_running: bool | None = None

    def publish_state(self, reset: bool = False) -> None:
        """Tell hil.flash.sim.runstate readers about a reset, halt or resume of the core."""
        from hil.flash.sim.runstate import publish_reset, publish_running

        running = not self.halted and not self.in_reset
        if reset:
            publish_reset(self.store.directory, self.store.name, running)
        elif running != self._published_running:
            publish_running(self.store.directory, self.store.name, running)
        self._published_running = running
    # --- end of rack host hook

    def _read_dhcsr(self) -> int:
        halted = self.halted and time.monotonic() >= self.busy_until
        value = self.dhcsr_ctrl | S_REGRDY
        if halted:
            value |= S_HALT
        if self.reset_sticky:
            value |= S_RESET_ST
        if self.retire_sticky or not halted:
            value |= S_RETIRE_ST
        self.reset_sticky = False
        self.retire_sticky = False
        return value

    def _write_dhcsr(self, value: int) -> None:
        if value >> 16 != DBGKEY:
            return
        self.dhcsr_ctrl = value & 0x2F
        self.debugen = bool(value & C_DEBUGEN)
        if not self.debugen:
            self.halted = False
            self.publish_state()  # rack host hook
            return
        if time.monotonic() < self.busy_until:
            if value & C_HALT:  # a halt request stops the algorithm where it is
                self.busy_until = 0.0
                self.regs[DFSR] = self.regs.get(DFSR, 0) | DFSR_HALTED
            return
        if value & C_HALT:
            if not self.halted:
                self.halted = True
                self.regs[DFSR] = self.regs.get(DFSR, 0) | DFSR_HALTED
        elif self.halted:
            self._run(step=bool(value & C_STEP))
        self.publish_state()  # rack host hook

    def _write_dcrsr(self, value: int) -> None:
        reg = value & 0x7F
        if value & (1 << 16):
            self.core[reg] = self.regs.get(DCRDR, 0)
        else:
            self.regs[DCRDR] = self.core[reg]

    def _write_aircr(self, value: int) -> None:
        if value >> 16 != VECTKEY:
            return
        self.regs[AIRCR] = value & 0x700
        if value & 0x5:  # SYSRESETREQ (bit 2) or VECTRESET (bit 0)
            self.system_reset()

    def _run(self, step: bool) -> None:
        """Resume the core: run a flash-algorithm function to its breakpoint, or let it go."""
        pc = self.core[15] & ~1
        fn = self.functions.get(pc)
        self.retire_sticky = True
        if fn is None:
            if step:
                self.core[15] = (pc + 2) & 0xFFFFFFFF
                return
            self.halted = False  # the firmware runs (not emulated here)
            return
        result = fn()
        self.core[0] = result & 0xFFFFFFFF
        self.core[15] = self.core[14] & ~1  # returns to LR: the BKPT at the algo's start
        self.regs[DFSR] = self.regs.get(DFSR, 0) | DFSR_BKPT
        self.halted = True
        if self.faults.slow:
            self.busy_until = time.monotonic() + self.faults.slow

    # ------------------------------------------------------------------ flash algorithm
    def _blob_loaded(self, address: int, words) -> bool:
        try:
            return self.read_block(address, 4 * len(words)) == struct.pack(
                f"<{len(words)}I", *words)
        except BusFault:
            return False

    def _algo_init(self) -> int:
        assert self.algo is not None
        if not self._blob_loaded(self.algo["load_address"], self.algo["instructions"]):
            LOG.warning("simulated core ran Init() but the flash algorithm is not in RAM")
            return 1
        return 0

    def _algo_uninit(self) -> int:
        self.persist()
        return 0

    def _sector_at(self, address: int):
        return next((s for s in self.sectors if s.start <= address < s.end), None)

    def _algo_erase_sector(self) -> int:
        sector = self._sector_at(self.core[0])
        if sector is None:
            return 1
        if any(sector.start <= a < sector.end for a in self.faults.erase_at):
            LOG.info("simulated erase failure in sector 0x%08X", sector.start)
            return 1
        off = self._flash(sector.start, sector.size)
        assert off is not None
        self.store.data[off:off + sector.size] = b"\xff" * sector.size
        self.stats["erased_sectors"] += 1
        self.dirty = True
        return 0

    def _algo_erase_all(self) -> int:
        for sector in self.sectors:
            self.core[0] = sector.start
            if self._algo_erase_sector():
                return 1
        return 0

    def _algo_program_page(self) -> int:
        address, size, buf = self.core[0], self.core[1], self.core[2]
        off = self._flash(address, size)
        if off is None or self._ram(buf, size) is None:
            return 1
        data = self.read_block(buf, size)
        fail = min((a for a in self.faults.program_at if address <= a < address + size),
                   default=None)
        count = size if fail is None else fail - address
        flash = self.store.data
        for i in range(count):
            if address + i in self.faults.corrupt_at:
                continue  # this cell does not program
            flash[off + i] &= data[i]
        self.stats["programmed_bytes"] += count
        self.dirty = True
        if fail is not None:
            LOG.info("simulated program failure at 0x%08X", fail)
            return 1
        return 0

    def _algo_crc(self) -> int:
        from pyocd.flash.flash import _ANALYZER_CODE

        assert self.algo is not None
        if not self._blob_loaded(self.algo["analyzer_address"], _ANALYZER_CODE):
            return 1
        ptr, count = self.core[0], self.core[1]
        for i in range(count):
            value = self.read32(ptr + 4 * i)
            size = 1 << (value & 0xFFFF)
            address = (value >> 16) * size
            try:
                data = self.read_block(address, size)
            except BusFault:
                data = b""
            self.write32(ptr + 4 * i, binascii.crc32(data) & 0xFFFFFFFF)
            self.stats["crc_pages"] += 1
        return 0

    # ------------------------------------------------------------------ persistence
    def persist(self) -> None:
        if self.dirty:
            self.store.save()
            self.dirty = False
