"""Register-level model of the STM32F4 flash interface and the watchdog its algorithms feed.

From the reference manuals (RM0383 section 3, RM0390 section 3; FLASH at 0x40023C00):

- ``KEYR`` (+0x04): writing 0x45670123 then 0xCDEF89AB clears ``CR.LOCK``. Any other value
  while locked is a bus error and leaves ``CR`` locked until the next reset (further ``KEYR``
  writes fault too). Writes while already unlocked are ignored.
- ``CR`` (+0x10): PG(0), SER(1), MER(2), SNB[6:3] (bit 7 selects bank 2 on 2 MiB parts),
  PSIZE[9:8], STRT(16), EOPIE(24), ERRIE(25), LOCK(31). Ignored while locked; writing LOCK
  locks. STRT with SER erases sector SNB, with MER the whole array.
- ``SR`` (+0x0C): EOP(0), OPERR(1), WRPERR(4), PGAERR(5), PGPERR(6), PGSERR(7) are
  write-1-to-clear; BSY(16) reads set once after an erase starts (so an algorithm's wait loop
  runs; time is not emulated).
- Programming: a bus write to the array while PG is set clears bits only (new = old & data).
  The write must be PSIZE bytes wide (else PGPERR) and aligned (else PGAERR); without PG, or
  locked, it sets PGSERR. Nothing is written when a flag is set.
- ``OPTKEYR`` (+0x08) 0x08192A3B then 0x4C5D6E7F unlocks ``OPTCR`` (+0x14), same lock rule.
  ``OPTCR`` resets to the option bytes (0x0FFFAAED: no protection, software watchdog);
  nWRP[11:0] at bit 16 (0 = sector write protected), OPTSTRT(1) commits them. A program or
  erase touching a protected sector sets WRPERR and does nothing (a mass erase too). Option
  bytes programmed this way last as long as the simulated chip in this process (they are
  not persisted with the flash); ``wrp=N`` faults set them for every process.

Sectors are the chip's own layout (``f4_sectors``), not the board file's: 4x16K, 1x64K, then
128K per bank of up to 1 MiB. Injected faults (``hil.flash.sim.faults``) act here: an
``erase@`` sector does not erase and sets OPERR|PGSERR (the F4 has no "worn sector" flag:
OPERR is the operation-error flag, PGSERR the one pyOCD's F4 algorithm checks along with the
other SR[7:4] flags), a ``program@`` word is not written and sets the same flags, a
``corrupt@`` byte keeps its value silently, ``wrp=N`` starts with sector N protected and
``locked`` behaves as if a wrong key had been written since the last reset (a reset does not
cure it: the fault stays).

The independent watchdog (IWDG, 0x40003000: KR, PR, RLR, SR) is modelled as registers only:
pyOCD's F4 algorithm starts and feeds it when the option bytes select a hardware watchdog, and
time is not emulated, so it never fires.
"""

from __future__ import annotations

import logging

from hil.flash.sim.faults import Faults
from hil.flash.sim.peripheral import BusFault, FlashController, Peripheral

LOG = logging.getLogger(__name__)

FLASH_BASE = 0x40023C00
ACR, KEYR, OPTKEYR, SR, CR, OPTCR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
KEY1, KEY2 = 0x45670123, 0xCDEF89AB
OPTKEY1, OPTKEY2 = 0x08192A3B, 0x4C5D6E7F

EOP, OPERR, WRPERR, PGAERR, PGPERR, PGSERR, BSY = (1 << 0, 1 << 1, 1 << 4, 1 << 5, 1 << 6,
                                                   1 << 7, 1 << 16)
SR_W1C = EOP | OPERR | WRPERR | PGAERR | PGPERR | PGSERR
PG, SER, MER, STRT, EOPIE, ERRIE, LOCK = 1 << 0, 1 << 1, 1 << 2, 1 << 16, 1 << 24, 1 << 25, \
    1 << 31
SNB_SHIFT, SNB_MASK = 3, 0x1F
PSIZE_SHIFT = 8
CR_WRITABLE = PG | SER | MER | (SNB_MASK << SNB_SHIFT) | (3 << PSIZE_SHIFT) | EOPIE | ERRIE
OPTLOCK, OPTSTRT = 1 << 0, 1 << 1
OPTCR_RESET = 0x0FFFAAED
NWRP_SHIFT, NWRP_BITS = 16, 12

FLASH_ORIGIN = 0x08000000
BANK = 1 << 20
K = 1024


def f4_sectors(size: int, origin: int = FLASH_ORIGIN) -> list[tuple[int, int, int]]:
    """(SNB, start, size) of every sector of an STM32F4 with ``size`` bytes of flash."""
    out = []
    for bank in range(max(1, -(-size // BANK))):
        start = origin + bank * BANK
        end = min(origin + size, start + BANK)
        number = 0
        for sector_size in [16 * K] * 4 + [64 * K] + [128 * K] * 7:
            if start >= end:
                break
            out.append(((bank << 4) | number, start, sector_size))
            start += sector_size
            number += 1
    return out


class Iwdg(Peripheral):
    """The independent watchdog's registers (KR, PR, RLR, SR); it never fires here."""

    name = "IWDG"
    base = 0x40003000

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = False
        self.unlocked = False
        self.pr, self.rlr, self.reloads = 0, 0xFFF, 0

    def read(self, offset: int, size: int) -> int:
        return {0x04: self.pr, 0x08: self.rlr}.get(offset & ~3, 0)  # KR reads 0, SR idle

    def write(self, offset: int, size: int, value: int) -> None:
        offset &= ~3
        if offset == 0x00:
            key = value & 0xFFFF
            if key == 0xCCCC:
                self.started = True
            elif key == 0xAAAA:
                self.reloads += 1
            self.unlocked = key == 0x5555
        elif offset == 0x04 and self.unlocked:
            self.pr = value & 0x7
        elif offset == 0x08 and self.unlocked:
            self.rlr = value & 0xFFF


class Stm32f4Flash(FlashController):
    """The FLASH interface registers and the flash array behind them (see module doc)."""

    name = "FLASH"
    base = FLASH_BASE

    def __init__(self, data: bytearray, offset: int, size: int, faults: Faults,
                 origin: int = FLASH_ORIGIN) -> None:
        self.data = data  # the persisted flash (SimFlashStore.data)
        self.offset = offset  # of this array in ``data``
        self.origin = origin
        self.length = size
        self.faults = faults
        self.sectors = f4_sectors(size, origin)
        self.by_number = {snb: (start, length) for snb, start, length in self.sectors}
        self._by_16k = [next(sector for sector in self.sectors  # sector of each 16 KiB
                             if sector[1] <= origin + i * 16 * K < sector[1] + sector[2])
                        for i in range(-(-size // (16 * K)))]
        wrp = 0
        for number in faults.wrp:
            if number < NWRP_BITS:
                wrp |= 1 << number
        self.option_nwrp = ((1 << NWRP_BITS) - 1) & ~wrp  # the programmed option bytes
        self.erased: list[tuple[int, int, int]] = []
        self.stats = {"erased_sectors": 0, "programmed_bytes": 0}
        self.dirty = False
        self.reset()

    def reset(self) -> None:
        self.acr = 0
        self.cr = LOCK
        self.sr = 0
        self.busy_reads = 0
        self.key_stage = 0
        self.key_fault = self.faults.locked  # a wrong key since reset: CR locked until reset
        self.optcr = (OPTCR_RESET & ~(((1 << NWRP_BITS) - 1) << NWRP_SHIFT)) | \
            (self.option_nwrp << NWRP_SHIFT)
        self.optkey_stage = 0
        self.optkey_fault = False

    # ------------------------------------------------------------------ sectors
    def sector_of(self, address: int) -> tuple[int, int, int] | None:
        index = (address - self.origin) >> 14
        return self._by_16k[index] if 0 <= index < len(self._by_16k) else None

    def protected(self, snb: int) -> bool:
        return snb < NWRP_BITS and not (self.option_nwrp >> snb) & 1  # nWRP: 0 = protected

    def take_erased(self) -> list[tuple[int, int, int]]:
        erased, self.erased = self.erased, []
        return erased

    # ------------------------------------------------------------------ registers
    def read(self, offset: int, size: int) -> int:
        reg = offset & ~3
        if reg == SR:
            value = self.sr
            if self.busy_reads:
                self.busy_reads -= 1
                value |= BSY
        elif reg == CR:
            value = self.cr
        elif reg == ACR:
            value = self.acr
        elif reg == OPTCR:
            value = self.optcr
        else:
            value = 0  # KEYR and OPTKEYR are write-only
        if size == 4:
            return value
        return (value >> (8 * (offset & 3))) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        reg = offset & ~3
        value <<= 8 * (offset & 3)
        if reg == CR:
            self._write_cr(value)
        elif reg == SR:
            self.sr &= ~(value & SR_W1C)
        elif reg == KEYR:
            self._key(value)
        elif reg == ACR:
            self.acr = value & 0x1F0F
        elif reg == OPTKEYR:
            self._optkey(value)
        elif reg == OPTCR:
            self._write_optcr(value)

    def _key(self, value: int) -> None:
        if self.key_fault:
            raise BusFault(self.base + KEYR, "FLASH_KEYR: the flash control register is "
                           "locked until reset (a wrong key was written)")
        if not self.cr & LOCK:
            return
        expected = KEY1 if self.key_stage == 0 else KEY2
        if value != expected:
            self.key_fault = True
            self.key_stage = 0
            raise BusFault(self.base + KEYR, f"FLASH_KEYR: wrong key 0x{value:08X}; the flash "
                           "control register stays locked until reset")
        self.key_stage += 1
        if self.key_stage == 2:
            self.key_stage = 0
            self.cr &= ~LOCK

    def _optkey(self, value: int) -> None:
        if self.optkey_fault:
            raise BusFault(self.base + OPTKEYR, "FLASH_OPTKEYR: locked until reset")
        if not self.optcr & OPTLOCK:
            return
        expected = OPTKEY1 if self.optkey_stage == 0 else OPTKEY2
        if value != expected:
            self.optkey_fault = True
            self.optkey_stage = 0
            raise BusFault(self.base + OPTKEYR, f"FLASH_OPTKEYR: wrong key 0x{value:08X}")
        self.optkey_stage += 1
        if self.optkey_stage == 2:
            self.optkey_stage = 0
            self.optcr &= ~OPTLOCK

    def _write_optcr(self, value: int) -> None:
        if self.optcr & OPTLOCK:
            return
        self.optcr = value & ~OPTSTRT & 0x0FFFFFFF
        if value & OPTSTRT:
            self.option_nwrp = (value >> NWRP_SHIFT) & ((1 << NWRP_BITS) - 1)
            LOG.info("simulated option bytes programmed: nWRP=0x%03X", self.option_nwrp)

    def _write_cr(self, value: int) -> None:
        if self.cr & LOCK:
            return
        if value & LOCK:
            self.cr = LOCK | (value & CR_WRITABLE)
            self.key_stage = 0
            return
        self.cr = value & CR_WRITABLE
        if value & STRT:
            self._start()

    # ------------------------------------------------------------------ operations
    def _error(self, flags: int, why: str) -> None:
        self.sr |= flags
        LOG.info("simulated FLASH: %s (SR=0x%08X)", why, self.sr)

    def _done(self) -> None:
        if self.cr & EOPIE:
            self.sr |= EOP

    def _start(self) -> None:
        ops = [bit for bit in (PG, SER, MER) if self.cr & bit]
        if len(ops) != 1 or ops[0] == PG:
            self._error(PGSERR, "STRT without exactly one of SER and MER")
            return
        self.busy_reads = 1
        if ops[0] == SER:
            snb = (self.cr >> SNB_SHIFT) & SNB_MASK
            if snb not in self.by_number:
                self._error(PGSERR, f"erase of sector {snb}, which this chip does not have")
                return
            if self._erase([snb]):
                self.erased.append((snb, *self.by_number[snb]))
        else:
            self._erase(list(self.by_number))

    def _erase(self, numbers: list[int]) -> bool:
        protected = [n for n in numbers if self.protected(n)]
        if protected:
            self._error(WRPERR, f"erase of write-protected sector {protected[0]}")
            return False
        for snb in numbers:
            start, size = self.by_number[snb]
            if any(start <= a < start + size for a in self.faults.erase_at):
                self._error(OPERR | PGSERR, f"sector {snb} at 0x{start:08X} fails to erase "
                            "(injected fault)")
                return False
            off = self.offset + start - self.origin
            self.data[off:off + size] = b"\xff" * size
            self.stats["erased_sectors"] += 1
            self.dirty = True
        self._done()
        return True

    def program(self, address: int, size: int, value: int) -> None:
        if self.cr & (LOCK | PG) != PG:
            self._error(PGSERR, f"write to flash 0x{address:08X} without PG set")
            return
        width = 1 << ((self.cr >> PSIZE_SHIFT) & 3)
        if size != width:
            self._error(PGPERR, f"{size}-byte write to 0x{address:08X} with PSIZE {width} bytes")
            return
        if address % size:
            self._error(PGAERR, f"unaligned {size}-byte write to 0x{address:08X}")
            return
        sector = self.sector_of(address)
        if sector is None:  # pragma: no cover - the CPU hooks only this array
            return
        if self.protected(sector[0]):
            self._error(WRPERR, f"write to 0x{address:08X} in write-protected sector "
                        f"{sector[0]}")
            return
        faults = self.faults
        if faults.program_at and any(address <= a < address + size for a in faults.program_at):
            self._error(OPERR | PGSERR, f"programming 0x{address:08X} fails (injected fault)")
            return
        off = self.offset + address - self.origin
        if faults.corrupt_at:
            data = value.to_bytes(size, "little")
            for i in range(size):
                if address + i not in faults.corrupt_at:
                    self.data[off + i] &= data[i]
        else:
            old = int.from_bytes(self.data[off:off + size], "little")
            self.data[off:off + size] = (old & value).to_bytes(size, "little")
        self.stats["programmed_bytes"] += size
        self.dirty = True
        if self.cr & EOPIE:
            self.sr |= EOP
