"""hil test: build (or take) an image, run it on hardware or in QEMU, and give a verdict."""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from hil.app import load_app
from hil.boards import BoardCatalog
from hil.errors import Cancelled, ExitCode, UsageError
from hil.executors import ON_CHOICES, Image, choose_executor
from hil.paths import state_dir
from hil.testrun import BoardResult, Plan, exit_code, run_board
from hil.ui import table

NAME = "test"
HELP = "run an app's test suite on a board (hardware if present, else QEMU)"
DESCRIPTION = """\
Build APP (default: shell) for each --board, or take --image, run it on the board (hardware
when a matching board is on the rack, otherwise the board's QEMU machine: the terminal and
the verdict say which), and drive its serial console through a test suite:

  --harness pytest  the app's pytest suite (<app>/tests/, or --suite DIR) with the hil plugin
                    (fixtures board, image, dut, hil_reset)
  --harness unity   the image's own Unity output (file:line:name:PASS|FAIL|IGNORE), one test
                    case per test

Repeat --board to test several boards in parallel. A pass in QEMU is reported as such:
"PASSED in QEMU (...) - not a hardware pass". Transcripts of every console byte are kept in
HIL_STATE_DIR/runs/.

examples:
  hil test --board nucleo-f4
  hil test --board nucleo-f4 --board hifive1-revb --junit report.xml
  hil test --board nucleo-f4 selftest --harness unity
  hil test --board nucleo-f4 --image build/app.hex --suite tests/ --require-hardware
"""
EPILOG = """\
exit codes:
   0  every test passed (in QEMU or on hardware: the summary says which)
   1  a test failed (including a firmware crash or a console timeout)
   2  usage or configuration error (bad board or app, no suite, no tests collected)
   3  infrastructure failure (emulator died, console lost, probe error)
   4  hardware required (--require-hardware / --on hardware) but not present
   5  build failed   6  toolchain missing   10-14  flashing errors
 129, 130, 143  cancelled by SIGHUP, SIGINT (Ctrl-C), SIGTERM: every child is stopped, the
                lease released, the JUnit file has what finished and a "cancelled" error
                case, and the audit trail records the cancelled run
"""


def _positive_seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", nargs="?", default=None, metavar="APP",
                   help="app directory or example name (default: shell)")
    p.add_argument("--board", "-b", action="append", default=[], required=True,
                   help="board name or alias (repeatable: boards run in parallel)")
    p.add_argument("--image", type=Path, default=None,
                   help="run this .hex or .elf instead of building APP")
    p.add_argument("--harness", choices=("pytest", "unity"), default="pytest",
                   help="pytest suite (default) or the image's Unity output")
    p.add_argument("--suite", type=Path, default=None,
                   help="pytest suite directory (default: <app>/tests/)")
    p.add_argument("--on", choices=ON_CHOICES, default="auto",
                   help="hardware, qemu, or auto: hardware if present, else QEMU (default)")
    p.add_argument("--require-hardware", action="store_true",
                   help="never fall back to QEMU (exit 4 when the board is not present)")
    p.add_argument("--toolchain", "-t", default="gcc", help="toolchain for building APP")
    p.add_argument("--junit", type=Path, default=None, help="write a JUnit XML verdict here")
    p.add_argument("-n", "--workers", type=int, default=None,
                   help="pytest-xdist workers per board (each gets its own board instance)")
    p.add_argument("--timeout", type=_positive_seconds, default=10.0,
                   help="seconds to wait for each expected console output (default 10)")


def run(args: argparse.Namespace) -> int:
    from hil import junit

    if args.image is not None and len(args.board) > 1:
        raise UsageError("--image runs one image: give one --board with it")
    if args.image is not None and args.app is not None:
        raise UsageError("give either APP or --image, not both")
    if args.workers is not None and args.workers < 1:
        raise UsageError("-n must be at least 1")
    catalog = BoardCatalog()
    boards = [catalog.get(name) for name in dict.fromkeys(args.board)]
    app_name = args.app or "shell"
    run_root = state_dir() / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"

    # Decide and say where each board runs before building anything.
    choices = {}
    for board in boards:
        choice = choose_executor(board, args.on, args.require_hardware)
        print(f"hil: {choice.describe(board)}", file=sys.stderr, flush=True)
        choices[board.name] = choice

    app = None
    if args.image is None:
        app = load_app(app_name)
        app_name = app.name
    suite = None
    if args.harness == "pytest":
        suite = (args.suite or (app.dir / "tests" if app else None))
        if suite is None:
            raise UsageError("--image with the pytest harness needs --suite DIR",
                             hint="or use --harness unity for an image that prints Unity output")
        suite = suite.resolve()
        if not suite.is_dir():
            raise UsageError(f"no test suite: {suite} is not a directory",
                             hint="pass --suite DIR, or --harness unity for Unity output")

    plans = []
    try:
        _prepare(args, boards, app, app_name, suite, choices, run_root, plans)
    except Cancelled as exc:  # during a build: nothing ran, but the verdict says so
        if args.junit:
            junit.write(args.junit, [_cancelled_suite(b, app_name, choices[b.name], exc)
                                     for b in boards])
            print(f"hil: JUnit verdict written to {args.junit}", file=sys.stderr)
        raise

    if len(plans) == 1:
        results = [run_board(plans[0])]
    else:
        with ThreadPoolExecutor(max_workers=len(plans)) as pool:
            futures = [pool.submit(run_board, plan) for plan in plans]
            try:
                wait(futures)
            except Cancelled:
                pass  # every child was told to stop: each run comes back cancelled
            results = [f.result() for f in futures]

    print_summary(results)
    if args.junit:
        junit.write(args.junit, [r.suite for r in results])
        print(f"hil: JUnit verdict written to {args.junit}", file=sys.stderr)
    print(f"hil: transcripts and logs in {run_root}", file=sys.stderr)
    cancelled = next((r.cancelled for r in results if r.cancelled is not None), None)
    if cancelled is not None:
        print(f"hil: {cancelled}", file=sys.stderr)
        return cancelled.exit_code
    return exit_code(results)


def _cancelled_suite(board, app_name: str, choice, cancel: Cancelled):
    from hil import junit

    return junit.Suite(f"{board.name}/{app_name}", [junit.Case(
        "cancelled", f"{board.name}.{app_name}", "error", message=f"run {cancel}",
        text=f"hil test was {cancel} before the tests started")],
        junit.suite_properties(board=board.name, executor=choice.kind, image_sha256=None,
                               toolchain=None))


def _prepare(args: argparse.Namespace, boards, app, app_name: str, suite, choices,
             run_root: Path, plans: list[Plan]) -> None:
    """Build (or take) each board's image and append its Plan to ``plans``."""
    for board in boards:
        work_dir = run_root / board.name
        if args.image is not None:
            image = Image.from_path(args.image, work_dir=work_dir / "image")
            from hil.flash import load_image

            load_image(board, image.hex)  # built for this board? (ImageError, exit 5)
            app_name = image.app or args.image.stem
        else:
            from hil.build import build

            print(f"hil: building {app_name} for {board.name} ({args.toolchain})",
                  file=sys.stderr, flush=True)
            image = Image.from_build(build(board, app, toolchain=args.toolchain))
        image = image.copy_to(work_dir / "image")
        plans.append(Plan(board=board, image=image, choice=choices[board.name],
                          harness=args.harness, app=app_name, suite=suite, work_dir=work_dir,
                          on=args.on, require_hardware=args.require_hardware,
                          timeout=args.timeout, workers=args.workers,
                          stream=len(boards) == 1))


_MARK = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "IGNORE"}


def print_summary(results: list[BoardResult]) -> None:
    for r in results:
        if r.plan.harness != "unity" or not r.suite.cases:
            continue
        print(f"\n{r.plan.board.name} {r.plan.app} (Unity, {r.executor}):")
        for case in r.suite.cases:
            reason = f": {case.message}" if case.message else ""
            print(f"  {_MARK.get(case.status, case.status):6} {case.name}{reason}")
    print()
    rows = []
    for r in results:
        rows.append([r.plan.board.name, r.plan.app, r.plan.harness, r.executor or "-",
                     r.count("passed"), r.count("failed"), r.count("error"),
                     r.count("skipped"), f"{r.seconds:.1f}s", r.verdict])
    # errors: tests that could not run (the board did not start, the console was lost)
    table(["board", "app", "harness", "executor", "passed", "failed", "errors", "skipped",
           "time", "verdict"], rows)
    for r in results:
        if r.error and r.exit_code != ExitCode.OK:
            print(f"hil: {r.plan.board.name}: {r.error}", file=sys.stderr)
        elif r.log and r.exit_code != ExitCode.OK:
            print(f"hil: {r.plan.board.name}: see {r.log}", file=sys.stderr)
