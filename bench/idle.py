#!/usr/bin/env python3
"""CPU cost of an idle board: the shell example waiting for a command.

For each board, two ways:

- plain QEMU: build the shell, boot it in hil's QemuProcess, wait for READY, idle for --idle
  seconds with the console connected and silent, and read the QEMU process's CPU time (user +
  system, /proc/PID/stat) over that window;
- as a virtual board: a rack entry with a simulated probe, started by the same executor
  ``hil test`` uses (flash through pyOCD's real flash path into the simulated flash, then QEMU
  booted from it, console held by hil's Console), idle the same way; the figure is QEMU's CPU
  time plus this process's (the console reader and whatever pyOCD left running).

Prints the share of one host core; the goal is under 5%. Then sends one ``ping`` to show the
board still answers after idling.

Prints figures; asserts nothing about time. Usage:
    python bench/idle.py [--board nucleo-f4 ...] [--toolchain gcc] [--idle 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hil.boards import load_board
from hil.build import build
from hil.emulator.qemu import QemuProcess
from hil.errors import HilError

BOARDS = ["nucleo-f4", "nucleo-f446re", "lm3s6965evb", "hifive1-revb"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Share of a core before the runtime slept (the shell polled the UART), measured with this
#: script on the parent commit of issue 16's runtime change, gcc, 2-core host at load ~4.
BEFORE = {"nucleo-f4": 1.037, "nucleo-f446re": 1.223, "lm3s6965evb": 1.010,
          "hifive1-revb": 0.996}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/PID/stat (fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def read_until(sock: socket.socket, marker: bytes, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while marker not in data:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {marker!r} within {timeout} s; got {data!r}")
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"console closed before {marker!r}; got {data!r}")
        data += chunk
    return data


def idle_share(board_name: str, toolchain: str, idle: float, tmp: Path) -> float:
    board = load_board(board_name)
    result = build(board, "shell", toolchain=toolchain, out=tmp / f"{board_name}-{toolchain}")
    qemu = QemuProcess(board, result.hex, stderr_path=tmp / f"{board_name}.stderr")
    with qemu, qemu.connect() as sock:
        read_until(sock, b"READY\r\n", 10.0)
        pid = qemu.pid
        assert pid is not None
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(idle)
        c1, t1 = cpu_seconds(pid), time.monotonic()
        sock.sendall(b"ping\n")
        read_until(sock, b"OK\r\n", 10.0)
    return (c1 - c0) / (t1 - t0)


def virtual_idle_share(board_name: str, toolchain: str, idle: float, tmp: Path
                       ) -> tuple[float, float]:
    """(QEMU's share, this process's share) of a core while a virtual board idles."""
    from hil.executors.virtual import VirtualBoardExecutor
    from hil.image import Image
    from hil.rack.inventory import RackEntry

    board = load_board(board_name)
    result = build(board, "shell", toolchain=toolchain, out=tmp / f"{board_name}-{toolchain}")
    entry = RackEntry(id=f"idle-{board_name}", board=board_name,
                      probe=f"hilsim:idle-{board_name}", emulator="qemu", tags=("virtual",))
    image = Image.from_path(result.hex)
    with VirtualBoardExecutor(board, entry, work_dir=tmp / f"virtual-{board_name}") as ex:
        console = ex.start(image)
        console.expect("READY", 10)
        proc = ex._qemu.proc  # the QEMU the executor booted from the simulated flash
        assert proc is not None
        c0, own0, t0 = cpu_seconds(proc.pid), time.process_time(), time.monotonic()
        time.sleep(idle)
        c1, own1, t1 = cpu_seconds(proc.pid), time.process_time(), time.monotonic()
        console.command("ping", 10)
    return (c1 - c0) / (t1 - t0), (own1 - own0) / (t1 - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", action="append", help="default: every example board")
    ap.add_argument("--toolchain", default="gcc")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds to idle (default 3)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hil-bench-idle-") as tmp:
        os.environ["HIL_STATE_DIR"] = str(Path(tmp) / "state")  # private simulated flash
        print(f"idle shell, plain QEMU, {args.toolchain}, {args.idle:.1f} s idle "
              f"(goal: under 5% of a core)")
        for name in args.board or BOARDS:
            share = idle_share(name, args.toolchain, args.idle, Path(tmp))
            before = BEFORE.get(name)
            was = f"   (polling the UART: {100 * before:.1f}%)" if before is not None else ""
            print(f"  {name:16s} {100 * share:6.1f}% of a core{was}")
        print(f"idle shell, virtual board (simulated probe + QEMU booted from its flash), "
              f"{args.toolchain}, {args.idle:.1f} s idle (goal: under 5% of a core)")
        for name in args.board or BOARDS:
            try:
                qemu_share, own_share = virtual_idle_share(name, args.toolchain, args.idle,
                                                            Path(tmp))
            except HilError as exc:  # e.g. no pyOCD flash algorithm for the chip
                print(f"  {name:16s}    n/a  ({exc.message})")
                continue
            print(f"  {name:16s} {100 * (qemu_share + own_share):6.1f}% of a core "
                  f"(QEMU {100 * qemu_share:.1f}%, hil {100 * own_share:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
