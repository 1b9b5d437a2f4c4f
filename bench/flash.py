#!/usr/bin/env python3
"""Flash benchmark on the simulated probe: bytes/sectors written and pyOCD throughput.

Prints, in one run (figures only, nothing is asserted):
  1. full flash, re-flash of the same image, and a one-function change, for the real shell
     image (when it builds) and for a 384 KiB synthetic image: sectors erased, bytes
     programmed, and the sectors written against a full flash (ratio);
  2. pyOCD throughput through the simulated probe in this process against through
     ``pyocd server`` on loopback (remote:127.0.0.1:PORT), and their ratio, beside the
     figures measured before the simulated probe executed the flash algorithm (when it only
     applied each entry point's effect; that code path no longer exists).

Usage: .venv/bin/python bench/flash.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from intelhex import IntelHex

BOARD = "nucleo-f4"
# KiB/s of the same measurement with the effect model (commit 511cc03, 2-core machine,
# --repeat 2): the simulated probe applied each algorithm entry point's effect without
# executing it. Now pyOCD's STM32F4 algorithm runs on an emulated core.
EFFECT_MODEL_KIBS = {"in process": 773.5, "server": 335.5}


def write_hex(path: Path, address: int, data: bytes) -> Path:
    ih = IntelHex()
    ih.frombytes(data, offset=address)
    ih.write_hex_file(str(path))
    return path


def synthetic(tmp: Path) -> tuple[Path, Path]:
    rng = random.Random(42)
    body = bytearray(rng.getrandbits(8) for _ in range(384 * 1024))
    base = write_hex(tmp / "synthetic.hex", 0x08000000, bytes(body))
    at = 0x4000 + 0x200  # a 200-byte "function" in sector 1
    body[at:at + 200] = bytes(b ^ 0xA5 for b in body[at:at + 200])
    return base, write_hex(tmp / "synthetic_changed.hex", 0x08000000, bytes(body))


def shell_images(tmp: Path) -> tuple[Path, Path] | None:
    from hil.boards import load_board
    from hil.build import build
    from hil.catalog import EXAMPLES_DIR
    from hil.errors import HilError

    if not (EXAMPLES_DIR / "shell" / "main.c").exists():
        return None
    apps = tmp / "apps"
    for name in ("shell", "lib"):
        if (EXAMPLES_DIR / name).is_dir():
            shutil.copytree(EXAMPLES_DIR / name, apps / name)
    shutil.copytree(apps / "shell", apps / "shell_changed")
    main_c = apps / "shell_changed" / "main.c"
    main_c.write_text(main_c.read_text().replace('"pong"', '"PONG"', 1))
    board = load_board(BOARD)
    try:
        a = build(board, apps / "shell", out=tmp / "b1").hex
        b = build(board, apps / "shell_changed", out=tmp / "b2").hex
    except HilError as exc:
        print(f"(shell image not built: {exc.message})")
        return None
    return a, b


def flash(probe: str, image: Path):
    from hil.boards import load_board
    from hil.flash import make_flasher

    return make_flasher(load_board(BOARD), probe).flash(image)


def scenario(label: str, probe: str, base: Path, changed: Path) -> None:
    full = flash(probe, base)
    same = flash(probe, base)
    one = flash(probe, changed)
    print(f"\n{label} ({full.image_bytes} bytes)")
    print(f"  {'':24} {'sectors erased':>15} {'bytes programmed':>17} {'seconds':>8}")
    for name, r in (("full flash", full), ("re-flash same image", same),
                    ("one-function change", one)):
        print(f"  {name:24} {r.erased_sectors:>15} {r.programmed_bytes:>17} {r.seconds:>8.3f}")
    ratio = one.erased_sectors / full.erased_sectors if full.erased_sectors else 0.0
    bytes_ratio = one.programmed_bytes / full.programmed_bytes if full.programmed_bytes else 0
    print(f"  one-function change vs full flash: {ratio:.2f} of the sectors, "
          f"{bytes_ratio:.2f} of the bytes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(name: str, log: Path) -> tuple[subprocess.Popen, int]:
    pyocd = str(Path(sys.executable).parent / "pyocd")
    port = free_port()
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([pyocd, "server", "--probe", f"hilsim:{name}", "-p",
                                 str(port), "--no-config", "-W"], stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if "Serving debug probe" in log.read_text() or proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        raise SystemExit(f"pyocd server failed: {log.read_text()}")
    return proc, port


def throughput(tmp: Path, images: tuple[Path, Path], repeat: int) -> None:
    """Alternate two images that differ in every sector, so every flash is a full one."""
    local, remote, erased = [], [], set()
    proc, port = start_server("served", tmp / "server.log")
    try:
        for i in range(2 * repeat):
            image = images[i % 2]
            for probe, rates in (("hilsim:local", local),
                                 (f"remote:127.0.0.1:{port}", remote)):
                r = flash(probe, image)
                if i:  # the first round fills the erased flash: skip it, it erases less
                    rates.append(r.image_bytes / r.seconds)
                    erased.add(r.erased_sectors)
    finally:
        proc.terminate()
        proc.wait(10)
    lo, re_ = statistics.median(local), statistics.median(remote)
    print(f"\npyOCD throughput through the simulated probe: full rewrites of "
          f"{images[0].stat().st_size}-byte HEX images ({sorted(erased)} sectors erased each), "
          f"median of {len(local)}, connect to reset:")
    before = EFFECT_MODEL_KIBS
    print(f"  {'':29}{'executed algorithm':>18}  {'effect model (before)':>22}")
    print(f"  in process:                  {lo / 1024:10.1f} KiB/s  "
          f"{before['in process']:16.1f} KiB/s")
    print(f"  pyocd server on loopback:    {re_ / 1024:10.1f} KiB/s  "
          f"{before['server']:16.1f} KiB/s")
    print(f"  in-process / server ratio:   {lo / re_:10.2f}x      "
          f"{before['in process'] / before['server']:16.2f}x")
    print("  (a real STM32F4 programs at most ~75-80 KiB/s: erase and word-program times)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hil-bench-flash-"))
    os.environ["HIL_STATE_DIR"] = str(tmp / "state")
    os.environ.setdefault("HIL_CACHE_DIR", str(tmp / "cache"))
    (tmp / "rack.yaml").write_text("schema: 1\nboards: []\n")
    os.environ["HIL_RACK"] = str(tmp / "rack.yaml")
    os.environ["HIL_SIM_BOARDS"] = "served=nucleo-f4"
    os.environ.pop("HIL_SIM_FAULTS", None)
    try:
        print("hil flash benchmark: simulated probe (pyOCD FileProgrammer, smart flash), "
              f"board {BOARD}")
        shell = shell_images(tmp)
        if shell:
            scenario("shell example", "hilsim:bench-shell", *shell)
        base, changed = synthetic(tmp)
        scenario("synthetic 384 KiB image", "hilsim:bench-big", base, changed)
        ih = IntelHex(str(base))
        inverted = write_hex(tmp / "inverted.hex", 0x08000000,
                             bytes(b ^ 0xFF for b in ih.tobinstr()))
        throughput(tmp, (base, inverted), args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
