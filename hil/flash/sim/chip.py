"""The simulated Cortex-M chip behind a simulated probe: memory, debug registers, flash.

Models what pyOCD touches: RAM, the board's flash array (erased = 0xFF, changed only through
the flash controller), the ROM table and the SCS/DWT/FPB identification registers, the debug
registers (DHCSR, DCRSR, DCRDR, DEMCR, AIRCR, DFSR) with halt, step, core register access and
reset with vector catch, the device-id register, and the peripherals a flash algorithm uses
(``hil.flash.sim.peripheral``; for the STM32F4 family the FLASH interface and IWDG of
``hil.flash.sim.stm32f4_flash``).

When pyOCD resumes the core with PC in RAM (a flash algorithm or pyOCD's CRC analyzer), the
code is executed instruction by instruction on an emulated core (``hil.flash.sim.cpu``)
until it reaches its return breakpoint; a run that does not finish goes on at each DHCSR
poll, so a hung algorithm looks running and pyOCD's own timeout reports it. A fault in that
code (a bus error from a locked flash controller, an access to nothing) takes the core into
HardFault as the chip would. With PC elsewhere the core runs the firmware, which this process
does not execute (a virtual board runs it in QEMU, see ``hil.flash.sim.runstate``).

The board file's sectors are what pyOCD erases by; the controller erases by the chip's own
layout. A sector erase whose range is not a sector of the board file raises
``SectorLayoutError`` naming the sector and the board file key.
"""

from __future__ import annotations

import logging
import struct
import time

from hil.boards import Board
from hil.errors import ConfigError
from hil.flash.sim.faults import Faults
from hil.flash.sim.peripheral import BusFault, FlashController, Peripheral
from hil.flash.sim.store import SimFlashStore

LOG = logging.getLogger(__name__)

__all__ = ["BusFault", "SectorLayoutError", "SimChip"]


class SectorLayoutError(ConfigError):
    """The board file's flash sectors are not the chip's (found by the simulated chip)."""


# Debug registers (ARMv7-M ARM, C1.6) and friends.
DHCSR, DCRSR, DCRDR, DEMCR = 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000EDFC
AIRCR, DFSR, CPUID = 0xE000ED0C, 0xE000ED30, 0xE000ED00
DBGKEY, VECTKEY = 0xA05F, 0x05FA
C_DEBUGEN, C_HALT, C_STEP = 1 << 0, 1 << 1, 1 << 2
S_REGRDY, S_HALT, S_LOCKUP = 1 << 16, 1 << 17, 1 << 19
S_RETIRE_ST, S_RESET_ST = 1 << 24, 1 << 25
DFSR_HALTED, DFSR_BKPT, DFSR_VCATCH = 1 << 0, 1 << 1, 1 << 3
VC_CORERESET, VC_HARDERR = 1 << 0, 1 << 10
HARDFAULT = 3  # exception number (IPSR) and vector index
# How long the emulated core runs code from RAM: on resume, then at each DHCSR poll while
# it has not reached its breakpoint (pyOCD polls in a loop and applies its own timeouts).
RESUME_SLICE, POLL_SLICE, STEP_SLICE = 0.5, 0.05, 0.05
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


def _peripherals(board: Board, store: SimFlashStore,
                 faults: Faults) -> tuple[FlashController | None, list[Peripheral]]:
    """The flash controller and other peripherals of the board's chip family."""
    from hil.flash.target import family_for

    family = family_for(board)
    if family is None or family.name != "stm32f4" or not store.areas:
        return None, []
    from hil.flash.sim.stm32f4_flash import Iwdg, Stm32f4Flash

    area = store.areas[0]
    flash = Stm32f4Flash(store.data, area.offset, area.length, faults, origin=area.origin)
    return flash, [flash, Iwdg()]


class SimChip:
    """One simulated chip: its memories, peripherals, core and debug state."""

    def __init__(self, board: Board, store: SimFlashStore, faults: Faults,
                 layout_error: type[SectorLayoutError] = SectorLayoutError) -> None:
        self.board = board
        self.layout_error = layout_error  # the probe raises a pyOCD-compatible subclass
        self.store = store
        self.faults = faults
        self.rams = [(r.origin, r.end, bytearray(r.length)) for r in board.regions
                     if r.kind == "ram"]
        self.flash = [(a.origin, a.end, a.offset) for a in store.areas]
        chip = board.flash.chip_id
        device_id = None
        if chip is not None:
            # STM32: DBGMCU_IDCODE REV_ID in the high half (rev A = 0x1000), DEV_ID below.
            device_id = faults.device_id if faults.device_id is not None else chip.value
            device_id |= 0x10000000 & ~chip.mask & 0xFFFFFFFF
        self.regs = _constant_registers(chip.address if chip else None, device_id)
        self.controller, self.peripherals = _peripherals(board, store, faults)
        self._blocks = {block: p for p in self.peripherals  # 1 KiB block -> peripheral
                        for block in range(p.base >> 10, ((p.base + p.size - 1) >> 10) + 1)}
        self._cpu = None  # hil.flash.sim.cpu.SimCpu, built on the first run from RAM
        # Core state.
        self.core = [0] * 128
        self.halted = False
        self.debugen = False
        self.dhcsr_ctrl = 0
        self.reset_sticky = False
        self.retire_sticky = False
        self.busy_until = 0.0
        self.in_reset = False
        self.emulating = False  # running code from RAM on the emulated core
        self.faulted = False  # took a HardFault (or locked up) running code from RAM
        self.lockup = False
        self.run_started = 0.0
        self.dirty = False
        self._reset_core()
        self.retire_sticky = True

    @property
    def stats(self) -> dict[str, int]:
        """What the flash controller did (sectors erased, bytes programmed), for benchmarks."""
        return dict(self.controller.stats) if self.controller else {}

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

    def _peripheral(self, address: int) -> Peripheral | None:
        p = self._blocks.get(address >> 10)
        return p if p is not None and p.contains(address) else None

    def _ram_written(self, address: int, size: int) -> None:
        if self._cpu is not None:
            self._cpu.invalidate(address, size)

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
            self._ram_written(address, len(data))
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
        if PERIPH_START <= address < PERIPH_END:
            return self.periph_read(address, 4, debugger=True)
        if PPB_START <= address < PPB_END:
            return self.regs.get(address, 0)
        raise BusFault(address, "no memory or peripheral here")

    def write32(self, address: int, value: int) -> None:
        address &= 0xFFFFFFFC
        value &= 0xFFFFFFFF
        ram = self._ram(address, 4)
        if ram is not None:
            struct.pack_into("<I", ram[0], ram[1], value)
            self._ram_written(address, 4)
            return
        if self._flash(address, 4) is not None:
            self._write_flash(address, 4, value)
        elif address == DHCSR:
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
        elif PERIPH_START <= address < PERIPH_END:
            self.periph_write(address, 4, value, debugger=True)
        elif PPB_START <= address < PPB_END:
            if self.board.flash.chip_id and address == self.board.flash.chip_id.address:
                return  # the device id is read-only
            self.regs[address] = value
        else:
            raise BusFault(address, "no memory or peripheral here")

    def _write_flash(self, address: int, size: int, value: int) -> None:
        """A bus write to the flash array: whatever the flash controller makes of it."""
        if self.controller is None:
            raise BusFault(address, "flash is written only through the flash controller "
                           "(this chip has no model of one)")
        self.controller.program(address, size, value)

    def periph_read(self, address: int, size: int, debugger: bool = False) -> int:
        """A read in the peripheral space: a modelled peripheral, else 0 (the debugger
        reads back what it wrote to unmodelled addresses, as before)."""
        p = self._peripheral(address)
        if p is not None:
            return p.read(address - p.base, size)
        return self.regs.get(address, 0) if debugger else 0

    def periph_write(self, address: int, size: int, value: int, debugger: bool = False) -> None:
        p = self._peripheral(address)
        if p is not None:
            p.write(address - p.base, size, value)
            self._check_erased_sectors()  # the debugger can start an erase too
        elif debugger:
            self.regs[address] = value

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
            self._ram_written(address, size)
            return
        if self._flash(address, size) is not None:
            self._write_flash(address, size, part)
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
        self.emulating = self.faulted = self.lockup = False
        for p in self.peripherals:
            p.reset()
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

        # The firmware runs only when the core is neither halted, held in reset, executing
        # code from RAM here, nor stuck in a fault taken there.
        running = not (self.halted or self.in_reset or self.emulating or self.faulted)
        if reset:
            publish_reset(self.store.directory, self.store.name, running)
        elif running != self._published_running:
            publish_running(self.store.directory, self.store.name, running)
        self._published_running = running
    # --- end of rack host hook

    def _read_dhcsr(self) -> int:
        if self.emulating:
            self._advance(POLL_SLICE)
        halted = self.halted and time.monotonic() >= self.busy_until
        value = self.dhcsr_ctrl | S_REGRDY
        if halted:
            value |= S_HALT
        if self.lockup and not self.halted:
            value |= S_LOCKUP
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
            self.halted = self.emulating = False
            self.publish_state()  # rack host hook
            return
        if time.monotonic() < self.busy_until:
            if value & C_HALT:  # a halt request stops the (slow) algorithm where it is
                self.busy_until = 0.0
                self.regs[DFSR] = self.regs.get(DFSR, 0) | DFSR_HALTED
            return
        if value & C_HALT:
            if not self.halted:
                self.halted = True
                self.emulating = False  # stops where the emulated core is
                self.regs[DFSR] = self.regs.get(DFSR, 0) | DFSR_HALTED
        elif self.halted:
            self._resume(step=bool(value & C_STEP))
        self.publish_state()  # rack host hook

    def _write_dcrsr(self, value: int) -> None:
        reg = value & 0x7F
        if value & (1 << 16):
            self.core[reg] = self.regs.get(DCRDR, 0)
            if reg == 13:  # SP is the active stack pointer: MSP, or PSP when SPSEL
                self.core[18 if self.core[20] >> 24 & 2 else 17] = self.core[13]
            elif reg in (17, 18) and (reg == 18) == bool(self.core[20] >> 24 & 2):
                self.core[13] = self.core[reg]
        else:
            self.regs[DCRDR] = self.core[reg]

    def _write_aircr(self, value: int) -> None:
        if value >> 16 != VECTKEY:
            return
        self.regs[AIRCR] = value & 0x700
        if value & 0x5:  # SYSRESETREQ (bit 2) or VECTRESET (bit 0)
            self.system_reset()

    # ------------------------------------------------------------------ running code
    @property
    def cpu(self):  # -> hil.flash.sim.cpu.SimCpu
        if self._cpu is None:
            from hil.flash.sim.cpu import Memory, SimCpu

            memories = [Memory(start, end - start, buf) for start, end, buf in self.rams]
            memories += [Memory(a.origin, a.length, self.store.data, a.offset, flash=True)
                         for a in self.store.areas]
            self._cpu = SimCpu(memories, self._blocks, self._write_flash)
        return self._cpu

    def _resume(self, step: bool) -> None:
        """Resume (or step) the core: code in RAM runs here, the firmware does not."""
        pc = self.core[15] & ~1
        self.retire_sticky = True
        self.halted = self.faulted = self.lockup = False
        if self._ram(pc, 2) is None:
            if step:  # the firmware is not executed here: a step just moves on
                self.core[15] = (pc + 2) & 0xFFFFFFFF
                self.halted = True
            return
        self.emulating = True
        self.run_started = time.monotonic()
        if step:
            self._advance(STEP_SLICE, count=1)
            if not self.halted:  # one instruction retired (or a fault taken): halt again
                self.emulating = False
                self.halted = True
                self.regs[DFSR] = self.regs.get(DFSR, 0) | DFSR_HALTED
            return
        self._advance(RESUME_SLICE)

    def _advance(self, seconds: float, count: int = 0) -> None:
        """Run the emulated core on for a while; stop it at its breakpoint or a fault."""
        from hil.flash.sim.cpu import Stop

        result = self.cpu.run(self.core, seconds, count)
        if result.stop == Stop.BREAKPOINT:
            self.emulating = False
            self.halted = True
            self.regs[DFSR] = self.regs.get(DFSR, 0) | DFSR_BKPT
            if self.faults.slow:
                self.busy_until = self.run_started + self.faults.slow
        elif result.stop == Stop.FAULT:
            self._hard_fault(result.detail)
        self._check_erased_sectors()

    def _hard_fault(self, detail: str) -> None:
        """The code running from RAM faulted: the core takes HardFault, as the chip does."""
        LOG.warning("simulated core: %s: HardFault", detail)
        self.emulating = False
        self.faulted = True
        self.core[16] = (self.core[16] & ~0x1FF) | HARDFAULT
        try:
            handler = self.read32(self.board.app_start + 4 * HARDFAULT)
        except BusFault:
            handler = 0xFFFFFFFF
        self.lockup = self._flash(handler & ~1, 2) is None  # no handler: lockup
        self.core[15] = 0xFFFFFFFE if self.lockup else handler & ~1
        if self.regs.get(DEMCR, 0) & VC_HARDERR:
            self.halted = True
            self.regs[DFSR] = self.regs.get(DFSR, 0) | DFSR_VCATCH

    def _check_erased_sectors(self) -> None:
        """Raise SectorLayoutError when the controller erased a sector the board file
        does not have: pyOCD erases by the board file's sectors, so they must agree."""
        if self.controller is None:
            return
        for number, start, size in self.controller.take_erased():
            region = self.board.region_at(start)
            if region is None:
                continue
            there = region.sector_at(start)
            if there is not None and (there.start, there.size) == (start, size):
                continue
            index = self.board.regions.index(region)
            said = f"0x{there.start:08X}-0x{there.end - 1:08X}" if there else "no sector"
            raise self.layout_error(
                f"board {self.board.name}: the flash algorithm erased the chip's sector "
                f"{number} = 0x{start:08X}-0x{start + size - 1:08X}, but the board file has "
                f"{said} there; pyOCD erases by the board file's sectors, so flashing would "
                "leave flash unerased or erase data it just wrote",
                path=self.board.path, key=f"memory[{index}].sectors",
                hint=f"write the chip's layout from its reference manual: "
                f"{self._layout_text()}")

    def _layout_text(self) -> str:
        runs: list[list[int]] = []
        for _number, _start, size in getattr(self.controller, "sectors", []):
            if runs and runs[-1][0] == size:
                runs[-1][1] += 1
            else:
                runs.append([size, 1])
        return "sectors: [" + ", ".join(f"{{size: {size // 1024}K, count: {count}}}"
                                        for size, count in runs) + "]"

    # ------------------------------------------------------------------ persistence
    def persist(self) -> None:
        if self.dirty or (self.controller is not None and self.controller.dirty):
            self.store.save()
            self.dirty = False
            if self.controller is not None:
                self.controller.dirty = False
