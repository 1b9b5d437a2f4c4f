#!/usr/bin/env python3
"""CPU cost of an idle board: the shell example waiting for a command, in plain QEMU.

For each board: build the shell, boot it in hil's QemuProcess, wait for READY, idle for
--idle seconds with the console connected and silent, and read the QEMU process's CPU time
(user + system, /proc/PID/stat) over that window. Prints the share of one host core; the
goal is under 5%. Then sends one ``ping`` to show the board still answers after idling.

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", action="append", help="default: every example board")
    ap.add_argument("--toolchain", default="gcc")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds to idle (default 3)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hil-bench-idle-") as tmp:
        print(f"idle shell, plain QEMU, {args.toolchain}, {args.idle:.1f} s idle "
              f"(goal: under 5% of a core)")
        for name in args.board or BOARDS:
            share = idle_share(name, args.toolchain, args.idle, Path(tmp))
            before = BEFORE.get(name)
            was = f"   (polling the UART: {100 * before:.1f}%)" if before is not None else ""
            print(f"  {name:16s} {100 * share:6.1f}% of a core{was}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
