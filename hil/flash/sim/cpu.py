"""An emulated Cortex-M core (unicorn) that executes code from a simulated chip's RAM.

The simulated chip (``hil.flash.sim.chip``) hands it the memories and the peripheral bus; when
pyOCD resumes the core in RAM (a flash algorithm, pyOCD's CRC analyzer), ``SimCpu.run``
executes instructions with the chip's core registers until one of:

- ``bkpt``: the return breakpoint pyOCD puts at LR (``Stop.BREAKPOINT``, PC at the ``bkpt``);
- the time slice ends (``Stop.BUDGET``): the code is still running, ``run`` again to go on;
- a fault: an access to nothing, an undefined instruction or a bus error from a peripheral
  (``Stop.FAULT``, with what happened).

Memories are shared, not copied: RAM and the flash array are the chip's own buffers mapped
into unicorn, so what the probe writes the core reads and the other way round. Only MMIO
(``0x40000000-0x5FFFFFFF``) and writes to the flash array reach Python, so plain code runs
at unicorn's speed. A write to flash goes to the flash controller first; unicorn then stores
the raw value and the controller's result is put back before the core can observe it (at
the next peripheral access, flash write or end of the run): a flash algorithm always reads
the controller's status after a write, as the reference manuals require.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass

from hil.errors import FlashError
from hil.flash.sim.peripheral import BusFault, Peripheral

PERIPH_BASE, PERIPH_SIZE = 0x40000000, 0x20000000
PAGE = 0x1000  # unicorn maps memory in 4 KiB pages
_EXCP_BKPT = 7  # unicorn's (QEMU's) interrupt number for a BKPT instruction
_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}
_UNTIL = 0xFFFFFFFE  # an address no code returns to: runs end on bkpt, budget or fault

# Debug core register numbers (ARMv7-M DCRSR.REGSEL).
REG_SP, REG_LR, REG_PC, REG_XPSR, REG_MSP, REG_PSP, REG_SPECIAL = 13, 14, 15, 16, 17, 18, 20


class Stop:
    BREAKPOINT = "breakpoint"
    BUDGET = "budget"
    FAULT = "fault"


@dataclass(frozen=True)
class RunResult:
    stop: str  # a Stop value
    detail: str = ""


@dataclass(frozen=True)
class Memory:
    """A memory the core sees: ``length`` bytes at ``start``, backed by ``buffer[offset:]``."""

    start: int
    length: int
    buffer: bytearray
    offset: int = 0
    flash: bool = False


class SimCpu:
    """A Cortex-M4 executing from the chip's memories; built once per chip, run per resume.

    ``blocks`` maps each 1 KiB block of the peripheral space (address >> 10) that holds a
    modelled peripheral to it (others read 0, ignore writes); ``flash_write(address, size,
    value)`` is the flash controller's ``program``. Peripherals may raise BusFault.
    """

    def __init__(self, memories: list[Memory], blocks: dict[int, Peripheral],
                 flash_write: Callable[[int, int, int], None]) -> None:
        from unicorn import (
            UC_ARCH_ARM,
            UC_HOOK_INTR,
            UC_HOOK_MEM_WRITE,
            UC_MODE_MCLASS,
            UC_MODE_THUMB,
            UC_PROT_ALL,
            Uc,
        )

        self._blocks = blocks
        self._flash_write = flash_write
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        self._memories = memories
        self._flash = [m for m in memories if m.flash]
        self._pins = []  # ctypes views keeping the mapped buffers exported (not resizable)
        for m in memories:
            if m.start % PAGE or m.length % PAGE:
                raise FlashError(f"simulated core: memory at 0x{m.start:08X} ({m.length} bytes) "
                                 "is not 4 KiB aligned; the emulated core cannot map it",
                                 hint="give the board's memory regions 4 KiB multiples")
            view = (ctypes.c_char * m.length).from_buffer(m.buffer, m.offset)
            self._pins.append(view)
            self.uc.mem_map_ptr(m.start, m.length, UC_PROT_ALL, ctypes.addressof(view))
            if m.flash:
                self.uc.hook_add(UC_HOOK_MEM_WRITE, self._on_flash_write, begin=m.start,
                                 end=m.start + m.length - 1)
        self.uc.mmio_map(PERIPH_BASE, PERIPH_SIZE, self._on_mmio_read, None,
                         self._on_mmio_write, None)
        self.uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        self._pending: list[tuple[Memory, int, bytearray]] = []
        self._result: RunResult | None = None
        self._stale_code: set[int] = set()

    # ------------------------------------------------------------------ memory
    def _memory(self, address: int) -> Memory | None:
        for m in self._memories:
            if m.start <= address < m.start + m.length:
                return m
        return None

    def invalidate(self, address: int, size: int) -> None:
        """The debugger wrote memory at ``address``: drop code translated from it."""
        for page in range(address // PAGE, (address + max(size, 1) - 1) // PAGE + 1):
            self._stale_code.add(page)

    def _drop_stale_code(self) -> None:
        if not self._stale_code:
            return
        pages = sorted(self._stale_code)
        self._stale_code.clear()
        start = prev = pages[0]
        for page in [*pages[1:], None]:
            if page is not None and page == prev + 1:
                prev = page
                continue
            self.uc.ctl_remove_cache(start * PAGE, (prev + 1) * PAGE)
            if page is not None:
                start = prev = page

    def _settle(self) -> None:
        """Put back what the flash controller left in flash after raw stores."""
        for m, off, data in self._pending:
            m.buffer[off:off + len(data)] = data
        self._pending.clear()

    # ------------------------------------------------------------------ hooks
    def _fault(self, detail: str) -> None:
        if self._result is None:
            self._result = RunResult(Stop.FAULT, detail)
        self.uc.emu_stop()

    def _on_flash_write(self, uc, access, address, size, value, user_data) -> None:
        if self._pending:
            self._settle()
        for m in self._flash:
            if m.start <= address < m.start + m.length:
                break
        try:
            self._flash_write(address, size, value & _MASK[size])
        except BusFault as exc:
            self._fault(str(exc))
        off = m.offset + address - m.start
        self._pending.append((m, off, m.buffer[off:off + size]))

    def _on_mmio_read(self, uc, offset, size, user_data) -> int:
        if self._pending:
            self._settle()
        p = self._blocks.get((PERIPH_BASE + offset) >> 10)
        if p is None:
            return 0  # an unmodelled peripheral at its reset value
        offset -= p.base - PERIPH_BASE
        if not 0 <= offset < p.size:
            return 0
        try:
            return p.read(offset, size)
        except BusFault as exc:
            self._fault(str(exc))
            return 0

    def _on_mmio_write(self, uc, offset, size, value, user_data) -> None:
        if self._pending:
            self._settle()
        p = self._blocks.get((PERIPH_BASE + offset) >> 10)
        if p is None:
            return
        offset -= p.base - PERIPH_BASE
        if not 0 <= offset < p.size:
            return
        try:
            p.write(offset, size, value & _MASK[size])
        except BusFault as exc:
            self._fault(str(exc))

    def _on_interrupt(self, uc, intno, user_data) -> None:
        from unicorn.arm_const import UC_ARM_REG_PC

        if intno == _EXCP_BKPT:
            if self._result is None:
                self._result = RunResult(Stop.BREAKPOINT)
        else:
            pc = uc.reg_read(UC_ARM_REG_PC)
            self._fault(f"exception {intno} (undefined instruction, SVC or fault) at "
                        f"0x{pc:08X}")
        uc.emu_stop()

    # ------------------------------------------------------------------ registers
    @staticmethod
    def _regs():
        from unicorn import arm_const as a

        gp = [getattr(a, f"UC_ARM_REG_R{i}") for i in range(13)]
        return gp, a

    def _load(self, core: list[int]) -> None:
        gp, a = self._regs()
        uc = self.uc
        for i, reg in enumerate(gp):
            uc.reg_write(reg, core[i])
        special = core[REG_SPECIAL]
        uc.reg_write(a.UC_ARM_REG_PRIMASK, special & 1)
        uc.reg_write(a.UC_ARM_REG_BASEPRI, (special >> 8) & 0xFF)
        uc.reg_write(a.UC_ARM_REG_FAULTMASK, (special >> 16) & 1)
        uc.reg_write(a.UC_ARM_REG_CONTROL, (special >> 24) & 0x7)
        uc.reg_write(a.UC_ARM_REG_MSP, core[REG_MSP])
        uc.reg_write(a.UC_ARM_REG_PSP, core[REG_PSP])
        uc.reg_write(a.UC_ARM_REG_SP, core[REG_SP])
        uc.reg_write(a.UC_ARM_REG_LR, core[REG_LR])
        uc.reg_write(a.UC_ARM_REG_XPSR, core[REG_XPSR] & 0xFFFFFE00)  # thread mode

    def _save(self, core: list[int]) -> None:
        gp, a = self._regs()
        uc = self.uc
        for i, reg in enumerate(gp):
            core[i] = uc.reg_read(reg) & 0xFFFFFFFF
        core[REG_SP] = uc.reg_read(a.UC_ARM_REG_SP)
        core[REG_LR] = uc.reg_read(a.UC_ARM_REG_LR)
        core[REG_PC] = uc.reg_read(a.UC_ARM_REG_PC) & ~1
        core[REG_XPSR] = (uc.reg_read(a.UC_ARM_REG_XPSR) & 0xFFFFFFFF) | (1 << 24)
        core[REG_MSP] = uc.reg_read(a.UC_ARM_REG_MSP)
        core[REG_PSP] = uc.reg_read(a.UC_ARM_REG_PSP)
        core[REG_SPECIAL] = (uc.reg_read(a.UC_ARM_REG_PRIMASK) & 1) | \
            ((uc.reg_read(a.UC_ARM_REG_BASEPRI) & 0xFF) << 8) | \
            ((uc.reg_read(a.UC_ARM_REG_FAULTMASK) & 1) << 16) | \
            ((uc.reg_read(a.UC_ARM_REG_CONTROL) & 0x7) << 24)

    # ------------------------------------------------------------------ run
    def run(self, core: list[int], seconds: float, count: int = 0) -> RunResult:
        """Execute from ``core[15]`` for at most ``seconds`` (or ``count`` instructions when
        not 0), with the registers in ``core`` (DCRSR numbering), updated on return."""
        from unicorn import UcError

        self._drop_stale_code()
        self._load(core)
        self._result = None
        pc = core[REG_PC]
        try:
            self.uc.emu_start(pc | 1, _UNTIL, timeout=max(1, int(seconds * 1e6)), count=count)
        except UcError as exc:
            from unicorn.arm_const import UC_ARM_REG_PC

            where = self.uc.reg_read(UC_ARM_REG_PC)
            self._result = self._result or RunResult(Stop.FAULT, f"{exc} (PC 0x{where:08X})")
        finally:
            self._settle()
        self._save(core)
        return self._result or RunResult(Stop.BUDGET)
