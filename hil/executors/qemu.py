"""The QEMU executor: the board's QEMU machine running the very HEX that would be flashed.

The QEMU process itself (command line, console socket, watching, killing) is
``hil.emulator.qemu.QemuProcess``; this module makes it an Executor: the console is a
``Console`` on QEMU's console socket (QEMU holds the guest until it connects, so no boot output
is lost), reset starts a new QEMU from the image, and no QEMU outlives its executor.

A QEMU that exits while a test waits is reported at once: ``qemu: fatal: Lockup`` with its
register dump becomes a CrashError with the decoded PC; any other exit an EmulatorError.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hil.boards import Board
from hil.console import Console
from hil.emulator.qemu import QemuProcess
from hil.errors import ConfigError, ConsoleError, EmulatorError, UsageError
from hil.executors import Executor, Outcome
from hil.image import Image

if TYPE_CHECKING:
    from hil.debug import GdbAccess


class QemuExecutor(Executor):
    """One QEMU instance of one board; see the module doc."""

    kind = "qemu"

    def __init__(self, board: Board, *, work_dir: Path, timeout: float = 10.0,
                 extra_args: tuple[str, ...] = (),
                 boot_image: Callable[[], Path] | None = None) -> None:
        super().__init__(board, work_dir=work_dir, timeout=timeout)
        if board.qemu is None:
            raise ConfigError(f"board {board.name} has no qemu section: it cannot run in QEMU",
                              hint="run it on hardware (--on hardware)")
        self.qemu = board.qemu
        self.extra_args = extra_args
        self._boot_image = boot_image
        self.process: QemuProcess | None = None
        self.spawned_at = 0.0
        self.connected_at = 0.0
        self.stderr_path = self.work_dir / "qemu.stderr"
        self._stopping = False

    @property
    def description(self) -> str:
        return f"QEMU ({self.qemu.machine})"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running (or last) QEMU process."""
        return None if self.process is None else self.process.proc

    def boot_hex(self) -> Path:
        """The HEX to boot, asked again at start and at every reset: ``boot_image()`` when
        given (a virtual board passes one that writes its simulated flash out as HEX), else
        the started image's HEX."""
        if self._boot_image is not None:
            return self._boot_image()
        assert self.image is not None
        return self.image.hex

    # ------------------------------------------------------------------ lifecycle

    def start(self, image: Image) -> Console:
        self.image = image
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._console = Console("socket://127.0.0.1:0", timeout=self.timeout,
                                transcript=self.work_dir / "console.log",
                                name=f"{self.board.name} in {self.description}",
                                elf=image.elf, monitor=self.check)
        try:
            self._spawn_and_connect()
        except BaseException:
            self.stop()
            raise
        self.outcome = Outcome("running")
        return self._console

    def _spawn_and_connect(self) -> None:
        from hil.debug import HALT

        process = QemuProcess(self.board, self.boot_hex(), stderr_path=self.stderr_path,
                              extra_args=self.extra_args, gdbstub=self.debug is not None,
                              halted=self.debug == HALT)
        self.process = process
        self.spawned_at = time.monotonic()
        process.start()
        console = self.console
        console.disconnect()
        console.url = process.url
        try:
            console.open()  # the port listens already: this connects at once
        except ConsoleError as exc:
            raise process.failure("did not take the console connection") from exc
        self.connected_at = time.monotonic()
        console.note(f"qemu pid {process.pid}: {' '.join(process.command)}")

    def check(self) -> None:
        """Console monitor: raise CrashError (lockup) or EmulatorError if QEMU has exited."""
        process = self.process
        if process is None or self._stopping:
            return
        dropped = self._console is not None and not self._console.is_open
        # A dropped connection: QEMU is probably on its way out; give it a moment.
        if process.poll() is None and dropped and process.wait(timeout=2.0) is None:
            return
        ended = process.exit_status()
        if ended is None:
            return
        if ended.crash is not None:
            self.outcome = Outcome("crashed", ended.crash.extra.get("message", ""), ended.code)
            assert self._console is not None
            self._console.raise_crash(ended.crash)
        self.outcome = Outcome("died", ended.how, ended.code)
        tail = ended.stderr_tail
        raise EmulatorError(f"QEMU ({self.qemu.machine}) for {self.board.name} exited "
                            f"unexpectedly: {ended.how}" + (f"\n  stderr: {tail}" if tail else ""),
                            hint=f"stderr: {self.stderr_path}; transcript: "
                            f"{self._console.transcript_path if self._console else None}")

    def debug_access(self) -> GdbAccess:
        """Stop the VM through its gdbstub and say where that is."""
        from hil.debug import GdbAccess, halt_gdbstub

        process = self.process
        if process is None or process.gdb_address is None:
            raise UsageError(f"{self.board.name} in {self.description} was started without "
                             "a gdbstub", hint="start it with a debug mode (hil debug, "
                             "hil test --debug-on-failure)")
        ended = process.exit_status()
        if ended is not None:
            raise EmulatorError(f"{self.board.name} in {self.description} has ended "
                                f"({ended.how}): there is no target left to debug",
                                hint=f"QEMU's stderr: {self.stderr_path}")
        host, port = process.gdb_address
        halt_gdbstub(host, port, what=f"{self.board.name} in {self.description}")
        assert self.image is not None
        return GdbAccess(host, port, self.image.elf, "QEMU gdbstub", arch=self.board.arch)

    def _stop_process(self, *, power_cut: bool = False) -> None:
        self._stopping = True
        try:
            if self.process is not None:
                self.process.stop(power_cut=power_cut)
        finally:
            self._stopping = False

    def reset(self) -> None:
        """Restart QEMU from the image (a cold boot, like a reset from flash)."""
        if self.image is None:
            raise EmulatorError(f"{self.description}: reset before start")
        self._stop_process()
        self.console.note("reset: restarting QEMU")
        self._spawn_and_connect()
        self.outcome = Outcome("running")

    def power_off(self) -> None:
        """End QEMU as a power switch would (a virtual board's power off): no process left,
        the console disconnected; ``power_on`` boots again."""
        self._stop_process(power_cut=True)
        self.process = None
        if self._console is not None:
            self._console.note("power off: QEMU stopped")
            self._console.disconnect()

    def power_on(self) -> None:
        """Boot a fresh QEMU from ``boot_hex()`` on the same console (a power on)."""
        if self.image is None:
            raise EmulatorError(f"{self.description}: power on before start")
        self._stop_process()
        self.console.note("power on: booting QEMU")
        self._spawn_and_connect()
        self.outcome = Outcome("running")

    def stop(self) -> None:
        self._stopping = True
        try:
            if self._console is not None:
                self._console.close()
            running = self.process is not None and self.process.poll() is None
            self._stop_process()
            if running and self.outcome.state == "running":
                self.outcome = Outcome("stopped")
        finally:
            self._stopping = False
