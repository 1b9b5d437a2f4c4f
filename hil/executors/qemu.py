"""The QEMU executor: the board's QEMU machine running the very HEX that would be flashed.

The image is loaded with ``-device loader,file=<hex>`` (``-kernel`` mis-loads HEX on Arm
M-profile). The console is a TCP server on a free loopback port with ``wait=on`` (the guest
waits for us, so no boot output is lost) and ``nodelay=on``; earlier ``-serial`` indices get
``null`` so the board's console UART gets the socket.

No QEMU outlives its executor: ``stop()`` kills it; QEMU runs in its own session (Ctrl-C
reaches only hil, which then stops it) with PR_SET_PDEATHSIG=SIGKILL (a killed parent takes
it along) and no core dumps; an ``atexit`` hook kills any still running at interpreter exit.
PR_SET_PDEATHSIG follows the *thread* that spawned QEMU: start executors from a thread that
lives as long as they do (the main thread, as pytest and ``hil`` do).

A QEMU that exits while a test waits is reported at once: ``qemu: fatal: Lockup`` with its
register dump becomes a CrashError with the decoded PC; any other exit an EmulatorError.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hil import procs
from hil.boards import Board
from hil.console import Console
from hil.crash import parse_qemu_fatal
from hil.errors import ConfigError, ConsoleError, EmulatorError
from hil.executors import Executor, Outcome
from hil.image import Image

CONNECT_TIMEOUT = 10.0
_LIVE: dict[int, subprocess.Popen[bytes]] = {}
_LIVE_LOCK = threading.Lock()

def _kill_all() -> None:
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
        _LIVE.clear()
    for proc in procs:
        _kill(proc)


atexit.register(_kill_all)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: pgid == pid
        except (ProcessLookupError, PermissionError):
            try:
                proc.kill()
            except ProcessLookupError:
                pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
        pass
    procs.forget(proc)


def _qemu_escape(value: object) -> str:
    """A value inside a QEMU option list: commas are doubled."""
    return str(value).replace(",", ",,")


def free_port() -> int:
    """A loopback TCP port free right now (QEMU may still lose a race for it: we retry)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


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
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.spawned_at = 0.0
        self.connected_at = 0.0
        self.stderr_path = self.work_dir / "qemu.stderr"
        self._stopping = False

    @property
    def description(self) -> str:
        return f"QEMU ({self.qemu.machine})"

    def command_line(self, hex_path: Path, port: int) -> list[str]:
        binary = shutil.which(self.qemu.binary) or self.qemu.binary
        serials = ["-serial", "null"] * self.board.console.qemu_serial
        return [binary, "-M", self.qemu.machine, *self.qemu.args, "-display", "none",
                "-monitor", "none", "-nic", "none", *serials,
                "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
                "-device", f"loader,file={_qemu_escape(hex_path)}", *self.extra_args]

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
        if shutil.which(self.qemu.binary) is None:
            raise EmulatorError(f"{self.qemu.binary} not found on PATH",
                                hint="install qemu-system-arm / qemu-system-misc")
        hex_path = self.boot_hex()
        last_error = ""
        for _attempt in range(5):  # a free port can be taken between probe and bind
            port = free_port()
            self._spawn(hex_path, port)
            url = f"socket://127.0.0.1:{port}"
            console = self.console
            console.disconnect()
            console.url = url
            deadline = time.monotonic() + CONNECT_TIMEOUT
            assert self.proc is not None
            # QEMU holds the guest until this connection (wait=on): no output is lost.
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    console.open()
                except ConsoleError:
                    time.sleep(0.005)
                    continue
                break
            if console.is_open:
                self.port = port
                break
            stderr = self._stderr_text()
            self._reap()
            last_error = stderr.strip() or "no output"
            if "Address already in use" in stderr or "Failed to bind" in stderr:
                continue
            if self.proc.poll() is None or time.monotonic() >= deadline:
                last_error = f"no console connection within {CONNECT_TIMEOUT:g} s; " + last_error
            raise EmulatorError(f"QEMU for {self.board.name} did not open its console: "
                                f"{last_error}", hint=f"command: {' '.join(self._cmd)}")
        else:
            raise EmulatorError(f"QEMU for {self.board.name} could not bind a console port: "
                                f"{last_error}")
        self.connected_at = time.monotonic()
        console.note(f"qemu pid {self.proc.pid}: {' '.join(self._cmd)}")

    def _spawn(self, hex_path: Path, port: int) -> None:
        self._cmd = self.command_line(hex_path, port)
        with open(self.stderr_path, "wb") as err:
            self.spawned_at = time.monotonic()
            self.proc = procs.popen(self._cmd, stdin=subprocess.DEVNULL, stdout=err,
                                    stderr=err, start_new_session=True, close_fds=True,
                                    pdeathsig=signal.SIGKILL, core=False)
        with _LIVE_LOCK:
            _LIVE[self.proc.pid] = self.proc

    def _reap(self) -> None:
        if self.proc is not None:
            _kill(self.proc)
            with _LIVE_LOCK:
                _LIVE.pop(self.proc.pid, None)

    def _stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def check(self) -> None:
        """Console monitor: raise CrashError (lockup) or EmulatorError if QEMU has exited."""
        proc = self.proc
        if proc is None or self._stopping:
            return
        code = proc.poll()
        if code is None and self._console is not None and not self._console.is_open:
            # The connection dropped: QEMU is probably on its way out; give it a moment.
            try:
                code = proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                return
        if code is None:
            return
        stderr = self._stderr_text()
        crash = parse_qemu_fatal(stderr)
        how = _describe_exit(code)
        with _LIVE_LOCK:
            _LIVE.pop(proc.pid, None)
        if crash is not None:
            self.outcome = Outcome("crashed", crash.extra.get("message", ""), code)
            assert self._console is not None
            self._console.raise_crash(crash)
        self.outcome = Outcome("died", how, code)
        tail = "\n".join(line for line in stderr.splitlines()[-5:]
                         if "waiting for connection" not in line)
        raise EmulatorError(f"QEMU ({self.qemu.machine}) for {self.board.name} exited "
                            f"unexpectedly: {how}" + (f"\n  stderr: {tail}" if tail else ""),
                            hint=f"stderr: {self.stderr_path}; transcript: "
                            f"{self._console.transcript_path if self._console else None}")

    def reset(self) -> None:
        """Restart QEMU from the image (a cold boot, like a reset from flash)."""
        if self.image is None:
            raise EmulatorError(f"{self.description}: reset before start")
        self._stopping = True
        try:
            self._reap()
        finally:
            self._stopping = False
        self.console.note("reset: restarting QEMU")
        self._spawn_and_connect()
        self.outcome = Outcome("running")

    def stop(self) -> None:
        self._stopping = True
        try:
            if self._console is not None:
                self._console.close()
            running = self.proc is not None and self.proc.poll() is None
            self._reap()
            if running and self.outcome.state == "running":
                self.outcome = Outcome("stopped")
        finally:
            self._stopping = False
