"""Flashing: the Flasher interface, its report, and ``flash_board`` which picks a backend.

Backends, one module each: ``hil.flash.pyocd`` (Arm, SWD through any pyOCD probe, including
the simulated ``hilsim:`` probe of ``hil.flash.simprobe``) and ``hil.flash.openocd``
(RISC-V HiFive1 Rev B through OpenOCD). Probe choice lives in ``hil.flash.probes``.

Contract of a Flasher: the constructor does no I/O; ``flash()`` checks the image fits the
board before touching the probe, connects, checks the chip id, erases and programs (only what
differs, where the backend can), verifies by reading back, resets and runs unless told not to,
and returns a FlashReport whose ``verified`` is True. Any failure raises a FlashError subclass
(NoProbeError, ProbeLostError, WrongChipError, FlashProgramError, VerifyError) or ImageError;
a flash that raised is never reported as flashed. ``touched`` turns True once the backend
may have changed the chip's flash (erase or program began), so a failed flash tells "the
board still holds what it held" (False) from "the board holds an unknown mix" (True).

``flash_and_record`` is how callers flash: it runs the flasher and appends the attempt to
the audit trail whatever happened (see ``audit_flash`` for what is recorded).
"""

from __future__ import annotations

import hashlib
import struct
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hil.boards import Board
from hil.flash.probe_id import ProbeId
from hil.fsutil import sha256_file

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
    content_sha256: str | None = None  # the bytes programmed, see content_sha256()
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

    def __init__(self, board: Board, probe: ProbeId | str, *, frequency: int | None = None,
                 connect_mode: str | None = None, reset_type: str | None = None,
                 rack_entry: str | None = None) -> None:
        self.board = board
        self.probe = ProbeId.of(probe)
        self.frequency = frequency or board.flash.frequency
        self.connect_mode = connect_mode or board.flash.connect_mode
        self.reset_type = reset_type or board.flash.reset_type
        self.rack_entry = rack_entry
        self.touched = False  # the chip's flash may have changed (erase or program began)
        self.content_sha256: str | None = None  # of the image loaded by the last flash()

    def _load(self, image: Path):  # -> intelhex.IntelHex
        """Start a flash: load and fit-check the image (no probe touched), remember its
        content hash; raises ImageError/ConfigError as ``load_image``."""
        self.touched = False
        self.content_sha256 = None
        ih = load_image(self.board, image)
        self.content_sha256 = content_sha256(ih)
        return ih

    @abstractmethod
    def flash(self, image: Path, *, erase: str = "sector", reset: bool = True,
              progress: ProgressCallback | None = None) -> FlashReport:
        """Program, verify and (unless ``reset`` is False) reset and run the board."""

    def reset(self, *, under_reset: bool = False) -> None:
        """Reset the board through its probe and let it run (``under_reset``: connect while
        holding nRESET, for a chip whose debug port no longer answers); FlashError from a
        backend that cannot."""
        from hil.errors import FlashError

        raise FlashError(f"{self.tool or type(self).__name__} cannot reset {self.board.name} "
                         "on its own", hint="flash the image again to reset it")


def content_sha256(ih) -> str:
    """The canonical hash of the bytes an image programs, whatever its file format: sha256
    over its segments in address order, each as its start address and length (two unsigned
    64-bit little-endian integers) followed by its bytes. A .bin and the .hex of the same
    bytes at the same address hash alike; a stale file of another image does not."""
    h = hashlib.sha256()
    for start, end in sorted(ih.segments()):
        h.update(struct.pack("<QQ", start, end - start))
        h.update(ih.tobinstr(start=start, size=end - start))
    return h.hexdigest()


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


def _pyocd_programs(board: Board) -> bool:
    """Whether pyOCD has a flash algorithm for the board's chip (a built-in target or pack,
    or a family hil builds a target for)."""
    from hil.flash.target import family_for

    return bool(board.flash.pyocd_target or board.flash.pyocd_pack or family_for(board))


def make_flasher(board: Board, probe: ProbeId | str, **kwargs) -> Flasher:
    """The backend for this board and probe: pyOCD for Arm, OpenOCD for the RISC-V board,
    and for a simulated probe on a board pyOCD cannot drive (not a pyOCD board, or one whose
    chip pyOCD has no flash algorithm for, such as the LM3S6965), the simulated flash
    directly."""
    probe = ProbeId.of(probe)
    if probe.simulated and (board.flash.tool != "pyocd" or not _pyocd_programs(board)):
        from hil.flash.sim.direct import SimDirectFlasher

        return SimDirectFlasher(board, probe, **kwargs)
    if board.flash.tool == "openocd":
        from hil.flash.openocd import OpenOCDFlasher

        return OpenOCDFlasher(board, probe, **kwargs)
    from hil.flash.pyocd import PyOCDFlasher

    return PyOCDFlasher(board, probe, **kwargs)


def flash_and_record(flasher: Flasher, image: Path, *, erase: str = "sector",
                     reset: bool = True, progress: ProgressCallback | None = None) -> FlashReport:
    """Flash ``image`` and record the attempt in the audit trail, whatever happened.

    A flash that raised (a HilError, or an interrupt mid-write) is recorded as failed, then
    re-raised; if even that record cannot be written, a warning goes to stderr and the flash
    error still wins. A flash that succeeded but cannot be recorded raises AuditError: the
    board was flashed, the trail does not know it.
    """
    try:
        report = flasher.flash(image, erase=erase, reset=reset, progress=progress)
    except BaseException as exc:
        record_failed_flash(flasher, image, exc)
        raise
    audit_flash(flasher, image, report)
    return report


def record_failed_flash(flasher: Flasher, image: Path, error: BaseException) -> None:
    """Record a flash that raised ``error``; a store that cannot take it is a warning on
    stderr (the flash error is what the caller reports)."""
    from hil.errors import AuditError

    try:
        audit_flash(flasher, image, None, error=error)
    except AuditError as audit_exc:
        print(f"hil: warning: flash failure not recorded: {audit_exc}", file=sys.stderr)


def audit_flash(flasher: Flasher, image: Path, report: FlashReport | None,
                error: BaseException | None = None) -> None:
    """Record one flash attempt by ``flasher`` in the audit trail; raises AuditError.

    What is recorded is what was written: the sha256 of the image file given and the
    content hash of the bytes it programs, tied to a build only when that file is the HEX,
    ELF or BIN artifact of a recorded build. ``state`` says what the board holds now: runs
    (verified report), unknown (failed after writing began) or untouched (failed before);
    only the first two move what ``hil audit`` says the position runs. Nothing is recorded
    for an image that is not a readable file (nothing can have been written from it).
    """
    from hil import audit
    from hil.errors import HilError

    if report is not None and error is None and report.verified:
        file_sha, state = report.image_sha256, "runs"
    else:
        if not image.is_file():  # a directory, a FIFO, a missing file: nothing was written
            return
        try:
            file_sha = sha256_file(image)
        except OSError:
            return
        state = "unknown" if flasher.touched else "untouched"
    if error is None or isinstance(error, HilError):
        message = str(error) if error is not None else None
    elif isinstance(error, KeyboardInterrupt):  # Ctrl-C, or Cancelled by a signal
        message = f"{str(error) or 'interrupted'} while flashing"
    else:
        message = f"{type(error).__name__}: {error}"
    audit.record_flash(
        image={"path": str(image), "sha256": file_sha,
               "content_sha256": report.content_sha256 if report else flasher.content_sha256},
        state=state, board=flasher.board.name, rack_id=flasher.rack_entry, probe=str(flasher.probe),
        chip_id=report.chip_id if report else None,
        verified=state == "runs",
        erased=report.erased_sectors if report else 0,
        programmed=report.programmed_bytes if report else 0,
        ok=state == "runs", error=message)
