"""hil test: build (or take) an image, run it on hardware or in QEMU, and give a verdict."""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from hil.app import App, load_app, project_apps
from hil.boards import BoardCatalog
from hil.cli import _args
from hil.cli._exit import exit_code_for
from hil.errors import Cancelled, UsageError
from hil.executors import ON_CHOICES, choose_executor
from hil.foreign import ForeignImage, app_name, foreign_image, record_foreign, to_image
from hil.image import Image
from hil.outcome import OutcomeKind
from hil.paths import state_dir
from hil.settings import current
from hil.testrun import BoardResult, Plan, run_board
from hil.ui import table

NAME = "test"
HELP = "run an app's test suite on a board (hardware if present, else QEMU)"
DESCRIPTION = """\
Build APP for each --board (without APP: every app of the project that has a test suite,
<app>/tests/), or take --image, run it on the board (hardware
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
  hil test --board nucleo-f4 --build-dir ../zephyr-app/build --harness unity

An image from outside (--image, --build-dir) is checked against the board before anything
starts: its architecture, every loadable segment in the board's flash, and on Cortex-M the
initial stack pointer in RAM and the reset vector in flash. A provenance statement marked
as an external build is written next to the run's copy of it and into the audit store.
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", nargs="?", default=None, metavar="APP",
                   help="app directory, project app or example name (default: every app of "
                   "the project with a test suite)")
    p.add_argument("--board", "-b", action="append", default=[], required=True,
                   help="board name or alias (repeatable: boards run in parallel)")
    p.add_argument("--image", type=Path, default=None,
                   help="run this .hex, .elf or .bin instead of building APP")
    p.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                   help="run the firmware of this build directory instead of building APP: "
                   "Zephyr (zephyr/zephyr.elf), PlatformIO (.pio/build/<env>/firmware.elf) "
                   "or the one executable ELF of a CMake/Make build")
    p.add_argument("--harness", choices=("pytest", "unity"), default=None,
                   help="pytest suite or the image's Unity output (default: the project's "
                   "test.harness, else pytest)")
    p.add_argument("--suite", type=Path, default=None,
                   help="pytest suite directory (default: <app>/tests/)")
    p.add_argument("--on", choices=ON_CHOICES, default=None,
                   help="hardware, qemu, or auto: hardware if present, else QEMU (default: "
                   "the project's test.on, else auto)")
    p.add_argument("--require-hardware", action="store_true",
                   help="never fall back to QEMU (exit 4 when the board is not present)")
    p.add_argument("--toolchain", "-t", default=None,
                   help="toolchain for building APP (default: the project's first)")
    p.add_argument("--junit", type=Path, default=None, help="write a JUnit XML verdict here")
    p.add_argument("-n", "--workers", type=_args.workers, default=None,
                   help="pytest-xdist workers per board (each gets its own board instance)")
    p.add_argument("--timeout", type=_args.timeout, default=None,
                   help="seconds to wait for each expected console output (default: the "
                   "project's test.timeout, else 10)")


def run(args: argparse.Namespace) -> int:
    from hil import junit

    settings = current()
    harness = args.harness or settings.test_harness
    on = args.on or settings.test_on
    timeout = args.timeout if args.timeout is not None else settings.test_timeout
    toolchain = args.toolchain or settings.toolchains[0]
    given = "--build-dir" if args.build_dir is not None else "--image"
    foreign_given = args.image is not None or args.build_dir is not None
    if foreign_given and len(args.board) > 1:
        raise UsageError(f"{given} runs one image: give one --board with it")
    if foreign_given and args.app is not None:
        raise UsageError(f"give either APP or {given}, not both")
    if args.junit is not None:
        junit.check_target(args.junit)  # before the run, not after it with the verdict lost
    catalog = BoardCatalog()
    boards = [catalog.get(name) for name in dict.fromkeys(args.board)]
    run_root = state_dir() / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    # An image from outside is checked before any probe is looked for or QEMU started.
    foreign = foreign_image(boards[0], args.image, args.build_dir) if foreign_given else None

    # Decide and say where each board runs before building anything.
    choices = {}
    for board in boards:
        choice = choose_executor(board, on, args.require_hardware)
        print(f"hil: {choice.describe(board)}", file=sys.stderr, flush=True)
        choices[board.name] = choice

    apps: list[App | None] = [None]
    if foreign is None:
        apps = list(_apps_to_test(args.app, harness, args.suite))

    plans: list[Plan] = []
    try:
        _prepare(args, boards, apps, choices, run_root, plans, harness=harness, on=on,
                 timeout=timeout, toolchain=toolchain, foreign=foreign)
    except Cancelled as exc:  # during a build: nothing ran, but the verdict says so
        if args.junit:
            names = [a.name if a else app_name(foreign) if foreign else "image" for a in apps]
            junit.write(args.junit, [_cancelled_suite(b, name, choices[b.name], exc)
                                     for name in names for b in boards])
            print(f"hil: JUnit verdict written to {args.junit}", file=sys.stderr)
        raise
    if not plans:
        raise UsageError("nothing to test: no app supports the given boards",
                         hint="check 'boards:' in the apps' app.yaml")

    if len(plans) == 1:
        results = [run_board(plans[0])]
    else:
        with ThreadPoolExecutor(max_workers=len(boards)) as pool:
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
    return exit_code_for(r.outcome for r in results)


def _cancelled_suite(board, app_name: str, choice, cancel: Cancelled):
    from hil import junit

    return junit.Suite(f"{board.name}/{app_name}", [junit.Case(
        "cancelled", f"{board.name}.{app_name}", "error", message=f"run {cancel}",
        text=f"hil test was {cancel} before the tests started")],
        junit.suite_properties(board=board.name, executor=choice.kind, image_sha256=None,
                               toolchain=None))


def _prepare(args: argparse.Namespace, boards, apps: list[App | None], choices,
             run_root: Path, plans: list[Plan], *, harness: str, on: str, timeout: float,
             toolchain: str, foreign: ForeignImage | None = None) -> None:
    """Build (or take) each app's image for each board and append its Plan to ``plans``."""
    for app in apps:
        suite = _suite(app, harness, args.suite)
        for board in boards:
            work_dir = run_root / board.name if len(apps) == 1 else \
                run_root / board.name / (app.name if app else "image")
            if app is None:
                assert foreign is not None  # checked against the board in run()
                image = to_image(board, foreign, work_dir / "image")
                name = app_name(foreign, image)
                record_foreign(board, foreign, image, name)
            else:
                from hil.build import build

                if app.boards and board.name not in app.boards:
                    continue
                name = app.name
                print(f"hil: building {name} for {board.name} ({toolchain})",
                      file=sys.stderr, flush=True)
                image = Image.from_build(build(board, app, toolchain=toolchain))
                image = image.copy_to(work_dir / "image")
            plans.append(Plan(board=board, image=image, choice=choices[board.name],
                              harness=harness, app=name, suite=suite, work_dir=work_dir,
                              on=on, require_hardware=args.require_hardware,
                              timeout=timeout, workers=args.workers,
                              stream=len(boards) * len(apps) == 1))


def _apps_to_test(name: str | None, harness: str, suite: Path | None) -> list[App]:
    """The named app, else every app of the project that has a test suite."""
    if name is not None:
        return [load_app(name)]
    if suite is not None:
        raise UsageError("--suite goes with one APP (or --image)",
                         hint="name the app whose suite it is")
    apps = [a for a in project_apps() if harness != "pytest" or (a.dir / "tests").is_dir()]
    if not apps:
        settings = current()
        where = settings.project_file or f"{settings.root} (no project file)"
        what = "with a test suite (<app>/tests/)" if harness == "pytest" else ""
        raise UsageError(f"the project has no apps {what} (apps = {list(settings.apps)} in "
                         f"{where})".replace("  ", " "),
                         hint="name an APP (a directory, or an example such as 'shell'), or "
                         "add tests/ to an app ('hil init' makes apps/hello with a suite)")
    return apps


def _suite(app: App | None, harness: str, suite: Path | None) -> Path | None:
    if harness != "pytest":
        return None
    suite = suite or (app.dir / "tests" if app else None)
    if suite is None:
        raise UsageError("--image with the pytest harness needs --suite DIR",
                         hint="or use --harness unity for an image that prints Unity output")
    suite = suite.resolve()
    if not suite.is_dir():
        raise UsageError(f"no test suite: {suite} is not a directory",
                         hint="pass --suite DIR, or --harness unity for Unity output")
    return suite


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
        if r.error and r.outcome.kind != OutcomeKind.PASSED:
            print(f"hil: {r.plan.board.name}: {r.error}", file=sys.stderr)
        elif r.log and r.outcome.kind != OutcomeKind.PASSED:
            print(f"hil: {r.plan.board.name}: see {r.log}", file=sys.stderr)
