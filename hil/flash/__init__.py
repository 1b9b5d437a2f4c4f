"""Flashing: the Flasher interface, its report, and ``flash_board`` which picks a backend.

Backends, one module each: ``hil.flash.pyocd`` (Arm, SWD through any pyOCD probe, including
the simulated ``hilsim:`` probe of ``hil.flash.simprobe``) and ``hil.flash.openocd``
(RISC-V HiFive1 Rev B through OpenOCD). Probe choice lives in ``hil.flash.probes``.

Contract of a Flasher: the constructor does no I/O; ``flash()`` checks the image fits the
board before touching the probe, connects, checks the chip id, erases and programs (only what
differs, where the backend can), verifies by reading back, resets and runs unless told not to,
and returns a FlashReport whose ``verified`` is True. Any failure raises a FlashError subclass
(NoProbeError, ProbeLostError, WrongChipError, FlashProgramError, VerifyError) or ImageError;
a flash that raised is never reported as flashed.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hil.boards import Board

#: Progress callback: (phase, fraction) with phase "erase", "program" or "verify" and the
#: fraction 0.0..1.0 of that phase.
ProgressCallback = Callable[[str, float], None]

ERASE_MODES = ("sector", "chip", "auto")


@dataclass
class FlashReport:
    """What one flash did; ``as_dict()`` is the object ``hil flash --json`` prints."""

    board: str
    probe: str
    tool: str
    image: str
    image_sha256: str
    image_bytes: int
    chip_id: int | None = None
    erased_sectors: int = 0
    erased_bytes: int = 0
    programmed_bytes: int = 0
    programmed_pages: int = 0
    skipped_sectors: int = 0
    skipped_bytes: int = 0
    verified: bool = False
    reset: bool = False
    seconds: float = 0.0
    rack_entry: str | None = None
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase

    @property
    def throughput(self) -> float:
        """Image bytes per second over the whole flash (connect to reset)."""
        return self.image_bytes / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["chip_id"] = f"0x{self.chip_id:08x}" if self.chip_id is not None else None
        out["throughput"] = round(self.throughput, 1)
        out["seconds"] = round(self.seconds, 4)
        out["phases"] = {k: round(v, 4) for k, v in self.phases.items()}
        return out

    def summary(self) -> str:
        chip = f"chip 0x{self.chip_id:08X}, " if self.chip_id is not None else ""
        def n(count: int, what: str) -> str:
            return f"{count} {what}{'' if count == 1 else 's'}"

        return (f"flashed {self.image} to {self.board} via {self.probe} ({chip}"
                f"{n(self.erased_sectors, 'sector')} erased, {self.programmed_bytes} bytes "
                f"programmed, {n(self.skipped_sectors, 'sector')} unchanged) in "
                f"{self.seconds:.2f} s "
                f"({self.throughput / 1024:.1f} KiB/s), verify "
                f"{'passed' if self.verified else 'NOT done'}"
                f"{', reset and running' if self.reset else ''}")


class Flasher(ABC):
    """Writes one image to one board through one probe; see the module doc for the contract."""

    tool: str = ""

    def __init__(self, board: Board, probe: str, *, frequency: int | None = None,
                 connect_mode: str | None = None, reset_type: str | None = None,
                 rack_entry: str | None = None) -> None:
        self.board = board
        self.probe = probe
        self.frequency = frequency or board.flash.frequency
        self.connect_mode = connect_mode or board.flash.connect_mode
        self.reset_type = reset_type or board.flash.reset_type
        self.rack_entry = rack_entry

    @abstractmethod
    def flash(self, image: Path, *, erase: str = "sector", reset: bool = True,
              progress: ProgressCallback | None = None) -> FlashReport:
        """Program, verify and (unless ``reset`` is False) reset and run the board."""


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_image(board: Board, image: Path):  # -> intelhex.IntelHex
    """The image's bytes at their addresses (.hex, .elf, or .bin at the board's app start),
    checked to lie inside the board's flash; raises ImageError otherwise."""
    from intelhex import IntelHex

    from hil.errors import ImageError
    from hil.image import check_image_file, check_image_fits, read_image

    if check_image_file(board, image) == "bin":
        ih = IntelHex()
        ih.frombytes(image.read_bytes(), offset=board.app_start)
    else:
        ih = read_image(image)
    if not ih.segments():
        raise ImageError(f"image {image} holds no data")
    check_image_fits(board, ih, name=str(image))
    return ih


def make_flasher(board: Board, probe: str, **kwargs) -> Flasher:
    """The backend for this board and probe: pyOCD for Arm, OpenOCD for the RISC-V board,
    and for a simulated probe on a board pyOCD cannot drive, the simulated flash directly."""
    if board.flash.tool != "pyocd" and probe.lower().startswith("hilsim:"):
        from hil.flash.sim.direct import SimDirectFlasher

        return SimDirectFlasher(board, probe, **kwargs)
    if board.flash.tool == "openocd":
        from hil.flash.openocd import OpenOCDFlasher

        return OpenOCDFlasher(board, probe, **kwargs)
    from hil.flash.pyocd import PyOCDFlasher

    return PyOCDFlasher(board, probe, **kwargs)


def audit_flash(board: Board, *, probe: str, rack_id: str | None, image_sha256: str,
                report: FlashReport | None, error: BaseException | None = None) -> None:
    """Record a flash attempt (successful or not) in the audit trail; raises AuditError."""
    from hil import audit

    audit.record_flash(
        image_sha256=image_sha256, board=board.name, rack_id=rack_id, probe=probe,
        chip_id=report.chip_id if report else None,
        verified=bool(report and report.verified),
        erased=report.erased_sectors if report else 0,
        programmed=report.programmed_bytes if report else 0,
        ok=error is None, error=str(error) if error else None)
