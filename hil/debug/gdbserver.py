"""Real hardware under GDB: ``pyocd gdbserver`` as a child process on a loopback port.

The child is ``python -m hil.debug.gdbserver BOARD PROBE [pyocd gdbserver options]``: it makes
the board's pyOCD target known in its own process (built from the board file, see
hil.flash.target; pyOCD alone does not know it), then runs pyOCD's own ``gdbserver``
subcommand with ``--port 0`` (the kernel picks a free port, so there is nothing to race for)
and connect mode ``halt`` (the core stops when gdb attaches). The port is read from pyOCD's
"GDB server listening on port N" log line. pyOCD serves loopback only (no ``--allow-remote``).

``PyOCDGdbServer`` is a context manager (the constructor does no I/O); ``start()`` returns the
port or raises NoProbeError with pyOCD's log; ``stop()`` ends the child (idempotent).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

from hil import procs
from hil.boards import Board
from hil.errors import NoProbeError, UsageError
from hil.flash.probe_id import ProbeId

LISTENING = re.compile(r"GDB server listening on port (\d+)")
START_TIMEOUT = 60.0  # seconds for pyOCD to import, open the probe and listen (loaded hosts)


class PyOCDGdbServer:
    """One ``pyocd gdbserver`` child for one probe; see the module doc."""

    def __init__(self, board: Board, probe: ProbeId, *, log_path: Path,
                 frequency: int | None = None) -> None:
        self.board = board
        self.probe = probe
        self.log_path = Path(log_path)
        self.frequency = frequency or board.flash.frequency
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "hil.debug.gdbserver", self.board.name,
                self.probe.pyocd_id]
        if self.frequency:
            args += ["--frequency", str(self.frequency)]
        return args

    def start(self, timeout: float = START_TIMEOUT) -> int:
        """Start the child and wait until it listens; returns its port."""
        from hil.settings import current

        if self.board.flash.tool != "pyocd":
            raise UsageError(f"board {self.board.name} is flashed with "
                             f"{self.board.flash.tool}, not pyOCD: hil starts no gdb server "
                             "for it on hardware yet",
                             hint="start the tool's own gdb server (openocd: gdb_port) and "
                             "attach gdb-multiarch to it; in QEMU (--on qemu) hil debug "
                             "works on this board")

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = procs.popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log, start_new_session=True,
                                    env=current().child_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTENING.search(self._log())
            if m:
                self.port = int(m.group(1))
                return self.port
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        code = self.proc.poll()
        self.stop()
        tail = "\n  ".join(self._log().strip().splitlines()[-5:]) or "no output"
        how = f"ended with exit status {code}" if code is not None else \
            f"did not listen within {timeout:g} s"
        raise NoProbeError(f"pyocd gdbserver for {self.board.name} on probe {self.probe} {how}"
                           f":\n  {tail}",
                           hint=f"log: {self.log_path}; is the probe connected and free "
                           "('hil probes')?")

    def _log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc, grace=0.0 if procs.cancel_signal() is not None else 3.0)
            self.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """The child: register the board's target, then run pyOCD's gdbserver on it."""
    import argparse

    from pyocd.__main__ import PyOCDTool

    from hil.boards import load_board
    from hil.flash import target

    p = argparse.ArgumentParser(prog="python -m hil.debug.gdbserver")
    p.add_argument("board")
    p.add_argument("probe", help="pyOCD unique id (stlink:..., hilsim:NAME, remote:HOST:PORT)")
    p.add_argument("--frequency", default=None)
    args = p.parse_args(argv)
    board = load_board(args.board)
    name, options = target.register(board)
    probe = ProbeId.parse(args.probe)
    if probe.simulated:
        from hil.flash.sim.registry import hint_board

        hint_board(probe.address, board.name)
    cmd = ["gdbserver", "--no-config", "--uid", args.probe, "--target", name, "--port", "0",
           "--connect", "halt", "-L", "pyocd.gdbserver.gdbserver=info",
           # its semihosting console too on a free port (default 4444: two would clash)
           "-O", "stdio_port=0", "-O", "serve_local_only=true"]
    if args.frequency:
        cmd += ["--frequency", args.frequency]
    for pack in options.get("pack", []):
        cmd += ["--pack", pack]
    return PyOCDTool().run(cmd)


if __name__ == "__main__":
    sys.exit(main())
