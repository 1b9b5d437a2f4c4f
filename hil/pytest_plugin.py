"""The hil pytest plugin (entry point ``pytest11``): a booted board as a fixture.

Options: ``--hil-board`` (required by the fixtures), ``--hil-image`` (HEX or ELF; else
``--hil-app`` is built, default ``shell``), ``--hil-on auto|hardware|qemu``,
``--hil-require-hardware``, ``--hil-timeout`` (console timeout per expect/command).

Fixtures: ``board`` (the Board), ``image`` (an ``hil.image.Image``: HEX, ELF, sha256,
toolchain), ``hil_executor`` and ``dut`` (the started executor and its ``Console``, after
``READY``; one per test module by default, ``--hil-scope`` changes it), ``hil_reset`` (reset
the board and wait for ``READY``; returns ``dut``). A test that crashed the board (CrashError),
lost it, or timed out waiting for it, gets a reset before the next test that uses ``dut``.

Markers: ``hardware_only`` (skipped, with the reason, when running in QEMU) and
``boards(name, ...)`` (skipped on other boards). With pytest-xdist every worker starts its own
board instance. A failed test's report ends with the console transcript tail.

With ``--hil-board``, SIGTERM and SIGHUP end the run as Ctrl-C does (``hil.procs``): the
running test stops, fixtures tear down (QEMU stopped, lease released at once), the JUnit file
keeps what finished. ``hil test`` sends SIGTERM when it is cancelled, and the kernel sends it
when ``hil test`` dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal, cast

import pytest

from hil.errors import HilError, UsageError, is_test_failure
from hil.outcome import ErrorRecord
from hil.settings import xdist_worker

_CHOICE = pytest.StashKey[object]()
_BOARD = pytest.StashKey[Any]()
_ERRORS = pytest.StashKey[list]()
_FAILED = pytest.StashKey[list[str]]()  # node ids of the tests that failed, in order
_COLLECT_FAILED = pytest.StashKey[bool]()
_EXECUTORS = pytest.StashKey[list[Any]]()
_SIGNALS = pytest.StashKey[dict]()
_PARENT = pytest.StashKey[int]()
_DEBUG = pytest.StashKey[BaseException]()  # the crash or timeout to debug after this test
_GIVEN_UP = pytest.StashKey[dict[int, BaseException]]()  # executor id -> RecoveryFailed
Scope = Literal["session", "package", "module", "class", "function"]
SCOPES = ("function", "class", "module", "package", "session")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("hil", "hil: run tests against a board (hardware or QEMU)")
    g.addoption("--hil-board", default=None, help="board name or alias (see 'hil boards')")
    g.addoption("--hil-image", default=None, type=Path,
                help="image to run (.hex or .elf); default: build --hil-app")
    g.addoption("--hil-elf", default=None, type=Path,
                help="the ELF of a --hil-image HEX (for decoding crash addresses)")
    g.addoption("--hil-app", default="shell", help="app to build when no --hil-image is given")
    g.addoption("--hil-toolchain", default="gcc", help="toolchain for building --hil-app")
    g.addoption("--hil-on", default="auto", choices=("auto", "hardware", "qemu"),
                help="where to run: hardware if present, else QEMU (auto)")
    g.addoption("--hil-require-hardware", action="store_true",
                help="never fall back to QEMU; error if no hardware is present")
    g.addoption("--hil-timeout", default=10.0, type=float,
                help="console timeout in seconds for each expect/command (default 10)")
    g.addoption("--hil-ready", default=r"^READY\r?$",
                help="regex the dut fixture waits for after boot ('' to not wait)")
    g.addoption("--hil-scope", default="module", choices=SCOPES,
                help="one board instance per ... (default: module)")
    g.addoption("--hil-work-dir", default=None, type=Path,
                help="where transcripts and emulator logs go (default: pytest's tmp dir)")
    g.addoption("--hil-debug-on-failure", action="store_true",
                help="a test that crashes the board or times out keeps it halted for gdb "
                "and prints the gdb-multiarch command (waits for Ctrl-C on a terminal)")
    g.addoption("--hil-debug-wait", default=None, type=float, metavar="SECONDS",
                help="with --hil-debug-on-failure: keep the board this long, terminal or not")
    g.addoption("--hil-debug-terminal", action="store_true", help=argparse.SUPPRESS)
    g.addoption("--hil-run-info", default=None, type=Path, help=argparse.SUPPRESS)
    g.addoption("--hil-rack-entries", default=None, help=argparse.SUPPRESS)  # hil test's plan
    # hil test --retry-failed: a file of node ids (one a line), the only tests to run
    g.addoption("--hil-select", default=None, type=Path, help=argparse.SUPPRESS)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hardware_only: run only on real hardware (skipped in "
                            "QEMU, with the reason)")
    config.addinivalue_line("markers", "boards(*names): run only on these boards")
    config.stash[_ERRORS] = []
    config.stash[_FAILED] = []
    config.stash[_COLLECT_FAILED] = False
    config.stash[_EXECUTORS] = []
    config.stash[_GIVEN_UP] = {}
    if config.getoption("--hil-board"):
        from hil import procs

        config.stash[_SIGNALS] = procs.install()
        config.stash[_PARENT] = os.getppid()
    _live_past_capture(config)


def _live_past_capture(config: pytest.Config) -> None:
    """Progress of long steps (a wait for a board, a recovery) reaches the terminal while
    the test runs, not in the captured output after it (``hil.ui.live``)."""
    from hil import ui

    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        return

    def write(text: str) -> None:
        with capture.global_and_fixture_disabled():
            print(text, file=sys.stderr, flush=True)

    ui.set_live_writer(write)


def pytest_unconfigure(config: pytest.Config) -> None:
    from hil import ui

    ui.set_live_writer(None)
    if _SIGNALS in config.stash:
        from hil import procs

        cancelled = procs.cancel_signal()
        procs.restore(config.stash[_SIGNALS])
        del config.stash[_SIGNALS]
        if cancelled is not None and os.getppid() != config.stash[_PARENT]:
            # hil died (SIGKILL) and its parent-death signal cancelled this run: the boards
            # are released and the emulators stopped; nobody reads what else this process
            # would write, so it ends now instead of after the interpreter's shutdown.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + cancelled)


def _board(config: pytest.Config):
    """The Board of --hil-board, loaded once per process."""
    from hil.boards import load_board

    name = config.getoption("--hil-board")
    if not name:
        raise pytest.UsageError("this test needs a board: pass --hil-board NAME")
    if _BOARD not in config.stash:
        try:
            config.stash[_BOARD] = load_board(name)
        except HilError as exc:
            raise pytest.UsageError(str(exc)) from exc
    return config.stash[_BOARD]


def _choice(config: pytest.Config):
    """The executor choice, made once per process."""
    if _CHOICE not in config.stash:
        from hil.executors import choose_executor

        try:
            ids = config.getoption("--hil-rack-entries")
            config.stash[_CHOICE] = _planned_choice(_board(config), ids.split(",")) if ids \
                else choose_executor(_board(config), config.getoption("--hil-on"),
                                     config.getoption("--hil-require-hardware"))
        except HilError as exc:
            config.stash[_CHOICE] = exc
    choice = config.stash[_CHOICE]
    if isinstance(choice, HilError):
        raise choice
    return choice


def _planned_choice(board, ids: list[str]):
    """The rack entries ``hil test``'s plan chose for this run (one of them is leased)."""
    from hil.executors import Choice
    from hil.rack.inventory import load_rack

    rack = load_rack()
    entries = tuple(e for e in rack.entries if e.id in ids and e.board == board.name)
    if not entries:
        raise UsageError(f"--hil-rack-entries {','.join(ids)}: no such {board.name} entries "
                         f"in {rack.path}")
    if all(e.is_virtual for e in entries):
        return Choice("qemu", "a virtual board chosen by the test plan", entries=entries)
    return Choice("hardware", "chosen by the test plan", entries[0], entries=entries)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--hil-select``: run only the named tests (the failed ones of an earlier run)."""
    path = config.getoption("--hil-select")
    if path is None:
        return
    wanted = {line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()
              if line.strip()}
    keep = [i for i in items if i.nodeid in wanted]
    deselected = [i for i in items if i.nodeid not in wanted]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    if outcome.get_result().failed:  # a module that cannot be imported: no node ids to name
        collector.config.stash[_COLLECT_FAILED] = True


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.getoption("--hil-board"):
        return None
    try:
        return f"hil: {_choice(config).describe(_board(config))}"
    except HilError as exc:
        return f"hil: {exc}"


def pytest_runtest_setup(item: pytest.Item) -> None:
    boards = item.get_closest_marker("boards")
    if boards is not None and item.config.getoption("--hil-board"):
        board = _board(item.config)
        names = set(boards.args)
        if not names & {board.name, *board.aliases}:
            pytest.skip(f"only for boards {', '.join(sorted(names))}, not {board.name}")
    if item.get_closest_marker("hardware_only") is not None:
        choice = _choice(item.config)
        if choice.kind != "hardware":
            pytest.skip(f"hardware_only: running in QEMU ({choice.reason})")


@pytest.fixture(scope="session")
def board(pytestconfig: pytest.Config):
    """The Board model of --hil-board."""
    return _board(pytestconfig)


@pytest.fixture(scope="session")
def image(pytestconfig: pytest.Config, board, tmp_path_factory: pytest.TempPathFactory):
    """The image under test (hil.image.Image): --hil-image, or --hil-app built now."""
    from hil.image import Image

    path = pytestconfig.getoption("--hil-image")
    if path is not None:
        from hil.image import check_image_file

        check_image_file(board, Path(path))  # ELF machine, size, empty: before booting
        image = Image.from_path(Path(path), work_dir=tmp_path_factory.mktemp("hil-image"))
        elf = pytestconfig.getoption("--hil-elf")
        if elf is not None:
            image = dataclasses.replace(image, elf=Path(elf).resolve())
        return image
    from hil.build import build

    result = build(board, pytestconfig.getoption("--hil-app"),
                   toolchain=pytestconfig.getoption("--hil-toolchain"),
                   out=tmp_path_factory.mktemp("hil-build"))
    return Image.from_build(result)


def _scope(fixture_name: str, config: pytest.Config) -> Scope:
    return cast(Scope, config.getoption("--hil-scope", "module"))


def _work_dir(request: pytest.FixtureRequest, factory: pytest.TempPathFactory) -> Path:
    base = request.config.getoption("--hil-work-dir")
    worker = xdist_worker()
    node = request.node.nodeid if request.node is not None else "session"
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", node.split("::")[-1] or node)[-60:] or "session"
    if base is None:
        return factory.mktemp(f"hil-{label}")
    path = Path(base) / worker / label
    n = 0
    while path.exists():
        n += 1
        path = Path(base) / worker / f"{label}-{n}"
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope=_scope)
def hil_executor(request: pytest.FixtureRequest, board, image,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The started executor (QEMU or hardware) running ``image``; stopped afterwards."""
    from hil.executors import make_executor

    config = request.config
    executor = make_executor(board, _choice(config), work_dir=_work_dir(request,
                                                                          tmp_path_factory),
                             timeout=config.getoption("--hil-timeout"),
                             debug=_debug_mode(config))
    config.stash[_EXECUTORS].append(executor)
    with executor:
        executor.start(image)
        yield executor


@pytest.fixture(scope=_scope)
def dut(request: pytest.FixtureRequest, hil_executor):
    """The board's console (hil.console.Console), booted to READY."""
    console = hil_executor.console
    _wait_ready(request.config, console)
    return console


def _wait_ready(config: pytest.Config, console) -> None:
    pattern = config.getoption("--hil-ready")
    if pattern:
        console.wait_ready(timeout=max(config.getoption("--hil-timeout"), 10.0),
                           pattern=pattern)


@pytest.fixture
def hil_reset(request: pytest.FixtureRequest, hil_executor, dut):
    """Reset the board (fresh boot, input discarded) and wait for READY; returns ``dut``."""
    hil_executor.reset()
    _wait_ready(request.config, hil_executor.console)
    return hil_executor.console


@pytest.fixture(autouse=True)
def _hil_recover(request: pytest.FixtureRequest) -> None:
    """Before a test that uses the board: reset it if it crashed or was lost (a board the
    recovery ladder gave up on is out of service: its tests fail as it did)."""
    if "hil_executor" not in request.fixturenames:  # (a project's own ``dut`` is not ours)
        return
    executor = request.getfixturevalue("hil_executor")
    given_up = request.config.stash[_GIVEN_UP].get(id(executor))
    if given_up is not None:
        raise given_up
    console = executor._console
    broken = (console is None or not console.is_open or console.crashed is not None
              or console.wedged or executor.outcome.state in ("crashed", "died")
              or executor.halted_for_debug)
    if broken and executor.image is not None:
        executor.reset()
        executor.halted_for_debug = False
        _wait_ready(request.config, executor.console)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """A test on a rack board that hit an infrastructure failure, or waited in silence,
    gets the recovery ladder (hil.recovery); if the board comes back the test runs once
    more on it, and that run is its result."""
    try:
        return (yield)
    except BaseException as exc:
        executor = getattr(item, "funcargs", {}).get("hil_executor")
        from hil.recovery import needs_recovery

        if executor is None or not item.config.getoption("--hil-board") or \
                not needs_recovery(exc):
            raise
        try:
            step = executor.recover(exc, ready=item.config.getoption("--hil-ready"))
        except HilError as failed:
            item.config.stash[_GIVEN_UP][id(executor)] = failed
            raise failed from exc
        if step is None:
            raise
        item.user_properties.append(("hil.recovered", step))
        executor.console.note(f"{item.nodeid}: recovered by {step}; running it again")
        item.runtest()
        return None


def _record_placement(item: pytest.Item) -> None:
    """Say in the test's report which rack entry, probe and executor ran it (hil test
    splits the JUnit file by them: with -n 2 each worker may lease another entry)."""
    if any(name == "hil.executor" for name, _ in item.user_properties):
        return
    executor = getattr(item, "funcargs", {}).get("hil_executor")
    if executor is None and "hil_executor" in getattr(item, "fixturenames", ()):
        executors = item.config.stash[_EXECUTORS]  # its start failed: the last one made
        executor = executors[-1] if executors else None
    if executor is None:
        return
    entry = executor.entry
    item.user_properties += [("hil.rack_id", entry.id if entry is not None else ""),
                             ("hil.probe", str(entry.probe) if entry is not None else ""),
                             ("hil.executor", executor.kind)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    if item.config.getoption("--hil-board") and call.when != "teardown":
        _record_placement(item)
    outcome = yield
    report = outcome.get_result()
    if report.failed and item.nodeid not in item.config.stash[_FAILED]:
        item.config.stash[_FAILED].append(item.nodeid)
    exc = call.excinfo.value if call.excinfo is not None else None
    # Anything but a test failure (flash, lease, image, console, emulator errors) says the
    # run could not test the firmware: keep what kind of error it was for the verdict.
    if isinstance(exc, HilError) and not is_test_failure(exc):
        record = ErrorRecord.of(exc)  # its first line: the run-info lines stay short
        record = dataclasses.replace(record, message=record.message.split("\n", 1)[0])
        item.config.stash[_ERRORS].append({"test": item.nodeid, **record.as_dict()})
    if call.when == "call" and report.failed and _debug_mode(item.config) and \
            _crash_or_timeout(exc):
        assert exc is not None
        item.stash[_DEBUG] = exc
    if report.failed and "hil_executor" in getattr(item, "fixturenames", ()):
        executors: list[Any] = item.config.stash[_EXECUTORS]
        executor = next((e for e in reversed(executors)
                         if e._console is not None), None)
        if executor is not None and hasattr(report.longrepr, "addsection"):
            console = executor._console
            console.flush()
            tail = "\n".join(console.last_lines(20)) or "(nothing received)"
            report.longrepr.addsection(
                f"hil console of {executor.board.name} ({executor.description}), last lines",
                f"{tail}\ntranscript: {console.transcript_path}")


def _debug_mode(config: pytest.Config) -> str | None:
    from hil.debug import LISTEN

    return LISTEN if config.getoption("--hil-debug-on-failure", False) else None


def _crash_or_timeout(exc: BaseException | None) -> bool:
    from hil.console import ConsoleTimeout
    from hil.crash import CrashError

    return isinstance(exc, (CrashError, ConsoleTimeout))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """--hil-debug-on-failure: before the board's fixtures are torn down, keep the board
    of a test that crashed or timed out halted for gdb (see hil.debug.session)."""
    why = item.stash.get(_DEBUG, None)
    executor = getattr(item, "funcargs", {}).get("hil_executor")
    if why is None or executor is None:
        return
    from hil.debug.session import DebugOnFailure, keep_for_debugger, stdin_is_terminal

    policy = DebugOnFailure(wait=item.config.getoption("--hil-debug-wait"))
    capture = item.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
        print(file=sys.stderr)
        # hil test says whether a developer is at a terminal (capture hides stdin from
        # here); run directly, the terminal counts only with capture off (-s)
        terminal = item.config.getoption("--hil-debug-terminal") or \
            (item.config.getoption("capture") == "no" and stdin_is_terminal())
        keep_for_debugger(executor, why, policy, out=sys.stderr, interactive=terminal)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("--hil-run-info")
    if path is None or not session.config.getoption("--hil-board"):
        return
    info: dict[str, object] = {"worker": xdist_worker(),
                               "errors": session.config.stash[_ERRORS],
                               "failed": session.config.stash[_FAILED],
                               "collect_failed": session.config.stash[_COLLECT_FAILED]}
    executors = session.config.stash[_EXECUTORS]
    try:
        choice = _choice(session.config)
        # the rack entries this worker actually ran on (leased per executor)
        entries = [e.entry for e in executors if e.entry is not None]
        if not entries and choice.entry is not None:
            entries = [choice.entry]
        info.update(kind=choice.kind, reason=choice.reason,
                    rack_id=",".join(sorted({e.id for e in entries})) or None,
                    probe=",".join(sorted({str(e.probe) for e in entries})) or None)
    except HilError as exc:
        info.update(error=ErrorRecord.of(exc).as_dict())
    # boards whose failed start the recovery ladder fixed: [rack_id, step] each
    info["recovered_at_start"] = [[e.entry.id, e.recovered_at_start] for e in executors
                                  if getattr(e, "recovered_at_start", None) and e.entry]
    if executors:
        ex = executors[0]
        info.update(description=ex.description, image_sha256=ex.image.sha256 if ex.image
                    else None, toolchain=ex.image.toolchain if ex.image else None,
                    outcomes=[e.outcome.state for e in executors])
    with open(path, "a", encoding="utf-8") as fh:  # one short line: O_APPEND keeps it whole
        fh.write(json.dumps(info) + "\n")
