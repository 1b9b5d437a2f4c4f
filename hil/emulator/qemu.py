"""One QEMU process running one board image: the only place hil starts, watches and kills QEMU.

``QemuProcess(board, hex_path, stderr_path=...)`` is a context manager (the constructor does
no I/O). ``start()`` builds the command line from the board model and spawns QEMU:

- the image is loaded with ``-device loader,file=<hex>`` (``-kernel`` mis-loads Intel HEX on
  Arm M-profile), so QEMU runs the very HEX that would be flashed;
- the console: hil binds a TCP socket on 127.0.0.1 (port 0: the kernel picks a free one),
  listens on it, and hands that listening socket to QEMU as an inherited file descriptor
  (``-chardev socket,fd=N,server=on,wait=on,nodelay=on``). The port is bound before QEMU
  exists, so no other process can take it and there is nothing to retry; ``wait=on`` holds
  the guest until the first client connects, so no boot output is lost. The board's console
  UART gets it through ``-serial`` (earlier indices get ``null``);
- QEMU runs in its own session (Ctrl-C reaches only hil, which then stops it), started
  through ``hil.procs.popen``: it gets SIGKILL when the thread that started it ends
  (PR_SET_PDEATHSIG: start it from a thread that outlives it, the main thread as pytest and
  ``hil`` do), SIGTERM when the run is cancelled, no core dumps; an ``atexit`` hook kills any
  still running at interpreter exit.

With ``gdbstub=True`` a second socket hil binds and listens on the same way is QEMU's
gdbstub (``-chardev socket,fd=M,server=on,wait=off -gdb chardev:...``; ``gdb_address``);
``halted=True`` adds ``-S``: the core waits at its reset vector until a debugger continues it.

``connect()`` (a raw socket with TCP_NODELAY) or ``url`` (``socket://`` for
``hil.console.Console``) reach the console; ``exit_status()`` says whether QEMU has ended and
how (a ``qemu: fatal: Lockup`` register dump on stderr becomes a ``Crash``); ``pause()`` and
``resume()`` stop and continue it; ``stop()`` ends it (SIGTERM, a grace period, SIGKILL).

A second listening socket, handed over the same way, is QEMU's QMP control channel:
``system_reset(timeout)`` resets the machine through it (the loader reloads the image, the
console connection stays). Only a QEMU that runs answers it: a stopped (SIGSTOP) or wedged
one does not, which is how a virtual board models a chip whose debug port no longer answers.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from hil import procs
from hil.boards import Board
from hil.crash import Crash, parse_qemu_fatal
from hil.errors import ConfigError, EmulatorError

HOST = "127.0.0.1"
CONSOLE_CHARDEV = "hilconsole"
GDB_CHARDEV = "hilgdb"
QMP_CHARDEV = "hilqmp"
CONNECT_TIMEOUT = 10.0  # seconds for a raw client's connect (the port is listening already)
STOP_GRACE = 2.0  # seconds QEMU gets to end on SIGTERM before SIGKILL

_LIVE: dict[int, subprocess.Popen[bytes]] = {}
_LIVE_LOCK = threading.Lock()


def _kill_all() -> None:
    """At interpreter exit: SIGKILL every QEMU still running (no grace: we are leaving)."""
    with _LIVE_LOCK:
        running = list(_LIVE.values())
        _LIVE.clear()
    for proc in running:
        procs.stop(proc, grace=0)


atexit.register(_kill_all)


def qemu_escape(value: object) -> str:
    """A value inside a QEMU option list: commas are doubled."""
    return str(value).replace(",", ",,")


def describe_exit(code: int | None) -> str:
    """``exit status 1``, ``killed by SIGKILL``, ``still running``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


@dataclass(frozen=True)
class QemuExit:
    """How a QEMU run ended: exit code, in words, a lockup ``Crash`` if it dumped one, and
    the last lines of its stderr."""

    code: int
    how: str
    crash: Crash | None
    stderr_tail: str


class QemuProcess:
    """One QEMU run of one image with its console on a socket hil listens on; see the module
    doc. Call order: ``start()`` (or ``with``), then ``connect()``/``url``, ``exit_status()``,
    ``pause()``/``resume()`` as needed, then ``stop()`` (idempotent). ``start()`` raises
    EmulatorError when the QEMU binary is missing, Cancelled once the run is cancelled."""

    def __init__(self, board: Board, hex_path: Path, *, stderr_path: Path,
                 extra_args: tuple[str, ...] = (), gdbstub: bool = False,
                 halted: bool = False) -> None:
        if board.qemu is None:
            raise ConfigError(f"board {board.name} has no qemu section: it cannot run in QEMU",
                              hint="run it on hardware (--on hardware)")
        self.board = board
        self.spec = board.qemu
        self.hex_path = Path(hex_path)
        self.stderr_path = Path(stderr_path)
        self.extra_args = extra_args
        self.gdbstub = gdbstub or halted
        self.halted = halted
        self.proc: subprocess.Popen[bytes] | None = None
        self.address: tuple[str, int] | None = None
        self.gdb_address: tuple[str, int] | None = None  # the gdbstub's, with gdbstub=True
        self.qmp_address: tuple[str, int] | None = None
        self.command: list[str] = []
        self._paused = False

    @property
    def description(self) -> str:
        return f"QEMU ({self.spec.machine})"

    def command_line(self, console_fd: int, gdb_fd: int | None = None,
                     qmp_fd: int | None = None) -> list[str]:
        """QEMU's argv with the listening console socket at file descriptor ``console_fd``
        (the gdbstub's at ``gdb_fd``, the QMP control socket at ``qmp_fd``)."""
        binary = shutil.which(self.spec.binary) or self.spec.binary
        chardev = f"socket,id={CONSOLE_CHARDEV},fd={console_fd},server=on,wait=on,nodelay=on"
        serials = ["-serial", "null"] * self.board.console.qemu_serial
        gdb: list[str] = []
        if gdb_fd is not None:
            gdb = ["-chardev", f"socket,id={GDB_CHARDEV},fd={gdb_fd},server=on,wait=off",
                   "-gdb", f"chardev:{GDB_CHARDEV}"] + (["-S"] if self.halted else [])
        control = [] if qmp_fd is None else [
            "-chardev", f"socket,id={QMP_CHARDEV},fd={qmp_fd},server=on,wait=off",
            "-mon", f"chardev={QMP_CHARDEV},mode=control"]
        return [binary, "-M", self.spec.machine, *self.spec.args, "-display", "none",
                "-monitor", "none", "-nic", "none", "-chardev", chardev, *control, *serials,
                "-serial", f"chardev:{CONSOLE_CHARDEV}", *gdb,
                "-device", f"loader,file={qemu_escape(self.hex_path)}", *self.extra_args]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Bind and listen on the console port, then spawn QEMU holding that socket."""
        if self.proc is not None:
            raise EmulatorError(f"{self.description} for {self.board.name} is already started")
        if shutil.which(self.spec.binary) is None:
            raise EmulatorError(f"{self.spec.binary} not found on PATH",
                                hint="install qemu-system-arm / qemu-system-misc")
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as gdb_listener, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as control:
            listener.bind((HOST, 0))
            listener.listen(1)
            control.bind((HOST, 0))
            control.listen(1)
            self.address = listener.getsockname()[:2]
            self.qmp_address = control.getsockname()[:2]
            fd, qmp_fd = listener.fileno(), control.fileno()
            fds: tuple[int, ...] = (fd, qmp_fd)
            gdb_fd = None
            if self.gdbstub:  # bound like the console: no port race with other processes
                gdb_listener.bind((HOST, 0))
                gdb_listener.listen(1)
                self.gdb_address = gdb_listener.getsockname()[:2]
                gdb_fd = gdb_listener.fileno()
                fds = (fd, qmp_fd, gdb_fd)
            self.command = self.command_line(fd, gdb_fd, qmp_fd)
            with open(self.stderr_path, "wb") as err:
                self.proc = procs.popen(self.command, stdin=subprocess.DEVNULL, stdout=err,
                                        stderr=err, start_new_session=True, close_fds=True,
                                        pass_fds=fds, pdeathsig=signal.SIGKILL, core=False)
            with _LIVE_LOCK:
                _LIVE[self.proc.pid] = self.proc
        # hil's copy of the listener is closed here; QEMU's stays open while QEMU runs, so a
        # client connecting after QEMU died is refused instead of waiting in a dead backlog.
        return self

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def url(self) -> str:
        """The console as a pyserial URL (``socket://127.0.0.1:PORT``)."""
        if self.address is None:
            raise EmulatorError(f"{self.description}: console asked for before start()")
        return f"socket://{self.address[0]}:{self.address[1]}"

    def connect(self, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
        """A blocking client socket on the console with TCP_NODELAY (QEMU's guest starts once
        it connects). Raises EmulatorError (with QEMU's stderr) if QEMU is gone."""
        if self.address is None:
            raise EmulatorError(f"{self.description}: connect() before start()")
        try:
            sock = socket.create_connection(self.address, timeout=timeout)
        except OSError as exc:
            raise self.failure(f"did not take the console connection ({exc})") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        return sock

    def failure(self, what: str) -> EmulatorError:
        """An EmulatorError for this QEMU: ``what`` went wrong, with its exit and stderr."""
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                code = None
        stderr = self.stderr_text().strip() or "no output"
        return EmulatorError(f"{self.description} for {self.board.name} {what}: "
                             f"{describe_exit(code)}; stderr: {stderr}",
                             hint=f"command: {' '.join(self.command)}")

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ watching

    def poll(self) -> int | None:
        """QEMU's exit code once it has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for QEMU to end; its exit code, or None."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def exit_status(self) -> QemuExit | None:
        """None while QEMU runs (or before start); once it has ended, how it ended."""
        code = self.poll()
        if code is None:
            return None
        self._forget()
        stderr = self.stderr_text()
        tail = "\n".join(line for line in stderr.splitlines()[-5:]
                         if "waiting for connection" not in line)
        return QemuExit(code, describe_exit(code), parse_qemu_fatal(stderr), tail)

    # ------------------------------------------------------------------ control

    def system_reset(self, timeout: float) -> None:
        """Reset the machine through QMP (``system_reset``); EmulatorError when QEMU does not
        answer within ``timeout`` seconds (stopped, wedged or gone)."""
        self.qmp("system_reset", timeout)

    def qmp(self, command: str, timeout: float) -> dict:
        """Run one QMP command (after the capabilities handshake) and return its reply."""
        import json
        import time

        if self.qmp_address is None or self.poll() is not None:
            raise EmulatorError(f"{self.description} for {self.board.name} is not running: "
                                f"cannot {command}")
        deadline = time.monotonic() + timeout
        try:
            with socket.create_connection(self.qmp_address, timeout=timeout) as sock:
                reader = sock.makefile("rb")

                def reply(wanted: str) -> dict:
                    while True:
                        sock.settimeout(max(deadline - time.monotonic(), 0.001))
                        line = reader.readline()
                        if not line:
                            raise EmulatorError(f"QEMU closed its control channel ({command})")
                        msg = json.loads(line)
                        if wanted in msg or "error" in msg:
                            return msg

                reply("QMP")
                for cmd in ("qmp_capabilities", command):
                    sock.sendall(json.dumps({"execute": cmd}).encode() + b"\n")
                    msg = reply("return")
                    if "error" in msg:
                        raise EmulatorError(f"QEMU refused {cmd}: {msg['error']}")
                return msg
        except TimeoutError as exc:
            raise EmulatorError(f"{self.description} for {self.board.name} did not answer "
                                f"'{command}' on its control channel within {timeout:.1f} s "
                                "(stopped or wedged)") from exc
        except (OSError, ValueError) as exc:
            raise EmulatorError(f"{self.description} for {self.board.name}: '{command}' "
                                f"failed on its control channel: {exc}") from exc

    def pause(self) -> None:
        """SIGSTOP QEMU (a core halted by the debugger)."""
        if self.proc is not None and not self._paused:
            self._signal(signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused QEMU."""
        if self.proc is not None and self._paused:
            self._signal(signal.SIGCONT)
            self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # its own session: pgid == pid
        except ProcessLookupError:  # ended just now: exit_status() reports it
            pass

    def stop(self, *, power_cut: bool = False) -> None:
        """End QEMU: SIGTERM, up to STOP_GRACE seconds, then SIGKILL (at once when the run
        is cancelled: QEMU holds nothing to save, and a cancel must end fast; and for a
        ``power_cut``, a virtual board switched off); idempotent."""
        proc = self.proc
        if proc is None:
            return
        self.resume()  # a stopped process would only see SIGTERM once continued
        if proc.poll() is None:
            self._signal(signal.SIGCONT)  # also when stopped by someone else (a hung board)
        now = power_cut or procs.cancel_signal() is not None
        procs.stop(proc, grace=0.0 if now else STOP_GRACE)
        self._forget()

    def _forget(self) -> None:
        if self.proc is not None:
            procs.forget(self.proc)
            with _LIVE_LOCK:
                _LIVE.pop(self.proc.pid, None)
