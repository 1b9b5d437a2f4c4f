"""A virtual board: a rack entry whose probe is simulated (``hilsim:``) and whose CPU is QEMU.

Starting it flashes the image through the real flasher (pyOCD's flash path over the
simulated SWD probe) and boots QEMU from what the simulated flash then holds, so what runs
is what was written: a flashing bug shows up as a failing test. Reset restarts QEMU from
flash. Its verdicts are QEMU verdicts: a virtual board is not hardware.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hil.boards import Board
from hil.console import Console
from hil.executors import Executor, Outcome
from hil.executors.qemu import QemuExecutor
from hil.flash import FlashReport
from hil.image import Image
from hil.rack.inventory import RackEntry

if TYPE_CHECKING:
    from hil.debug import GdbAccess


class VirtualBoardExecutor(Executor):
    """Lease-holding callers pass the rack entry; see the module doc."""

    kind = "qemu"

    def __init__(self, board: Board, entry: RackEntry, *, work_dir: Path,
                 timeout: float = 10.0) -> None:
        self._qemu = QemuExecutor(board, work_dir=Path(work_dir), timeout=timeout,
                                  boot_image=self._flash_contents)
        super().__init__(board, work_dir=work_dir, timeout=timeout)
        self.entry: RackEntry = entry
        self.flash_report: FlashReport | None = None

    @property
    def description(self) -> str:
        machine = self.board.qemu.machine if self.board.qemu else "?"
        return f"virtual board {self.entry.id} ({self.entry.probe}, QEMU {machine})"

    @property
    def sim_name(self) -> str:
        return self.entry.probe.address

    def _flash_contents(self) -> Path:
        from hil.flash.sim.store import SimFlashStore

        store = SimFlashStore.open(self.sim_name)
        return store.write_hex(self.work_dir / "flash-contents.hex")

    def start(self, image: Image) -> Console:
        from hil.flash import flash_and_record, make_flasher

        self.image = image
        self.work_dir.mkdir(parents=True, exist_ok=True)
        flasher = make_flasher(self.board, self.entry.probe, rack_entry=self.entry.id)
        self.flash_report = flash_and_record(flasher, image.hex, reset=True)
        self._qemu.debug = self.debug
        self._console = self._qemu.start(image)
        self.outcome = Outcome("running")
        return self._console

    def _running(self) -> Executor | None:
        return self._qemu

    def reset(self) -> None:
        self._qemu.reset()

    def stop(self) -> None:
        try:
            self._qemu.stop()
        finally:
            self.outcome = self._qemu.outcome

    def check(self) -> None:
        self._qemu.check()

    def debug_access(self) -> GdbAccess:
        return self._qemu.debug_access()
