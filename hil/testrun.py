"""Test runs: one board, one image, one harness (pytest suite or a line harness) -> a verdict.

``run_board(plan)`` runs one board (the pytest harness in a ``python -m pytest`` subprocess
with the hil plugin, so several boards run in parallel and a crash of one run cannot take
another down; line harnesses such as unity, ztest and console in-process, see
hil.harnesses) and returns a ``BoardResult`` with the JUnit suite
and the run's ``Outcome`` (passed, failed, error, infrastructure, cancelled; hil.cli turns
outcomes into the exit code).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hil import junit, procs
from hil.boards import Board
from hil.errors import Cancelled, HilError, InfrastructureError, UsageError
from hil.executors import Choice, make_executor
from hil.image import Image
from hil.outcome import ErrorRecord, Outcome, OutcomeKind
from hil.settings import current

if TYPE_CHECKING:  # the line harnesses (and their console) load only when one runs
    from hil.debug.session import DebugOnFailure
    from hil.harnesses.base import Harness, HarnessConfig

# pytest's own exit codes
PYTEST_OK, PYTEST_FAILED, PYTEST_INTERRUPTED, PYTEST_INTERNAL, PYTEST_USAGE, PYTEST_NO_TESTS = \
    range(6)


@dataclass
class Plan:
    """Everything one board run needs, as typed values."""

    board: Board
    image: Image
    choice: Choice
    harness: str  # "pytest" or a line harness of the hil.harness entry points
    app: str
    suite: Path | None
    work_dir: Path
    on: str = "auto"
    require_hardware: bool = False
    timeout: float = 10.0
    workers: int | None = None
    stream: bool = True  # pytest output to the terminal (one board) or to a log (several)
    extra_pytest_args: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()  # console harness patterns
    ordered: bool = False
    expect_source: str = "--expect"  # where the patterns came from (file: key, or option)
    rack_entries: tuple[str, ...] = ()  # the rack entries to lease one of (the test plan's)
    # the test plan's attempt of a cell: its number, why it was run again ("rerun" after a
    # test failure, "infrastructure" after an infrastructure failure) and the cell run's id
    attempt: int = 1
    retry: str | None = None
    cell_run: str | None = None
    # pytest: only these node ids (a re-run of the failed tests); empty: the whole suite
    select: tuple[str, ...] = ()
    debug: DebugOnFailure | None = None  # --debug-on-failure: keep a crashed board for gdb


@dataclass
class BoardResult:
    plan: Plan
    suite: junit.Suite
    outcome: Outcome = field(default_factory=Outcome.passed)
    error: str = ""  # in words, for the summary (the outcome's error, where the log is, ...)
    executor: str = ""  # description: "QEMU (netduinoplus2)", "hardware f4-a (...)"
    kind: str = ""
    log: Path | None = None
    seconds: float = 0.0
    started: float = 0.0  # wall clock (seconds since the epoch) when the run began
    extra: dict[str, str | None] = field(default_factory=dict)  # rack_id, probe
    cancelled: Cancelled | None = None  # the signal that cancelled the run
    # pytest: node ids of the tests that failed (what a re-run selects), and whether a
    # module failed to collect (then only the whole suite can run again)
    failed_ids: tuple[str, ...] = ()
    collect_failed: bool = False
    # ``(rack_id, step)`` of each board whose failed start the recovery ladder fixed
    start_recoveries: list[tuple[str, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return self.suite.count(status)

    @property
    def recoveries(self) -> list[tuple[str, str]]:
        """``(rack_id, step)`` for each board the recovery ladder brought back: a failed
        start (``step`` ends ``at start``), then each test whose board hung, in order."""
        default = self.extra.get("rack_id") or self.plan.board.name
        return [(rack_id, f"{step} at start") for rack_id, step in self.start_recoveries] + \
            [(c.properties.get("hil.rack_id") or default, c.recovered)
             for c in self.suite.cases if c.recovered]

    @property
    def verdict(self) -> str:
        """In words, saying when a pass did not come from hardware, and when a board had
        to be recovered during the run (``recovered by power-cycle (f4-a)``)."""
        note = recovery_words(self.recoveries)
        return f"{self.verdict_text}, {note}" if note else self.verdict_text

    @property
    def verdict_text(self) -> str:
        """The verdict in words without the recoveries."""
        if self.outcome.kind == OutcomeKind.PASSED:
            if self.kind == "qemu":
                return f"PASSED in {self.executor} - not a hardware pass"
            return f"PASSED on {self.executor}"
        if self.outcome.kind == OutcomeKind.FAILED:
            return f"FAILED on {self.executor}" if self.kind == "hardware" else \
                f"FAILED in {self.executor}"
        return f"ERROR: {self.error.splitlines()[0] if self.error else 'see log'}"


def recovery_words(recoveries: list[tuple[str, str]]) -> str:
    """``recovered by power-cycle (f4-a)``: each ladder step that brought a board back, and
    which (with how often, when more than once); "" for none."""
    counts: dict[tuple[str, str], int] = {}
    for rack_id, step in recoveries:
        counts[(rack_id, step)] = counts.get((rack_id, step), 0) + 1
    if not counts:
        return ""
    return "recovered by " + ", ".join(
        f"{step} ({rack_id}{f', {n} times' if n > 1 else ''})"
        for (rack_id, step), n in counts.items())


def _properties(plan: Plan, kind: str, extra: dict[str, str | None]) -> dict[str, str]:
    return junit.suite_properties(
        board=plan.board.name, executor=kind, image_sha256=plan.image.sha256,
        toolchain=plan.image.toolchain, app=plan.app, harness=plan.harness,
        rack_id=extra.get("rack_id"), probe=extra.get("probe"))  # type: ignore[arg-type]


def run_board(plan: Plan) -> BoardResult:
    """Run one board; never raises HilError nor Cancelled (they become the result's error and
    outcome; a cancelled run gets a ``cancelled`` error case after what finished)."""
    t0, started = time.monotonic(), time.time()
    plan.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        if plan.harness == "pytest":
            result = _run_pytest(plan)
        else:
            result = _run_lines(plan)
    except HilError as exc:
        result = BoardResult(plan, junit.Suite(f"{plan.board.name}/{plan.app}"),
                             Outcome.of_error(exc), str(exc), kind=plan.choice.kind)
    except Cancelled as exc:
        result = BoardResult(plan, junit.Suite(f"{plan.board.name}/{plan.app}"),
                             kind=plan.choice.kind, cancelled=exc)
    signum = procs.cancel_signal()
    if result.cancelled is None and signum is not None:  # a worker thread's run
        result.cancelled = Cancelled(signum)
    if result.cancelled is not None:
        mark_cancelled(result, result.cancelled)
    result.seconds = time.monotonic() - t0
    result.started = started
    result.suite.seconds = result.seconds
    result.outcome = result.outcome.with_counts(
        {status: result.count(status) for status in ("passed", "failed", "error", "skipped")})
    if not result.suite.properties:
        result.suite.properties = _properties(plan, result.kind or plan.choice.kind,
                                              result.extra)
    _audit(result)
    return result


def mark_cancelled(result: BoardResult, cancel: Cancelled) -> None:
    """Say in the verdict that the run was cancelled: an error case after what finished."""
    result.cancelled = cancel
    result.outcome = Outcome.cancelled(cancel.signum)
    result.error = f"run {cancel} (tests after the last finished one did not run)"
    plan = result.plan
    result.suite.cases.append(junit.Case(
        "cancelled", f"{plan.board.name}.{plan.app}", "error", message=f"run {cancel}",
        text=f"hil test was {cancel} while the run was in progress; results above are the "
        "tests that finished"))


def _audit(result: BoardResult) -> None:
    """Record the verdict against the image's hash in the audit trail: one test record per
    rack entry that ran cases (pytest-xdist workers may lease different entries), so each
    entry's history shows exactly what ran on it."""
    plan = result.plan
    if not plan.image.sha256 or not result.suite.cases:
        return  # nothing ran: no verdict to record
    from hil import audit

    try:
        for rack_id, cases, outcome in _per_rack_entry(result):
            audit.record_test(
                image_sha256=plan.image.sha256, board=plan.board.name,
                rack_id=rack_id, executor=result.kind or plan.choice.kind,
                passed=_count(cases, "passed"), failed=_count(cases, "failed"),
                skipped=_count(cases, "skipped"), errors=_count(cases, "error"),
                junit=None, toolchain=plan.image.toolchain,
                cancelled=result.cancelled.signal_name if result.cancelled else None,
                app=plan.app, seconds=result.seconds, outcome=outcome,
                attempt=plan.attempt, retry=plan.retry, cell_run=plan.cell_run,
                cases=_case_outcomes(result, cases), work_dir=plan.work_dir)
    except HilError as exc:  # the verdict stands; say that it was not recorded
        result.error = (result.error + "; " if result.error else "") + \
            f"verdict not recorded in the audit trail: {exc}"


def _is_cancel_marker(result: BoardResult, case: junit.Case) -> bool:
    """The error case ``mark_cancelled`` adds (not a test)."""
    return result.cancelled is not None and case.name == "cancelled" and \
        case.message.startswith("run ")


def _count(cases: list[junit.Case], status: str) -> int:
    return sum(1 for c in cases if c.status == status)


def _per_rack_entry(result: BoardResult) -> list[tuple[str | None, list[junit.Case], str]]:
    """``(rack_id, cases, outcome)`` per rack entry that ran cases: the whole run when it ran
    on one entry (or none); else one per entry its cases name (``hil.rack_id``), plus one
    without a rack id for cases that name none. A part's outcome is the run's when it holds
    a failure or error, else passed."""
    run_outcome = str(result.outcome.kind)
    rack_id = result.extra.get("rack_id")
    if not rack_id or "," not in rack_id:
        return [(rack_id, result.suite.cases, run_outcome)]
    parts: dict[str | None, list[junit.Case]] = {}
    for case in result.suite.cases:
        if _is_cancel_marker(result, case):
            continue  # (every part's record says the run was cancelled)
        parts.setdefault(case.properties.get("hil.rack_id") or None, []).append(case)
    return [(entry, cases, run_outcome if any(c.status in ("failed", "error") for c in cases)
             else "passed") for entry, cases in parts.items()]


def case_id(case: junit.Case, board: str, harness: str) -> str:
    """A test case as one name, the same on every board: ``classname::name`` (pytest:
    ``apps.echo.tests.test_echo.TestReply::test_once``; a line harness's classname starts
    with the board, which is left out: ``sums.main::test_product``). Two tests of one name
    in different modules or classes stay two."""
    classname = case.classname
    if harness != "pytest" and (classname == board or classname.startswith(board + ".")):
        classname = classname[len(board) + 1:]
    return f"{classname}::{case.name}" if classname else case.name


def _case_outcomes(result: BoardResult, cases: list[junit.Case]) -> list[list[str]]:
    """Each case as ``[case_id, status]`` (``[case_id, status, rack_id]`` when the case says
    where it ran); the marker case of a cancelled run is left out."""
    out = []
    plan = result.plan
    for case in cases:
        if _is_cancel_marker(result, case):
            continue
        item = [case_id(case, plan.board.name, plan.harness), case.status]
        rack_id = case.properties.get("hil.rack_id")
        if rack_id:
            item.append(rack_id)
        out.append(item)
    return out


# ---------------------------------------------------------------- pytest harness

def pytest_command(plan: Plan, junit_path: Path, info_path: Path) -> list[str]:
    """The pytest child's command line. Installed plugins are not auto-loaded (the child's
    environment says so, ``pytest_env``): hil's plugin, pytest-xdist with ``-n`` and the
    project's ``[test] pytest_plugins`` are named. Option values are given as
    ``--option=value``, so pytest's rootdir is found from the suite alone, not from paths
    of the image or the state directory."""
    args = [sys.executable, "-m", "pytest", str(plan.suite), "-p", "hil.pytest_plugin",
            "-p", "no:cacheprovider",
            f"--hil-board={plan.board.name}", f"--hil-image={plan.image.hex}",
            f"--hil-on={plan.on}", f"--hil-timeout={plan.timeout:g}",
            f"--hil-work-dir={plan.work_dir / 'transcripts'}",
            f"--hil-run-info={info_path}", f"--junitxml={junit_path}",
            # its own temp root: no pruning of other runs' /tmp/pytest-of-* dirs at exit,
            # which made a cancelled run linger for seconds
            f"--basetemp={plan.work_dir / 'pytest-tmp'}",
            "-o", f"junit_suite_name={plan.board.name}", "-q", "-rfEs"]
    for plugin in current().test_pytest_plugins:
        args += ["-p", plugin]
    if plan.image.elf is not None:
        args.append(f"--hil-elf={plan.image.elf}")
    if plan.require_hardware:
        args.append("--hil-require-hardware")
    if plan.rack_entries:
        args.append(f"--hil-rack-entries={','.join(plan.rack_entries)}")
    if plan.select:
        select = plan.work_dir / "pytest-select.txt"
        select.write_text("".join(f"{node}\n" for node in plan.select), encoding="utf-8")
        args.append(f"--hil-select={select}")
    if plan.workers:
        args += ["-p", "xdist.plugin", "-n", str(plan.workers)]
    if plan.debug is not None:
        from hil.debug.session import stdin_is_terminal

        args.append("--hil-debug-on-failure")
        if plan.debug.wait is not None:
            args += ["--hil-debug-wait", f"{plan.debug.wait:g}"]
        elif stdin_is_terminal():  # pytest's capture hides the terminal from the plugin
            args.append("--hil-debug-terminal")
    return args + list(plan.extra_pytest_args)


def pytest_env() -> dict[str, str]:
    """The pytest child's environment: the settings' (``Settings.child_env``), without
    auto-loading every installed pytest plugin."""
    env = current().child_env()
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def _run_pytest(plan: Plan) -> BoardResult:
    assert plan.suite is not None
    junit_path = plan.work_dir / "pytest-junit.xml"
    info_path = plan.work_dir / "run-info.jsonl"
    log = plan.work_dir / "pytest.log"
    for p in (junit_path, info_path):
        p.unlink(missing_ok=True)
    cmd = pytest_command(plan, junit_path, info_path)
    env = pytest_env()
    cancelled = None
    try:  # a cancel stops pytest gracefully: it writes its JUnit file and releases its lease
        if plan.stream:
            log_path = None
            rc = procs.call(cmd, env=env)
        else:
            log_path = log
            # --debug-on-failure: the gdb command (on stderr) must reach the terminal
            with open(log, "wb") as fh:
                rc = procs.call(cmd, env=env, stdout=fh,
                                stderr=None if plan.debug else subprocess.STDOUT)
    except Cancelled as exc:
        cancelled, rc = exc, PYTEST_INTERRUPTED
    infos = []
    if info_path.exists():
        infos = [json.loads(line) for line in info_path.read_text().splitlines() if line]
    info = next((i for i in infos if i.get("description")), infos[0] if infos else {})
    # errors that were not test failures (flash, lease, console, emulator, config ...)
    errors = [e for i in infos for e in i.get("errors", []) if isinstance(e, dict)]
    cases = _read_cases(junit_path)
    suite = junit.Suite(f"{plan.board.name}/{plan.app}", cases)
    kind = info.get("kind") or plan.choice.kind
    result = BoardResult(plan, suite, kind=kind, log=log_path,
                         executor=info.get("description") or _describe(plan),
                         extra={"rack_id": _merged(infos, "rack_id"),
                                "probe": _merged(infos, "probe")}, cancelled=cancelled)
    result.failed_ids = tuple(dict.fromkeys(
        str(node) for i in infos for node in i.get("failed") or ()))
    result.collect_failed = any(i.get("collect_failed") for i in infos)
    result.start_recoveries = [(str(r[0]), str(r[1])) for i in infos
                               for r in i.get("recovered_at_start") or ()
                               if isinstance(r, list) and len(r) == 2]
    ids = (result.extra["rack_id"] or "").split(",")
    if len(ids) > 1:  # workers leased different rack entries
        machine = f", QEMU {plan.board.qemu.machine}" if kind == "qemu" and plan.board.qemu \
            else ""
        word = "virtual boards" if kind == "qemu" else "hardware"
        result.executor = f"{word} {', '.join(ids)}{machine}"
    where = f" (log: {log_path})" if log_path else ""
    if info.get("error"):  # the run could not start (no hardware, bad rack file, ...)
        record = ErrorRecord.from_dict(info["error"])
        result.outcome = Outcome.of_error(record)
        result.error = record.message
    elif rc == PYTEST_OK:
        result.outcome = Outcome.passed()
    elif rc == PYTEST_FAILED:
        if errors:
            # the first error decides: a flash failure, a lease timeout, a lost console ...
            first = errors[0]
            record = ErrorRecord.from_dict(first)
            result.outcome = Outcome.of_error(record)
            text = f"{first.get('test')}: {record.message}".splitlines()[0]
            result.error = f"infrastructure failure: {text}" + (
                f" (+{len(errors) - 1} more)" if len(errors) > 1 else "") + where
        else:
            result.outcome = Outcome.failed()
    elif rc == PYTEST_NO_TESTS:
        result.error = f"no tests collected in {plan.suite}{where}"
        result.outcome = Outcome.of_error(UsageError(result.error))
    elif rc == PYTEST_USAGE:
        result.error = f"pytest usage error{where}"
        result.outcome = Outcome.of_error(UsageError(result.error))
    elif rc == PYTEST_INTERRUPTED:  # (when hil itself was cancelled, run_board says so)
        result.error = f"interrupted{where}"
        result.outcome = Outcome.cancelled(signal.SIGINT)
    else:
        result.error = f"pytest internal error (exit {rc}){where}"
        result.outcome = Outcome.of_error(InfrastructureError(result.error))
    if result.outcome.kind == OutcomeKind.PASSED and not cases:
        result.error = f"no test results from {plan.suite}{where}"
        result.outcome = Outcome.of_error(UsageError(result.error))
    return result


def _read_cases(junit_path: Path) -> list[junit.Case]:
    """pytest's JUnit cases; none when it wrote no (or, killed, only part of a) file."""
    import xml.etree.ElementTree as ET

    try:
        return junit.read_pytest(junit_path) if junit_path.exists() else []
    except ET.ParseError:
        return []


def _merged(infos: list[dict], key: str) -> str | None:
    """The values every worker reported (each may have leased another rack entry)."""
    values = sorted({v for i in infos for v in (i.get(key) or "").split(",") if v})
    return ",".join(values) or None


def _describe(plan: Plan) -> str:
    if plan.choice.kind == "qemu" and plan.board.qemu:
        return f"QEMU ({plan.board.qemu.machine})"
    entry = plan.choice.entry
    return f"hardware {entry.id}" if entry is not None else "hardware"


# ---------------------------------------------------------------- line harnesses

def harness_config(plan: Plan) -> HarnessConfig:
    from hil.harnesses.base import HarnessConfig

    return HarnessConfig(board=plan.board.name, app=plan.app, timeout=plan.timeout,
                         expect=plan.expect, ordered=plan.ordered,
                         expect_source=plan.expect_source, elf=plan.image.elf)


def make_harness(name: str, config: HarnessConfig) -> Harness:
    """The line harness registered as ``name`` in the ``hil.harness`` entry points (no I/O;
    raises UsageError for an unknown harness or a config it cannot use)."""
    from hil import harnesses
    from hil.harnesses.base import Harness

    harness = harnesses.factory(name)(config)
    if not isinstance(harness, Harness):
        raise UsageError(f"harness '{name}' does not implement the harness interface "
                         "(name, run_timeout, feed, done, finish)",
                         hint="see hil/harnesses/base.py")
    return harness


def _debug_mode(plan: Plan) -> str | None:
    """--debug-on-failure: every board starts reachable from gdb, running."""
    from hil.debug import LISTEN

    return LISTEN if plan.debug is not None else None


def _run_lines(plan: Plan) -> BoardResult:
    """A line harness (unity, ztest, console, a team's own) over the board's console."""
    from hil.harnesses.base import run

    config = harness_config(plan)
    harness = make_harness(plan.harness, config)
    name = f"{plan.board.name}/{plan.app}"
    executor = make_executor(plan.board, plan.choice, work_dir=plan.work_dir / plan.harness,
                             timeout=plan.timeout, debug=_debug_mode(plan))
    entry = plan.choice.entry
    result = BoardResult(plan, junit.Suite(name), kind=executor.kind,
                         executor=executor.description,
                         extra={"rack_id": entry.id if entry else None,
                                "probe": str(entry.probe) if entry else None})
    with executor:
        try:
            console = executor.start(plan.image)
        except HilError as exc:
            if executor.entry is None:
                raise
            # a leased rack entry failed to start: the verdict names it (retries skip it)
            result.extra = {"rack_id": executor.entry.id, "probe": str(executor.entry.probe)}
            result.outcome, result.error = Outcome.of_error(exc), str(exc)
            return result
        if executor.entry is not None:  # a leased rack entry: the verdict names it
            result.extra = {"rack_id": executor.entry.id, "probe": str(executor.entry.probe)}
            result.executor = executor.description
            step = getattr(executor, "recovered_at_start", None)  # (a leased executor's)
            if step:
                result.start_recoveries = [(executor.entry.id, step)]
        outcome = run(console, harness, config)
        if plan.debug is not None and outcome.stop is not None:
            from hil.debug.session import keep_for_debugger

            try:
                keep_for_debugger(executor, outcome.stop, plan.debug)
            except Cancelled as exc:  # Ctrl-C ended the wait: the run, with what it found
                result.cancelled = exc
    result.suite.cases = [junit.Case(c.name, c.classname, c.status, c.seconds or 0.0,
                                     c.message, c.text, "\n".join(c.output))
                          for c in outcome.cases]
    if outcome.stop is not None:
        result.outcome = Outcome.failed(outcome.stop)
    elif any(c.status in ("failed", "error") for c in outcome.cases):
        result.outcome = Outcome.failed()
    elif not outcome.cases:
        result.error = f"the image ended its {plan.harness} run but printed no test results"
        result.outcome = Outcome.of_error(UsageError(result.error))
    return result
