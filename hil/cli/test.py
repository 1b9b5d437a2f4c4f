"""hil test: build (or take) an image, run it on hardware or in QEMU, and give a verdict."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from hil import harnesses
from hil.app import App, load_app, project_apps
from hil.boards import BoardCatalog
from hil.cli import _args, _size
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
<app>/tests/), or take --image, and run it where the board is: real hardware when a
matching board of the rack is present, else a virtual board of the rack (flashed through
its simulated probe, run in QEMU), else the board's plain QEMU machine; the terminal and
the verdict say which. Its serial console then drives a test suite:

  --harness pytest  the app's pytest suite (<app>/tests/, or --suite DIR) with the hil plugin
                    (fixtures board, image, dut, hil_reset)
  --harness unity   the image's own Unity output (file:line:name:PASS|FAIL|IGNORE), one test
                    case per test
  --harness ztest   Zephyr ztest output (START/PASS/FAIL/SKIP, the summary, PROJECT EXECUTION
                    SUCCESSFUL|FAILED), one test case per test, classname the suite;
                    ZEPHYR FATAL ERROR is a crash
  --harness console regular expressions that must appear (--expect REGEX, repeatable, or
                    app.yaml expect: [...]; --ordered or ordered: true for in order), each one
                    a test case, within --timeout from boot

Without APP (or without --board) hil test runs the project's test plan: every app with a
test x every board it allows (app.yaml boards, exclude_boards, tags, requires, timeout,
hardware_only), filtered by --app, --tag, --board, in parallel (-j), retrying infrastructure
failures on another board (--infra-retries) and, with --retry-failed, re-running failed
tests (a pytest suite's failed tests only; a line harness's whole cell), a test that fails
then passes being flaky; it ends with an app x board matrix, and the project file's
[gate] (require_hardware, allow_flaky) decides the exit code. --dry-run [--json] prints the
plan; --shard I/N runs one part of it.

A harness named in the app's app.yaml (harness: ...) is used without --harness; other
harnesses are added through the 'hil.harness' entry-point group (README: Harnesses).

Repeat --board to test several boards in parallel. A pass in QEMU is reported as such:
"PASSED in QEMU (...) - not a hardware pass". Transcripts of every console byte are kept in
HIL_STATE_DIR/runs/.

examples:
  hil test                                  # the test plan: every app x board
  hil test --dry-run --json --shard 1/3
  hil test --board nucleo-f4
  hil test --board nucleo-f4 --board hifive1-revb --junit report.xml
  hil test --board nucleo-f4 selftest --harness unity
  hil test --board nucleo-f4 --image zephyr.elf --harness ztest --on qemu
  hil test --board nucleo-f4 myapp --expect '^boot' --expect 'ready [0-9]+' --ordered
  hil test --board nucleo-f4 --image build/app.hex --suite tests/ --require-hardware
  hil test --board nucleo-f4 --build-dir ../zephyr-app/build --harness unity

--debug-on-failure keeps the board of a test that crashed or timed out halted (QEMU with
its gdbstub; hardware through pyocd gdbserver) and prints the gdb-multiarch command line
that attaches to it; then it waits for Ctrl-C (which ends the run) when stdin is a terminal,
--debug-wait SECONDS, or not at all (an unattended CI run is never blocked).

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
   5  build failed, or (every test passed and) an image grew past --size-threshold
   6  toolchain missing   10-14  flashing errors
   7  the test plan: a flaky cell (failed, then passed on a re-run) and [gate] allow_flaky
      = false in the project file
   8  the test plan: a cell could not run (no board with a fixture it requires, no QEMU
      model and no hardware); never a pass
 129, 130, 143  cancelled by SIGHUP, SIGINT (Ctrl-C), SIGTERM: every child is stopped, the
                lease released, the JUnit file has what finished and a "cancelled" error
                case, and the audit trail records the cancelled run
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", nargs="?", default=None, metavar="APP",
                   help="app directory, project app or example name (default: every app of "
                   "the project with a test suite)")
    p.add_argument("--board", "-b", action="append", default=[],
                   help="board name or alias (repeatable: boards run in parallel); without "
                   "APP or without --board: the test plan, filtered to these boards")
    p.add_argument("--image", type=Path, default=None,
                   help="run this .hex, .elf or .bin instead of building APP")
    p.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                   help="run the firmware of this build directory instead of building APP: "
                   "Zephyr (zephyr/zephyr.elf), PlatformIO (.pio/build/<env>/firmware.elf) "
                   "or the one executable ELF of a CMake/Make build")
    p.add_argument("--harness", type=_harness, default=None,
                   help="pytest, unity, ztest, console or a harness of the hil.harness entry "
                   "points: the pytest suite, or a line harness reading the image's output "
                   "(default: "
                   "the app's app.yaml harness, console with --expect, the project's "
                   "test.harness, else pytest)")
    p.add_argument("--expect", action="append", default=[], metavar="REGEX",
                   help="console harness: a regular expression a console line must match "
                   "(repeatable; each one a test case)")
    p.add_argument("--ordered", action="store_true",
                   help="console harness: the --expect patterns must appear in this order")
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
    p.add_argument("--report", type=Path, default=None, metavar="FILE.html",
                   help="write a self-contained HTML run report here: the app x board "
                   "matrix, transcript links, footprint per region, a per-board timeline")
    p.add_argument("-n", "--workers", type=_args.workers, default=None,
                   help="pytest-xdist workers per board (each gets its own board instance)")
    g = p.add_argument_group("the test plan (no APP, or no --board)")
    g.add_argument("--app", dest="apps", action="append", default=[], metavar="NAME",
                   help="only this app (repeatable)")
    g.add_argument("--tag", dest="tags", action="append", default=[], metavar="TAG",
                   help="only apps with this app.yaml tag (repeatable: any of them)")
    g.add_argument("--dry-run", action="store_true",
                   help="print every cell of the plan, where it would run or why not; run "
                   "nothing")
    g.add_argument("--json", action="store_true", help="--dry-run: as JSON")
    g.add_argument("--shard", default=None, metavar="I/N",
                   help="run shard I of N (every cell in exactly one shard, balanced by the "
                   "last known durations in the audit store)")
    g.add_argument("-j", "--jobs", type=_args.jobs, default=2,
                   help="cells run in parallel (default: 2)")
    g.add_argument("--infra-retries", type=_args.retries, default=2, metavar="N",
                   help="retry a cell that ended in an infrastructure failure on another "
                   "matching board, up to N times (default: 2); test failures are not")
    g.add_argument("--retry-failed", type=_args.retries, default=0, metavar="N",
                   help="re-run the failed tests of a failed cell up to N times (pytest: "
                   "those tests only; a line harness: the whole cell); a test that fails, "
                   "then passes is flaky (default: 0)")
    p.add_argument("--timeout", type=_args.timeout, default=None,
                   help="seconds to wait for each expected console output (default: the "
                   "project's test.timeout, else 10)")
    _size.add_arguments(p)
    d = p.add_argument_group("debugging a failure")
    d.add_argument("--debug-on-failure", action="store_true",
                   help="a test that crashes or times out keeps its board halted for gdb "
                   "and prints the gdb-multiarch command; waits for Ctrl-C when stdin is "
                   "a terminal")
    d.add_argument("--debug-wait", type=_args.timeout, default=None, metavar="SECONDS",
                   help="with --debug-on-failure: keep the board this long, terminal or not "
                   "(then the run goes on)")


def debug_policy(args: argparse.Namespace):
    """--debug-on-failure and --debug-wait as a hil.debug.session.DebugOnFailure (or None)."""
    if args.debug_wait is not None and not args.debug_on_failure:
        raise UsageError("--debug-wait goes with --debug-on-failure")
    if not args.debug_on_failure:
        return None
    from hil.debug.session import DebugOnFailure

    return DebugOnFailure(wait=args.debug_wait)


def _harness(name: str) -> str:
    """``--harness NAME``: a built-in harness, or one of the hil.harness entry points (only
    then are the installed distributions scanned)."""
    if not harnesses.known(name):
        raise argparse.ArgumentTypeError(f"unknown harness '{name}' (choose from "
                                         f"{', '.join(harnesses.names())})")
    return name


def run(args: argparse.Namespace) -> int:
    from hil import junit

    settings = current()
    if args.expect and args.harness not in (None, "console"):
        raise UsageError(f"--expect goes with the console harness, not --harness {args.harness}")
    if args.ordered and not args.expect and args.harness not in (None, "console"):
        raise UsageError(f"--ordered goes with the console harness, not --harness "
                         f"{args.harness}")
    harness = args.harness or ("console" if args.expect else settings.test_harness)
    on = args.on or settings.test_on
    timeout = args.timeout if args.timeout is not None else settings.test_timeout
    toolchain = args.toolchain or settings.toolchains[0]
    debug_policy(args)  # a misplaced --debug-wait fails before anything is built
    given = "--build-dir" if args.build_dir is not None else "--image"
    foreign_given = args.image is not None or args.build_dir is not None
    if foreign_given and len(args.board) > 1:
        raise UsageError(f"{given} runs one image: give one --board with it")
    if foreign_given and args.app is not None:
        raise UsageError(f"give either APP or {given}, not both")
    if foreign_given and args.size_baseline is not None:
        raise UsageError(f"--size-baseline compares images hil builds, not {given}")
    run_root = state_dir() / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    gate_options = args.apps or args.tags or args.dry_run or args.shard or args.json
    if not foreign_given and (args.app is None or not args.board):
        from hil.cli._gate import run_plan

        return run_plan(args, harness=harness, on=on, run_root=run_root, toolchain=toolchain)
    if gate_options:
        raise UsageError("--app, --tag, --dry-run, --json and --shard go with the test plan",
                         hint="leave out APP, --image and --build-dir")
    if not args.board:
        raise UsageError(f"{given} needs --board")
    if args.junit is not None:
        junit.check_target(args.junit)  # before the run, not after it with the verdict lost
    if args.report is not None:
        junit.check_target(args.report, "--report")
    catalog = BoardCatalog()
    boards = [catalog.get(name) for name in dict.fromkeys(args.board)]
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
        apps = list(_apps_to_test(args.app, args, harness, args.suite))

    plans: list[Plan] = []
    built: list = []
    try:
        _prepare(args, boards, apps, choices, run_root, plans, harness=harness, on=on,
                 timeout=timeout, toolchain=toolchain, foreign=foreign, built=built)
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
    # the footprint is reported before the tests run; past the threshold it is the verdict
    # (exit 5) when every test passed, a failing test's code wins otherwise
    too_big = _size.guard(args, built) if foreign is None else None

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
    if args.junit:  # one suite per rack entry that ran cases (never two in one suite)
        junit.write(args.junit, [s for r in results for s in junit.split(r.suite)])
        print(f"hil: JUnit verdict written to {args.junit}", file=sys.stderr)
    if args.report:
        from hil import runreport

        runreport.write(args.report, runreport.cells_from_results(results),
                        title=f"hil test {', '.join(dict.fromkeys(r.plan.app for r in results))}")
        print(f"hil: run report written to {args.report}", file=sys.stderr)
    print(f"hil: transcripts and logs in {run_root}", file=sys.stderr)
    cancelled = next((r.cancelled for r in results if r.cancelled is not None), None)
    if cancelled is not None:
        print(f"hil: {cancelled}", file=sys.stderr)
    code = exit_code_for(r.outcome for r in results)
    if too_big is not None and code == 0:
        print(f"hil: error: {too_big}", file=sys.stderr)
        return int(too_big.exit_code)
    return code


def _cancelled_suite(board, app_name: str, choice, cancel: Cancelled):
    from hil import junit

    return junit.Suite(f"{board.name}/{app_name}", [junit.Case(
        "cancelled", f"{board.name}.{app_name}", "error", message=f"run {cancel}",
        text=f"hil test was {cancel} before the tests started")],
        junit.suite_properties(board=board.name, executor=choice.kind, image_sha256=None,
                               toolchain=None))


def _prepare(args: argparse.Namespace, boards, apps: list[App | None], choices,
             run_root: Path, plans: list[Plan], *, harness: str, on: str, timeout: float,
             toolchain: str, foreign: ForeignImage | None = None,
             built: list | None = None) -> None:
    """Build (or take) each app's image for each board and append its Plan to ``plans``."""
    for app in apps:
        app_harness = _harness_of(app, args, harness)
        expect, ordered, source = _expect(app, args)
        suite = _suite(app, app_harness, args.suite)
        if app_harness != "pytest":  # a config it cannot use fails before any build
            from hil.harnesses.base import HarnessConfig
            from hil.testrun import make_harness

            make_harness(app_harness, HarnessConfig(
                board=boards[0].name, app=app.name if app else "image", timeout=timeout,
                expect=expect, ordered=ordered, expect_source=source))
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
                result = build(board, app, toolchain=toolchain)
                if built is not None:
                    built.append(result)
                image = Image.from_build(result).copy_to(work_dir / "image")
                # the region use beside the image (for the --report footprint)
                shutil.copyfile(result.out_dir / "build.json", work_dir / "image" / "build.json")
            plans.append(Plan(board=board, image=image, choice=choices[board.name],
                              harness=app_harness, app=name, suite=suite,
                              work_dir=work_dir, expect=expect, ordered=ordered,
                              expect_source=source,
                              on=on, require_hardware=args.require_hardware,
                              timeout=timeout, workers=args.workers,
                              stream=len(boards) * len(apps) == 1,
                              debug=debug_policy(args)))


def _harness_of(app: App | None, args: argparse.Namespace, default: str) -> str:
    """--harness, else console for --expect, else the app's app.yaml harness, else default."""
    if args.harness or args.expect or app is None or app.harness is None:
        return default
    return app.harness


def _expect(app: App | None, args: argparse.Namespace) -> tuple[tuple[str, ...], bool, str]:
    """The console patterns, whether in order, and where they came from (--expect wins)."""
    if args.expect or app is None or not app.expect:
        return tuple(args.expect), args.ordered, "--expect"
    from hil.app import MANIFEST

    return app.expect, app.ordered or args.ordered, f"{app.dir / MANIFEST}: expect"


def _apps_to_test(name: str | None, args: argparse.Namespace, harness: str,
                  suite: Path | None) -> list[App]:
    """The named app, else every app of the project that has a test suite (or a line
    harness in its app.yaml)."""
    if name is not None:
        return [load_app(name)]
    if suite is not None:
        raise UsageError("--suite goes with one APP (or --image)",
                         hint="name the app whose suite it is")
    apps = [a for a in project_apps() if _harness_of(a, args, harness) != "pytest"
            or (a.dir / "tests").is_dir()]
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


def print_summary(results: list[BoardResult], all_cases: bool = True) -> None:
    """Each line harness run's cases (``all_cases``, else only of runs that did not pass),
    then a table of the runs."""
    for r in results:
        if r.plan.harness == "pytest" or not r.suite.cases or \
                (not all_cases and r.outcome.ok):
            continue
        print(f"\n{r.plan.board.name} {r.plan.app} ({r.plan.harness}, {r.executor}):")
        for case in r.suite.cases:
            reason = f": {case.message}" if case.message else ""
            mark = _MARK.get(case.status, case.status)
            if case.status == "skipped" and r.plan.harness != "unity":
                mark = "SKIP"
            print(f"  {mark:6} {case.name}{reason}")
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
