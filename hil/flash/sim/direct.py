"""Flashing a simulated board pyOCD cannot drive (a virtual HiFive1 Rev B on ``hilsim:``).

pyOCD is Arm-only, so for a RISC-V board on a simulated probe there is no debug-port model to
go through: this flasher plans like pyOCD's smart flash (a sector is erased and rewritten only
if its contents change, unwritten bytes of a rewritten sector are kept), applies it to the same
persisted simulated flash with the same semantics and faults, and verifies by reading back.
"""

from __future__ import annotations

import time
from pathlib import Path

from hil.errors import FlashProgramError, NoProbeError, ProbeLostError, VerifyError, WrongChipError
from hil.flash import Flasher, FlashReport, ProgressCallback
from hil.flash.sim.registry import hint_board, resolve
from hil.flash.sim.store import SimFlashStore, release_probe, take_probe
from hil.fsutil import sha256_file


class SimDirectFlasher(Flasher):
    """Smart-flash an image straight into a simulated board's persisted flash."""

    tool = "sim"

    def flash(self, image: Path, *, erase: str = "sector", reset: bool = True,
              progress: ProgressCallback | None = None) -> FlashReport:
        ih = self._load(image)
        name = self.probe.address
        hint_board(name, self.board.name)
        spec = resolve(name)
        if spec is None:  # pragma: no cover - the hint above always resolves
            raise NoProbeError(f"simulated probe {self.probe} has no board")
        faults = spec.faults
        if spec.board.name != self.board.name or faults.device_id is not None:
            raise WrongChipError(
                f"simulated probe {self.probe} is a {spec.board.name} "
                f"({spec.source}), not a {self.board.name}; refusing to flash",
                hint="pick the right probe or board")
        if faults.disconnect_after is not None:
            raise ProbeLostError(f"probe {self.probe} disconnected (injected fault)")
        lock = take_probe(name)
        try:
            return self._flash(ih, image, name, spec, erase, reset, progress)
        finally:
            release_probe(lock)

    def _flash(self, ih, image: Path, name: str, spec, erase: str, reset: bool,
               progress: ProgressCallback | None) -> FlashReport:
        faults = spec.faults
        t0 = time.monotonic()
        store = SimFlashStore.for_board(name, spec.board)
        report = FlashReport(board=self.board.name, probe=str(self.probe), tool=self.tool,
                             image=str(image), image_sha256=sha256_file(image),
                             content_sha256=self.content_sha256,
                             image_bytes=sum(e - s for s, e in ih.segments()),
                             rack_entry=self.rack_entry)
        sectors = [s for r in self.board.flash_regions() for s in r.sectors
                   if erase == "chip" or any(s.start < e and st < s.end
                                             for st, e in ih.segments())]
        for i, sector in enumerate(sectors):
            old = store.read(sector.start, sector.size)
            new = bytearray(old)
            for st, e in ih.segments():
                lo, hi = max(st, sector.start), min(e, sector.end)
                if lo < hi:
                    new[lo - sector.start:hi - sector.start] = ih.tobinstr(start=lo,
                                                                            size=hi - lo)
            if bytes(new) == old and erase != "chip":
                report.skipped_sectors += 1
                continue
            self.touched = True  # from here the flash may hold part of the image
            if any(sector.start <= a < sector.end for a in faults.erase_at):
                store.save()
                raise FlashProgramError(f"erase failed at 0x{sector.start:08X} on {self.probe}",
                                        address=sector.start)
            area = store.area_at(sector.start)
            assert area is not None  # the sector came from the board's flash map
            off = area.offset + sector.start - area.origin
            store.data[off:off + sector.size] = b"\xff" * sector.size
            report.erased_sectors += 1
            report.erased_bytes += sector.size
            for j, byte in enumerate(new):
                address = sector.start + j
                if address in faults.program_at:
                    store.save()
                    raise FlashProgramError(f"program failed at 0x{address:08X} on "
                                            f"{self.probe}", address=address)
                if byte != 0xFF and address not in faults.corrupt_at:
                    store.data[off + j] &= byte
            report.programmed_bytes += sum(1 for b in new if b != 0xFF)
            if progress:
                progress("program", (i + 1) / len(sectors))
            if faults.slow:
                time.sleep(faults.slow)
        store.save()
        for st, e in ih.segments():
            got, want = store.read(st, e - st), ih.tobinstr(start=st, size=e - st)
            if got != want:
                first = next(k for k in range(len(want)) if got[k] != want[k])
                raise VerifyError(f"read-back verify failed on {self.board.name} via "
                                  f"{self.probe}: first difference at 0x{st + first:08X}",
                                  address=st + first)
        if progress:
            progress("verify", 1.0)
        report.verified = True
        report.reset = reset
        report.seconds = time.monotonic() - t0
        return report
