"""Debugging a board with GDB: how gdb reaches a halted target, and the command line for it.

A target is reached over the GDB remote protocol on a loopback port: QEMU's gdbstub for a
plain QEMU or virtual board (``hil.emulator.qemu.QemuProcess(gdbstub=True)``), a
``pyocd gdbserver`` child for real hardware (``hil.debug.gdbserver``). ``GdbAccess`` holds
where and with which ELF; ``command()`` is the ``gdb-multiarch`` line a user pastes.

Executors take a debug mode (``make_executor(..., debug=...)``):

- ``HALT``: the target waits at its reset vector until the debugger continues it
  (``hil debug``);
- ``LISTEN``: it runs as usual, but a debugger can attach at any time (``hil test
  --debug-on-failure``: the board of a crashed or timed-out test is halted where it is).

``Executor.debug_access()`` halts the target and returns the ``GdbAccess``.
"""

from __future__ import annotations

import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from hil.errors import Cancelled, EmulatorError

GDB = "gdb-multiarch"
HALT = "halt"
LISTEN = "listen"
MODES = (HALT, LISTEN)
#: gdb's architecture name when there is no ELF to read it from.
GDB_ARCH = {"arm": "arm", "riscv": "riscv:rv32"}
HALT_TIMEOUT = 10.0  # seconds for a gdbstub to answer the halt (QEMU answers at once)


@dataclass(frozen=True)
class GdbAccess:
    """Where gdb reaches a halted target: ``host:port`` of a gdbstub or gdbserver, the ELF
    with its symbols (None for an image given as HEX/BIN only), directories holding the
    sources the ELF names, and gdb commands to run once connected."""

    host: str
    port: int
    elf: Path | None
    server: str  # "QEMU gdbstub", "pyocd gdbserver"
    arch: str = "arm"
    source_dirs: tuple[Path, ...] = ()
    after_connect: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def argv(self, *commands: str, batch: bool = False) -> list[str]:
        """gdb-multiarch's argv: load the ELF, connect, then ``commands``."""
        args = [GDB, "-q"] + (["-batch"] if batch else [])
        for directory in self.source_dirs:
            args += ["-d", str(directory)]
        if self.elf is not None:
            args.append(str(self.elf))
        else:
            args += ["-ex", f"set architecture {GDB_ARCH.get(self.arch, self.arch)}"]
        args += ["-ex", f"target remote {self.address}"]
        for command in (*self.after_connect, *commands):
            args += ["-ex", command]
        return args

    def command(self) -> str:
        """The command line to paste into a shell."""
        return shlex.join(self.argv())

    def describe(self) -> str:
        """For the terminal: the command, and what is missing."""
        lines = [f"hil: {self.server} on {self.address}; attach with:", f"  {self.command()}"]
        if self.elf is None:
            lines.append("hil: no ELF for this image (HEX/BIN only): gdb has no symbols; "
                         "give the ELF (--image app.elf or --build-dir) for source-level "
                         "debugging")
        return "\n".join(lines)


def source_dirs(*more: Path) -> tuple[Path, ...]:
    """Directories that resolve the relative source paths hil's builds record: the one
    holding ``hil/runtime/...``, then ``more`` (for ``<source root name>/...``: the source
    root's parent; see hil.build's prefix maps)."""
    from hil.paths import RUNTIME_DIR

    return tuple(dict.fromkeys([RUNTIME_DIR.parent.parent, *more]))


def halt_gdbstub(host: str, port: int, *, what: str,
                 timeout: float = HALT_TIMEOUT) -> None:
    """Stop the VM behind a QEMU gdbstub: a client connecting stops it (QEMU pauses the VM
    when a debugger attaches) and leaving without a detach keeps it stopped; the stop-reason
    query ``?`` makes sure QEMU has handled the connection. Raises EmulatorError naming
    ``what`` when the gdbstub does not answer."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"$?#3f")
            reply = b""
            while b"#" not in reply.lstrip(b"+"):
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                data = sock.recv(256)
                if not data:
                    break
                reply += data
            if b"$" not in reply:
                raise EmulatorError(f"{what}: the gdbstub on {host}:{port} did not answer "
                                    f"(got {reply!r})")
            sock.sendall(b"+")
    except OSError as exc:
        raise EmulatorError(f"{what}: cannot halt it through its gdbstub on {host}:{port}: "
                            f"{exc}", hint="is QEMU still running? see its stderr") from exc


def hold(seconds: float | None, *, poll: float = 0.2) -> None:
    """Wait ``seconds`` (None: until Ctrl-C). Once the run is cancelled this raises
    Cancelled, in worker threads too (the signal handler raises only in the main one)."""
    from hil import procs

    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        signum = procs.cancel_signal()
        if signum is not None:
            raise Cancelled(signum)
        time.sleep(poll if deadline is None else min(poll, max(deadline - time.monotonic(),
                                                                0.0)))
