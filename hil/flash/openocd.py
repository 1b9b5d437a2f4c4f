"""The OpenOCD flasher for boards pyOCD cannot drive (RISC-V: HiFive1 Rev B through its J-Link OB).

Pure parts, unit-tested without hardware: ``openocd_command`` (the command line) and
``parse_output`` (OpenOCD's log -> what happened, or the hil error to raise). ``OpenOCDFlasher``
runs ``openocd -f <board cfg> -c "program IMAGE verify reset exit"`` between them. This path is
untested on real hardware here (no probe on our machines).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hil import procs
from hil.boards import Board
from hil.errors import (
    ConfigError,
    FlashError,
    FlashProgramError,
    HilError,
    NoProbeError,
    ProbeLostError,
    ToolchainError,
    UsageError,
    VerifyError,
    WrongChipError,
)
from hil.flash import Flasher, FlashReport, ProgressCallback
from hil.flash.probe_id import ProbeId
from hil.fsutil import sha256_file

TIMEOUT = 300.0

# OpenOCD 0.12 messages (src/flash/nor/tcl.c "program", src/jtag/drivers/jlink.c, core.c).
_NO_PROBE = re.compile(r"No J-Link device found|No device found|unable to open ftdi device|"
                       r"Can't find a .* device|no device found", re.IGNORECASE)
_BUSY = re.compile(r"LIBUSB_ERROR_(BUSY|ACCESS)|Failed to open device|"
                   r"failed to open or find the device|Resource busy", re.IGNORECASE)
_FOUND_TAP = re.compile(r"tap/device found: (0x[0-9a-fA-F]+)")
_UNEXPECTED = re.compile(r"JTAG tap: (\S+)\s+UNEXPECTED: (0x[0-9a-fA-F]+).*?\n"
                         r"(?:.*\n)*?.*expected \d+ of \d+: (0x[0-9a-fA-F]+)", re.IGNORECASE)
_WROTE = re.compile(r"wrote (\d+) bytes from file .* in ([0-9.]+)s")
_VERIFY_DIFF = re.compile(r"diff \d+ address (0x[0-9a-fA-F]+)\. Was (0x[0-9a-fA-F]+) "
                          r"instead of (0x[0-9a-fA-F]+)")
_ADDRESS = re.compile(r"(?:address|addr|at) (0x[0-9a-fA-F]+)", re.IGNORECASE)
_ERROR = re.compile(r"^Error: (.*)$", re.MULTILINE)


@dataclass
class OpenOCDResult:
    """What OpenOCD's log says happened."""

    chip_id: int | None = None
    programmed_bytes: int = 0
    programmed: bool = False
    verified: bool = False
    reset: bool = False
    errors: tuple[str, ...] = ()


def openocd_command(board: Board, image: Path, *, probe: ProbeId | str | None = None,
                    frequency: int | None = None, reset: bool = True,
                    binary: str = "openocd") -> list[str]:
    """The OpenOCD command line that programs, verifies and (optionally) resets the board.

    ``probe`` is ``jlink:SERIAL`` or a bare serial (``adapter serial``); ``None``/``jlink``
    uses the one J-Link OpenOCD finds. A ``.bin`` goes to the board's application start.
    """
    cmd = [binary]
    try:
        serial = ProbeId.of(probe).address if probe else ""
    except ConfigError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None
    if serial:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", serial):
            raise UsageError(f"'{probe}' is not a J-Link serial number",
                             hint="use jlink:SERIAL (the number printed on the probe)")
        cmd += ["-c", f"adapter serial {serial}"]
    for cfg in board.flash.openocd_config:
        cmd += ["-f", cfg]
    if frequency:
        cmd += ["-c", f"adapter speed {max(1, frequency // 1000)}"]
    program = f"program {{{image}}} verify"
    if reset:
        program += " reset"
    program += " exit"
    if image.suffix.lower() == ".bin":
        program += f" 0x{board.app_start:08x}"
    cmd += ["-c", program]
    return cmd


def parse_output(text: str) -> OpenOCDResult:
    """Read OpenOCD's log: chip id, bytes written, verify and reset outcome, error lines."""
    result = OpenOCDResult(errors=tuple(m.strip() for m in _ERROR.findall(text)))
    found = _FOUND_TAP.search(text)
    if found:
        result.chip_id = int(found.group(1), 16)
    wrote = _WROTE.search(text)
    if wrote:
        result.programmed_bytes = int(wrote.group(1))
    result.programmed = "** Programming Finished **" in text
    result.verified = "** Verified OK **" in text
    result.reset = "** Resetting Target **" in text
    return result


def error_for(text: str, returncode: int, board: Board,
              probe: ProbeId | str) -> HilError | None:
    """The hil error an OpenOCD run ended with, or None when it programmed and verified."""
    result = parse_output(text)
    last = result.errors[-1] if result.errors else f"openocd exited with {returncode}"
    if _NO_PROBE.search(text):
        return NoProbeError(
            f"no J-Link found for board {board.name} (looked for {probe or 'any J-Link'}): "
            f"{last}", hint="plug in the board's USB (its J-Link OB); check with "
            "'JLinkExe' or 'lsusb | grep -i segger'")
    if _BUSY.search(text):
        return ProbeLostError(f"J-Link {probe} is busy or not accessible: {last}",
                              hint="close other debuggers (J-Link tools, another OpenOCD); "
                              "check udev permissions")
    unexpected = _UNEXPECTED.search(text)
    if unexpected:
        return WrongChipError(
            f"JTAG tap {unexpected.group(1)} has id {unexpected.group(2)}, but board "
            f"{board.name} expects {unexpected.group(3)}; refusing to flash",
            hint="is this the right board on this probe?")
    if "** Verify Failed **" in text or ("checksum mismatch" in text and not result.verified):
        diff = _VERIFY_DIFF.search(text)
        address = int(diff.group(1), 16) if diff else None
        where = f": first difference at 0x{address:08X} (flash {diff.group(2)}, image " \
            f"{diff.group(3)})" if diff else ""
        return VerifyError(f"read-back verify failed on {board.name}{where}",
                           address=address, hint="flash it again; if it repeats, the QSPI "
                           "flash may be worn or protected")
    if "** Programming Failed **" in text:
        match = next((_ADDRESS.search(e) for e in result.errors if _ADDRESS.search(e)), None)
        address = int(match.group(1), 16) if match else None
        at = f" at 0x{address:08X}" if address is not None else ""
        return FlashProgramError(f"programming {board.name} failed{at}: {last}",
                                 address=address, hint="check 'flash protect' and power")
    if returncode != 0 or not (result.programmed and result.verified):
        return ProbeLostError(f"OpenOCD could not flash {board.name} via {probe}: {last}",
                              hint="run the command with -v to see OpenOCD's full log")
    return None


class OpenOCDFlasher(Flasher):
    """Flash a board with OpenOCD's program/verify/reset; same report and errors as pyOCD."""

    tool = "openocd"

    def __init__(self, *args, binary: str = "openocd", timeout: float = TIMEOUT,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.binary = binary
        self.timeout = timeout

    def flash(self, image: Path, *, erase: str = "sector", reset: bool = True,
              progress: ProgressCallback | None = None) -> FlashReport:
        if erase == "chip":
            raise UsageError("OpenOCD flashing erases the sectors the image covers; --erase chip "
                             "is not offered (it would erase the board's bootloader)")
        ih = self._load(image)  # before touching the probe
        binary = shutil.which(self.binary)
        if binary is None:
            raise ToolchainError(f"'{self.binary}' is not installed",
                                 hint="apt-get install openocd")
        cmd = openocd_command(self.board, image, probe=self.probe, frequency=self.frequency,
                              reset=reset, binary=binary)
        sectors = {s.start for start, end in ih.segments()
                   for r in self.board.flash_regions() for s in r.sectors
                   if s.start < end and start < s.end}
        report = FlashReport(board=self.board.name, probe=str(self.probe), tool=self.tool,
                             image=str(image), image_sha256=sha256_file(image),
                             content_sha256=self.content_sha256,
                             image_bytes=sum(e - s for s, e in ih.segments()),
                             rack_entry=self.rack_entry)
        if progress:
            progress("program", 0.0)
        t0 = time.monotonic()
        try:
            proc = procs.run(cmd, capture_output=True, text=True, timeout=self.timeout,
                             check=False)
        except subprocess.TimeoutExpired as exc:
            self.touched = True  # it may have been writing when it was stopped
            raise ProbeLostError(f"OpenOCD did not finish flashing {self.board.name} within "
                                 f"{self.timeout:.0f} s", hint="is the board powered?") from exc
        text = (proc.stdout or "") + (proc.stderr or "")
        # OpenOCD's program command prints this before its first erase
        self.touched = "** Programming Started **" in text
        error = error_for(text, proc.returncode, self.board, self.probe)
        if error is not None:
            raise error
        result = parse_output(text)
        if progress:
            progress("program", 1.0)
            progress("verify", 1.0)
        report.chip_id = result.chip_id
        report.erased_sectors = len(sectors)
        report.erased_bytes = sum(s.size for r in self.board.flash_regions()
                                  for s in r.sectors if s.start in sectors)
        report.programmed_bytes = result.programmed_bytes or report.image_bytes
        report.verified = result.verified
        report.reset = result.reset
        report.seconds = time.monotonic() - t0
        if not report.verified:  # error_for guarantees this; never report an unverified flash
            raise FlashError("OpenOCD did not report a verified flash")
        return report
