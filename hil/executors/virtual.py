"""A virtual board: a rack entry whose probe is simulated (``hilsim:``) and whose CPU is QEMU.

Starting it flashes the image through the real flasher (pyOCD's flash path over the
simulated SWD probe) and boots QEMU from what the simulated flash then holds, so what runs
is what was written: a flashing bug shows up as a failing test. Reset restarts QEMU from
flash. Its verdicts are QEMU verdicts: a virtual board is not hardware.

It behaves like hardware when hung (the recovery ladder, ``hil.recovery``): a reset goes
through the simulated probe (pyOCD) and reaches QEMU over its QMP control channel, which a
stopped QEMU (a wedged chip) cannot answer; its power (``hil.power.virtual``) is followed
while the console is waited on: off stops QEMU, on boots a fresh one from the flash.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from hil.boards import Board
from hil.console import Console
from hil.errors import EmulatorError, PowerError
from hil.executors import Executor, Outcome
from hil.executors.qemu import QemuExecutor
from hil.flash import FlashReport
from hil.image import Image
from hil.rack.inventory import RackEntry

if TYPE_CHECKING:
    from hil.debug import GdbAccess
    from hil.emulator.qemu import QemuProcess
    from hil.flash import Flasher


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
        self._flasher: Flasher | None = None
        self._power_seen: int | None = None  # the power switches count QEMU follows

    @property
    def description(self) -> str:
        machine = self.board.qemu.machine if self.board.qemu else "?"
        return f"virtual board {self.entry.id} ({self.entry.probe}, QEMU {machine})"

    @property
    def sim_name(self) -> str:
        return self.entry.probe.address

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running (or last) QEMU process; None while powered off."""
        return self._qemu.proc

    def _flash_contents(self) -> Path:
        from hil.flash.sim.store import SimFlashStore

        store = SimFlashStore.open(self.sim_name)
        return store.write_hex(self.work_dir / "flash-contents.hex")

    def _power(self):  # -> hil.flash.sim.power.PowerState
        from hil.flash.sim.power import read_power_state
        from hil.flash.sim.store import sim_dir

        return read_power_state(sim_dir(), self.sim_name)

    def start(self, image: Image) -> Console:
        from hil.flash import flash_and_record, make_flasher

        self.image = image
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._power_seen = self._power().switches
        self._flasher = make_flasher(self.board, self.entry.probe, rack_entry=self.entry.id)
        self.flash_report = flash_and_record(self._flasher, image.hex, reset=True)
        self._qemu.debug = self.debug
        self._console = self._qemu.start(image)
        self._console.monitor = self.check  # power switches are followed while waiting
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
        self.follow_power()
        if self._power_seen is not None and self._qemu.process is None and \
                not self._power().on:
            raise PowerError(f"{self.description} is powered off",
                             hint=f"switch it on: hil rack power {self.entry.id} on")
        self._qemu.check()

    def debug_access(self) -> GdbAccess:
        return self._qemu.debug_access()

    # ------------------------------------------------------------------ recovery steps
    def follow_power(self) -> None:
        """Apply a power switch made since the last look: stop QEMU; boot a fresh one from
        the simulated flash if the board is on now."""
        if self._power_seen is None:
            return  # not started
        state = self._power()
        if state.switches == self._power_seen:
            return
        self._power_seen = state.switches
        self._qemu.power_off()
        if state.on:
            self._qemu.power_on()

    def _process(self) -> QemuProcess:
        process = self._qemu.process
        if process is None or process.poll() is not None:
            raise EmulatorError(f"{self.description}: QEMU is not running (only a power "
                                "cycle boots it again)")
        return process

    def reconnect_console(self) -> None:
        self.console.reconnect(self._process().url)

    def _probe_reset(self, timeout: float, *, under_reset: bool) -> None:
        """Reset through the simulated probe (pyOCD's real path), then apply it to QEMU
        over QMP, as a chip's reset logic would: a stopped QEMU does not answer."""
        if self._flasher is None:
            raise EmulatorError(f"{self.description}: not started")
        self._flasher.reset(under_reset=under_reset)
        self._process().system_reset(timeout)

    def swd_reset(self, timeout: float) -> None:
        self._probe_reset(timeout, under_reset=False)

    def connect_under_reset(self, timeout: float) -> None:
        self._probe_reset(timeout, under_reset=True)

    def reflash(self, timeout: float) -> None:
        from hil.flash import flash_and_record

        if self._flasher is None or self.image is None:
            raise EmulatorError(f"{self.description}: not started")
        self.flash_report = flash_and_record(self._flasher, self.image.hex, reset=True)
        # the flash may take long; the reset is answered at once or not at all
        self._process().system_reset(min(timeout, max(self.timeout, 1.0)))
