#!/usr/bin/env python3
"""The merge gate's cost, measured in one run (QEMU only, images built first).

1. The plan: every example app x the four boards in QEMU. Each cell alone first (one
   ``hil test`` per cell; its test time is the JUnit testsuite time), then the whole plan:
   ``hil test --on qemu -j 2`` over the four boards when that CLI has a plan scheduler
   (``--dry-run`` in its help), else one ``hil test --board B1 .. --board B4 APP`` per app,
   one after the other. Makespan against the ideal (sum of the cells' test times / 2 cores):
   goal <= 1.2.
2. The fixed cost of one ``hil test``: process start to the first test's body starting
   (a one-test pytest suite that records the time), minus QEMU's own spawn-to-READY with a
   bare socket client on the same image. Goal <= 0.3 s. Split into hil's own part (until
   it starts the pytest child, noted by wrapping ``hil.procs.call``) and the child's.

Prints figures; asserts nothing. Usage:
    python bench/gate.py [--runs 5] [--skip-plan]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BOARDS = ["nucleo-f4", "nucleo-f446re", "lm3s6965evb", "hifive1-revb"]
# how each example is tested when the CLI has no plan of its own (app.yaml names none)
HARNESS = {
    "shell": [],  # its pytest suite in firmware_examples/shell/tests
    "selftest": ["--harness", "unity"],
    "blinky": ["--harness", "console", "--expect", "^hil-blinky", "--expect", "^heartbeat 2"],
}
# `python -m hil test ...` with hil.procs.call wrapped to note when the pytest child starts
SPLIT = """\
import sys, time
import hil.procs as procs
_call = procs.call
def call(cmd, **kw):
    with open(sys.argv[1], "w") as f:
        f.write(str(time.time()))
    return _call(cmd, **kw)
procs.call = call
from hil.cli import main
sys.exit(main(sys.argv[2:]))
"""
FIRST_TEST = """\
import os, time

def test_first(dut):
    with open(os.environ["HIL_BENCH_MARK"], "a") as f:
        f.write(f"{time.time()}\\n")
"""


def hil(*args: str, env: dict[str, str] | None = None, check: bool = True) -> float:
    """Run ``python -m hil ARGS`` in the repository; its wall time in seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hil", *args], check=False, cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    took = time.perf_counter() - t0
    if check and proc.returncode != 0:
        print(proc.stdout[-3000:], file=sys.stderr)
        raise SystemExit(f"hil {' '.join(args)}: exit {proc.returncode}")
    return took


def suite_time(junit: Path) -> float:
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    return sum(float(s.get("time") or 0) for s in suites)


def has_plan_scheduler(env: dict[str, str]) -> bool:
    out = subprocess.run([sys.executable, "-m", "hil", "test", "--help"], check=False,
                         cwd=ROOT, env=env,
                         capture_output=True, text=True).stdout
    return "--dry-run" in out and "-j" in out


def bench_plan(env: dict[str, str], tmp: Path) -> None:
    print("== the plan: every example x the four boards, QEMU")
    alone: dict[tuple[str, str], float] = {}
    for app, extra in HARNESS.items():
        for board in BOARDS:
            junit = tmp / f"alone-{app}-{board}.xml"
            hil("test", "--on", "qemu", "--board", board, app, *extra, "--junit", str(junit),
                env=env)
            alone[(app, board)] = suite_time(junit)
            print(f"  alone  {app:9} {board:14} {alone[(app, board)]:6.2f} s")
    ideal = sum(alone.values()) / 2
    boards = [a for b in BOARDS for a in ("--board", b)]
    if has_plan_scheduler(env):
        how = "hil test --on qemu -j 2 (the plan scheduler)"
        makespan = hil("test", "--on", "qemu", "-j", "2", *boards, env=env, check=False)
    else:
        how = "hil test --on qemu --board x4 APP, per app (no plan scheduler in this CLI)"
        makespan = 0.0
        for app, extra in HARNESS.items():
            makespan += hil("test", "--on", "qemu", *boards, app, *extra, env=env)
    print(f"  cells {len(alone)}, sum of test times alone {sum(alone.values()):.2f} s, "
          f"ideal on 2 cores {ideal:.2f} s")
    print(f"  makespan ({how}): {makespan:.2f} s")
    print(f"  makespan / ideal: {makespan / ideal:.2f} (goal <= 1.2)")


def qemu_spawn_to_ready(board_name: str, hex_path: Path, work: Path) -> float:
    """QEMU's own spawn-to-READY on ``hex_path``, read with a bare socket client."""
    from hil.boards import load_board
    from hil.emulator.qemu import QemuProcess

    qemu = QemuProcess(load_board(board_name), hex_path, stderr_path=work / "raw.stderr")
    t0 = time.perf_counter()
    with qemu, qemu.connect() as s:
        seen = b""
        while b"READY" not in seen:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("QEMU closed the console before READY")
            seen += chunk
        return time.perf_counter() - t0


def bench_fixed_cost(env: dict[str, str], tmp: Path, runs: int) -> None:
    print("== fixed cost of one hil test (process start -> first test body - QEMU to READY)")
    suite = tmp / "first"
    suite.mkdir()
    (suite / "test_first.py").write_text(FIRST_TEST)
    mark = tmp / "mark"
    hex_path = ROOT / "build" / "nucleo-f4" / "shell" / "firmware.hex"
    spawn = tmp / "spawn"
    starts, parents, readies = [], [], []
    for _ in range(runs):
        mark.unlink(missing_ok=True)
        t0 = time.time()
        subprocess.run([sys.executable, "-c", SPLIT, str(spawn), "test", "--on", "qemu",
                        "--board", "nucleo-f4", "shell", "--suite", str(suite)], cwd=ROOT,
                       env={**env, "HIL_BENCH_MARK": str(mark)}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        starts.append(float(mark.read_text().split()[0]) - t0)
        parents.append(float(spawn.read_text()) - t0)
        readies.append(qemu_spawn_to_ready("nucleo-f4", hex_path, tmp))
    start, ready = statistics.median(starts), statistics.median(readies)
    parent = statistics.median(parents)
    child = statistics.median(s - p for s, p in zip(starts, parents, strict=True))
    print(f"  process start -> first test: median {start:.3f} s "
          f"(min {min(starts):.3f}, max {max(starts):.3f}, {runs} runs)")
    print(f"    of which hil test until it starts pytest: median {parent:.3f} s; the pytest "
          f"child to its first test: median {child:.3f} s")
    print(f"  QEMU spawn -> READY (bare client): median {ready:.3f} s")
    print(f"  fixed cost: {start - ready:.3f} s (goal <= 0.3 s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="repetitions of the fixed-cost run")
    ap.add_argument("--skip-plan", action="store_true", help="only the fixed cost")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hil-bench-gate-") as tmp_name:
        tmp = Path(tmp_name)
        rack = tmp / "rack.yaml"
        rack.write_text("schema: 1\nboards: []\n")  # QEMU only, whatever is plugged in
        env = {**os.environ, "HIL_STATE_DIR": str(tmp / "state"), "HIL_RACK": str(rack)}
        boards = [a for b in BOARDS for a in ("--board", b)]
        print(f"building the examples for {', '.join(BOARDS)} (cache warm-up)")
        hil("build", *boards, env=env)
        # as installed (pip byte-compiles a package): in a source tree under
        # PYTHONDONTWRITEBYTECODE=1 every start would compile hil's modules again
        print("byte-compiling hil's modules (as a pip install does)")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "hil")],
                       check=True, stdout=subprocess.DEVNULL)
        if not args.skip_plan:
            bench_plan(env, tmp)
        bench_fixed_cost(env, tmp, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
