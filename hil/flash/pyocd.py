"""The pyOCD flasher: any probe pyOCD drives (ST-LINK, CMSIS-DAP, J-Link, ``remote:``,
the simulated ``hilsim:``), pyOCD's FileProgrammer with smart flash, read-back verify.

Order (``PyOCDFlasher.flash``): load and fit-check the image (no probe touched), register the
board's target with pyOCD, open the exact probe, connect (board's connect mode), read the
device id and refuse a chip that is not the board's, program through FileProgrammer (only
sectors whose contents differ are erased and written), read the image back and compare,
reset and run. pyOCD exceptions are mapped to hil's FlashError classes here and nowhere else.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hil.errors import (
    FlashError,
    FlashProgramError,
    HilError,
    NoProbeError,
    ProbeLostError,
    VerifyError,
    WrongChipError,
)
from hil.flash import ERASE_MODES, Flasher, FlashReport, ProgressCallback
from hil.fsutil import sha256_file

LOG = logging.getLogger(__name__)
VERIFY_CHUNK = 0x4000


class _Phases:
    """Turns pyOCD's single 0..1 progress (restarting at 0 for the program phase) into
    (phase, fraction) calls and times each phase."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self.progress = progress
        self.phase = "erase"
        self.last = 0.0
        self.started = time.monotonic()
        self.times: dict[str, float] = {}

    def switch(self, phase: str) -> None:
        now = time.monotonic()
        self.times[self.phase] = self.times.get(self.phase, 0.0) + now - self.started
        self.started = now
        self.phase = phase
        self.last = 0.0

    def __call__(self, fraction: float) -> None:
        if self.phase == "erase" and fraction < self.last - 1e-9:
            self.switch("program")
        self.last = fraction
        if self.progress:
            self.progress(self.phase, min(max(fraction, 0.0), 1.0))


def _found_probes() -> str:
    from hil.flash.probes import describe_probes, list_probes

    try:
        return describe_probes(list_probes(with_rack=False))
    except Exception:  # noqa: BLE001 - listing is best effort, for the message
        return "unknown (listing probes failed)"


class PyOCDFlasher(Flasher):
    """Flash an Arm board through pyOCD; see the module doc for the order of operations."""

    tool = "pyocd"

    def __init__(self, *args, timeouts: dict[str, float] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts = timeouts or {}

    # ------------------------------------------------------------------ session
    def _open_session(self):
        from pyocd.core import exceptions
        from pyocd.core.session import Session
        from pyocd.probe.aggregator import DebugProbeAggregator

        from hil.flash import target

        name, options = target.register(self.board)
        if self.probe.simulated:
            from hil.flash.sim.registry import hint_board

            hint_board(self.probe.address, self.board.name)
        try:
            probe = DebugProbeAggregator.get_probe_with_id(self.probe.pyocd_id)
        except exceptions.Error as exc:
            raise NoProbeError(f"cannot look for probe {self.probe}: {exc}",
                               hint="probe ids look like stlink:SERIAL, SERIAL, "
                               "hilsim:NAME or remote:HOST:PORT") from exc
        if probe is None:
            entry = f" (rack entry {self.rack_entry})" if self.rack_entry else ""
            raise NoProbeError(
                f"probe {self.probe}{entry} for board {self.board.name} not found; connected "
                f"probes: {_found_probes()}",
                hint="plug the probe in, check its id with 'hil probes', or fix rack.yaml")
        options = {
            **options,
            **{f"flash.timeout.{k}": v for k, v in self.timeouts.items()},
            "target_override": name,
            "frequency": self.frequency,
            "connect_mode": self.connect_mode,
            "reset_type": self.reset_type,
            "hide_programming_progress": True,
            "resume_on_disconnect": False,
            "smart_flash": True,
        }
        return Session(probe, auto_open=True, options=options, no_config=True)

    def _map(self, exc: BaseException, doing: str) -> HilError:
        """A pyOCD (or socket) exception as the hil error a user can act on."""
        from pyocd.core import exceptions

        if isinstance(exc, HilError):
            return exc
        where = f"{self.probe} ({self.board.name})"
        if isinstance(exc, (ConnectionRefusedError, ConnectionResetError)) and \
                self.probe.remote:
            return NoProbeError(f"pyocd server at {self.probe.address} is not reachable: {exc}",
                                hint="start it on the rack host: pyocd server --probe ID")
        if isinstance(exc, exceptions.FlashFailure):
            address = getattr(exc, "address", None)
            at = f" at 0x{address:08X}" if address is not None else ""
            return FlashProgramError(
                f"{doing} failed{at} on {where}: {exc}", address=address,
                hint="the sector may be write-protected (option bytes: clear its write "
                "protection with the vendor's tool, e.g. STM32CubeProgrammer) or the flash "
                "worn; retry once, and if it fails again the board needs attention")
        if isinstance(exc, exceptions.ProbeDisconnected):
            return ProbeLostError(f"probe lost while {doing} on {where}: {exc}",
                                  hint="check the USB cable and the board's power; the board "
                                  "was not flashed completely")
        if isinstance(exc, exceptions.TransferError):
            return ProbeLostError(f"target stopped answering while {doing} on {where}: {exc}",
                                  hint="check the SWD wiring and power; try a lower --frequency")
        if isinstance(exc, exceptions.ProbeError):
            return ProbeLostError(f"probe {self.probe} is busy or failing ({doing}): {exc}",
                                  hint="another program (IDE, pyocd gdbserver) may hold it")
        if isinstance(exc, (exceptions.Error, OSError)):
            return ProbeLostError(f"{doing} on {where} failed: {exc}",
                                  hint="is the board powered and the probe connected to it?")
        raise exc

    # ------------------------------------------------------------------ steps
    def _check_chip(self, session) -> int | None:
        chip = self.board.flash.chip_id
        if chip is None:
            return None
        value = session.target.read32(chip.address)
        if value & chip.mask != chip.value:
            raise WrongChipError(
                f"probe {self.probe} is connected to a chip with device id "
                f"0x{value & chip.mask:03X} (register 0x{chip.address:08X} = 0x{value:08X}), "
                f"but board {self.board.name} has 0x{chip.value:03X}; refusing to flash",
                hint="pick the probe of the right board (hil probes), or fix the rack entry / "
                "--board; a simulated probe keeps the board it was created for "
                "(delete its state under <state dir>/simflash to change it)")
        return value

    def _verify(self, session, ih, progress) -> None:
        segments = ih.segments()
        total = sum(end - start for start, end in segments) or 1
        done = 0
        for start, end in segments:
            for address in range(start, end, VERIFY_CHUNK):
                size = min(VERIFY_CHUNK, end - address)
                got = bytes(session.target.read_memory_block8(address, size))
                want = ih.tobinstr(start=address, size=size)
                if got != want:
                    first = next(i for i in range(size) if got[i] != want[i])
                    bad = address + first
                    raise VerifyError(
                        f"read-back verify failed on {self.board.name} via {self.probe}: first "
                        f"difference at 0x{bad:08X} (flash 0x{got[first]:02X}, image "
                        f"0x{want[first]:02X})", address=bad,
                        hint="flash it again; if it repeats at the same address the flash "
                        "is worn or write-protected")
                done += size
                progress(done / total)

    # ------------------------------------------------------------------ reset
    def reset(self, *, under_reset: bool = False) -> None:
        """Connect (``under_reset``: with connect_mode under-reset, nRESET held while the
        debug port comes up), reset the core and let it run."""
        saved = self.connect_mode
        if under_reset:
            self.connect_mode = "under-reset"
        doing = "connecting under reset" if under_reset else "connecting"
        try:
            session = self._open_session()
            with session:
                doing = "resetting"
                session.target.reset()
        except Exception as exc:
            raise self._map(exc, doing) from exc
        finally:
            self.connect_mode = saved

    # ------------------------------------------------------------------ flash
    def flash(self, image: Path, *, erase: str = "sector", reset: bool = True,
              progress: ProgressCallback | None = None) -> FlashReport:
        from pyocd.core.target import Target
        from pyocd.flash.builder import FlashBuilder
        from pyocd.flash.file_programmer import FileProgrammer

        if erase not in ERASE_MODES:
            raise FlashError(f"unknown erase mode '{erase}'", hint="use sector, chip or auto")
        ih = self._load(image)  # before touching the probe
        image_bytes = sum(end - start for start, end in ih.segments())
        report = FlashReport(board=self.board.name, probe=str(self.probe), tool=self.tool,
                             image=str(image), image_sha256=sha256_file(image),
                             content_sha256=self.content_sha256,
                             image_bytes=image_bytes, rack_entry=self.rack_entry)
        t0 = time.monotonic()
        builders: list = []
        doing = "connecting"
        try:
            session = self._open_session()
            with session:
                doing = "reading the chip id"
                report.chip_id = self._check_chip(session)
                session.subscribe(lambda n: builders.append(n.source),
                                  Target.Event.POST_FLASH_PROGRAM)
                phases = _Phases(progress)
                doing = "erasing and programming"
                programmer = FileProgrammer(session, progress=phases, chip_erase=erase,
                                            smart_flash=True)
                kwargs = {"base_address": self.board.app_start} \
                    if image.suffix.lower() == ".bin" else {}
                self.touched = True  # from here the flash may hold part of the image
                programmer.program(str(image), **kwargs)
                if phases.phase == "erase":
                    phases.switch("program")
                phases.switch("verify")
                doing = "verifying"
                phases.phase = "verify"
                self._verify(session, ih, _VerifyProgress(progress))
                phases.switch("reset")
                if reset:
                    doing = "resetting"
                    session.target.reset()
                    report.reset = True
                phases.switch("done")
                report.phases = {k: v for k, v in phases.times.items() if k != "done"}
        except Exception as exc:
            raise self._map(exc, doing) from exc
        chip_erased = False
        for builder in builders:
            perf = builder.perf
            chip_erased |= perf.program_type == FlashBuilder.FLASH_CHIP_ERASE
            report.erased_sectors += perf.erase_sector_count
            report.erased_bytes += perf.erase_byte_count
            report.programmed_bytes += perf.program_byte_count
            report.programmed_pages += perf.program_page_count
            report.skipped_bytes += perf.skipped_byte_count
            report.skipped_sectors += len(builder.sector_list) - perf.erase_sector_count
        if chip_erased:  # the whole chip was erased, whatever the builders counted
            sectors = [sec for r in self.board.flash_regions() for sec in r.sectors]
            report.erased_sectors = len(sectors)
            report.erased_bytes = sum(sec.size for sec in sectors)
            report.skipped_sectors = 0
        report.verified = True
        report.seconds = time.monotonic() - t0
        return report


class _VerifyProgress:
    def __init__(self, progress: ProgressCallback | None) -> None:
        self.progress = progress

    def __call__(self, fraction: float) -> None:
        if self.progress:
            self.progress("verify", fraction)
