"""Runs the plan's cells: each image built once, cells in parallel (``jobs``), longest first,
an infrastructure failure retried on another matching board, a failed cell re-run.

Every attempt is kept (``CellResult.attempts``, one ``BoardResult`` each: its board, rack
entry, outcome and JUnit suite) for the verdict, the JUnit file and the report. A re-run
(``retry_failed``) of a pytest cell runs only the tests that failed (their node ids); a line
harness (unity, ztest, console) cannot pick single tests, so its cell runs whole again. Either
way each case is judged on its own (``merged_cases``): one that failed and then passed is
flaky, and so is its cell.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from hil import junit
from hil.errors import Cancelled, HilError
from hil.executors import Choice
from hil.gate.plan import HARDWARE, QEMU, VIRTUAL, Cell
from hil.image import Image
from hil.outcome import Outcome, OutcomeKind
from hil.testrun import BoardResult, Plan, recovery_words, run_board

# A cell's status in the verdict matrix
PASSED_HARDWARE = "passed on hardware"
PASSED_VIRTUAL = "passed on a virtual board"
PASSED_QEMU = "passed in QEMU only"
FAILED = "failed"
FLAKY = "flaky"
INFRASTRUCTURE = "infrastructure error"
ERROR = "error"
CANCELLED = "cancelled"
NOT_RUN = "not run"


@dataclass
class CellResult:
    """One cell of the plan after the run: every attempt, in order."""

    cell: Cell
    attempts: list[BoardResult] = field(default_factory=list)
    infra_retries: int = 0
    reruns: int = 0
    error: HilError | None = None  # the cell could not start (its build failed)

    @property
    def outcome(self) -> Outcome:
        if self.error is not None:
            return Outcome.of_error(self.error)
        if not self.attempts:
            return Outcome.passed()  # not run: the verdict's status says so
        return self.attempts[-1].outcome

    @property
    def flaky(self) -> bool:
        """Failed, then passed on a re-run."""
        return self.outcome.ok and any(a.outcome.kind == OutcomeKind.FAILED
                                       for a in self.attempts)

    @property
    def status(self) -> str:
        if not self.cell.runnable:
            return NOT_RUN
        kind = self.outcome.kind
        if kind == OutcomeKind.PASSED:
            if self.flaky:
                return FLAKY
            last = self.attempts[-1]
            if last.kind == "hardware":
                return PASSED_HARDWARE
            return PASSED_VIRTUAL if last.extra.get("rack_id") else PASSED_QEMU
        return {OutcomeKind.FAILED: FAILED, OutcomeKind.INFRASTRUCTURE: INFRASTRUCTURE,
                OutcomeKind.CANCELLED: CANCELLED}.get(kind, ERROR)

    @property
    def recoveries(self) -> list[tuple[str, str]]:
        """``(rack_id, step)`` of every test of every attempt whose board the recovery
        ladder brought back (hil.testrun.BoardResult.recoveries)."""
        return [r for a in self.attempts for r in a.recoveries]

    @property
    def boards(self) -> list[str]:
        """Where each attempt ran: its rack entry, else ``qemu``."""
        return [a.extra.get("rack_id") or "qemu" for a in self.attempts]

    def describe(self) -> str:
        """The matrix cell in words: ``passed after 1 infrastructure retry (f4-a -> f4-b)``,
        ``passed on a virtual board, recovered by power-cycle (f4-a)``."""
        status = self.status
        if status == NOT_RUN:
            return f"not run: {self.cell.reason}"
        if status == ERROR and self.error is not None:
            return f"error: {str(self.error).splitlines()[0]}"
        if status == FLAKY:
            fails = sum(1 for a in self.attempts if a.outcome.kind == OutcomeKind.FAILED)
            text = f"flaky: failed {fails} of {len(self.attempts)} runs"
        elif status.startswith("passed") and self.infra_retries:
            text = "passed"
        else:
            text = status
        if self.infra_retries:
            word = "retry" if self.infra_retries == 1 else "retries"
            text += f" after {self.infra_retries} infrastructure {word}"
        if self.reruns and status != FLAKY:
            text += f" after {self.reruns} re-run{'s' if self.reruns > 1 else ''}"
        if len(self.attempts) > 1:
            text += f" ({' -> '.join(self.boards)})"
        if status.startswith("passed") and self.infra_retries:
            text += ", " + status.removeprefix("passed ")
        # a pass stays a pass (the firmware passed), but never reads as a clean one
        note = recovery_words(self.recoveries)
        return f"{text}, {note}" if note else text


def retry_choice(cell: Cell, choice: Choice, failed: set[str]) -> Choice:
    """The choice for the next attempt: the cell's rack entries without those that failed
    (all of them again when every one failed)."""
    if not cell.entries:
        return choice
    left = tuple(e for e in cell.entries if e.id not in failed) or cell.entries
    return replace(choice, entries=left, entry=left[0] if choice.kind == HARDWARE else None)


def first_choice(cell: Cell) -> Choice:
    """Where the plan put the cell, as the executor choice of its first attempt."""
    if cell.kind == HARDWARE:
        return Choice("hardware", f"rack entries {', '.join(e.id for e in cell.entries)} "
                      "present (one is leased per run)", cell.entries[0], entries=cell.entries)
    if cell.kind == VIRTUAL:
        return Choice("qemu", "no matching hardware present", entries=cell.entries)
    assert cell.kind == QEMU
    return Choice("qemu", "no matching hardware or virtual board")


@dataclass(frozen=True)
class Limits:
    jobs: int = 2
    infra_retries: int = 2
    retry_failed: int = 0


def run_cells(cells: Sequence[Cell], build: Callable[[Cell], Image],
              plan_for: Callable[[Cell, Image, Choice, int], Plan], limits: Limits,
              weights: Mapping[str, float] | None = None) -> list[CellResult]:
    """Build every runnable cell's image (once each), run the cells longest first over
    ``limits.jobs`` workers, and return a result per cell in the plan's order."""
    results = {c.id: CellResult(c) for c in cells}
    images: dict[str, Image] = {}
    for cell in cells:
        if not cell.runnable:
            continue
        try:
            images[cell.id] = build(cell)
        except HilError as exc:
            results[cell.id].error = exc
    weights = weights or {}
    todo = sorted((c for c in cells if c.id in images),
                  key=lambda c: (-weights.get(c.id, 0.0), c.id))
    if len(todo) == 1 or limits.jobs == 1:
        for cell in todo:
            _run_cell(results[cell.id], images[cell.id], plan_for, limits)
    else:
        with ThreadPoolExecutor(max_workers=max(1, limits.jobs)) as pool:
            futures = [pool.submit(_run_cell, results[c.id], images[c.id], plan_for, limits)
                       for c in todo]
            try:
                wait(futures)
            except Cancelled:
                pass  # every child was told to stop: each run comes back cancelled
            for f in futures:
                f.result()
    return [results[c.id] for c in cells]


def _run_cell(result: CellResult, image: Image,
              plan_for: Callable[[Cell, Image, Choice, int], Plan], limits: Limits) -> None:
    cell = result.cell
    choice = first_choice(cell)
    failed: set[str] = set()
    cell_run = uuid.uuid4().hex[:16]  # the audit records of this cell run's attempts share it
    retry: str | None = None
    select: tuple[str, ...] = ()  # a re-run's tests (pytest node ids); empty: all
    while True:
        number = len(result.attempts) + 1
        plan = replace(plan_for(cell, image, choice, number), attempt=number, retry=retry,
                       cell_run=cell_run, select=select)
        attempt = run_board(plan)
        attempt.suite.properties["hil.attempt"] = str(len(result.attempts) + 1)
        result.attempts.append(attempt)
        kind = attempt.outcome.kind
        if kind == OutcomeKind.INFRASTRUCTURE and result.infra_retries < limits.infra_retries:
            failed.add(attempt.extra.get("rack_id") or "")
            choice = retry_choice(cell, choice, failed)
            result.infra_retries += 1
            retry = "infrastructure"
            where = ", ".join(e.id for e in choice.entries) or "QEMU"
            print(f"hil: {cell.id}: infrastructure failure ({attempt.error.splitlines()[0]}"
                  f"); retrying on {where}" if attempt.error else
                  f"hil: {cell.id}: infrastructure failure; retrying on {where}",
                  file=sys.stderr, flush=True)
            continue
        if kind == OutcomeKind.FAILED and result.reruns < limits.retry_failed:
            result.reruns += 1
            retry = "rerun"
            select = rerun_selection(attempt)
            what = (f"the {len(select)} failed test{'s' if len(select) > 1 else ''}"
                    if select else "the whole suite")
            print(f"hil: {cell.id}: failed; re-running {what} ({result.reruns} of "
                  f"{limits.retry_failed})", file=sys.stderr, flush=True)
            continue
        return


def merged(result: CellResult) -> BoardResult:
    """The cell as one board run: its last attempt, holding every case of its test attempts
    (a re-run of the failed tests holds only those), each with its last result and its
    earlier failures, and on which board, as reruns: a case that failed, then passed is
    flaky (``junit.Case.flaky``). Attempts that ended in an infrastructure failure are left
    out (the JUnit file keeps them as suites of their own)."""
    last = result.attempts[-1]
    runs = [a for a in result.attempts[:-1]
            if a.outcome.kind != OutcomeKind.INFRASTRUCTURE] + [last]
    history: dict[tuple[str, str], list[tuple[BoardResult, junit.Case]]] = {}
    for run in runs:
        for case in run.suite.cases:
            history.setdefault((case.classname, case.name), []).append((run, case))
    cases = []
    for entries in history.values():
        run, case = entries[-1]
        props = dict(case.properties)
        if run is not last and not any(props.get(k) for k in junit.PLACEMENT):
            props.update({k: v for k, v in run.suite.properties.items()
                          if k in junit.PLACEMENT and v and "," not in v})
        cases.append(replace(case, properties=props, reruns=[
            junit.Attempt(status=old.status, message=old.message, text=old.text,
                          seconds=old.seconds, board=earlier.plan.board.name,
                          rack_id=old.properties.get("hil.rack_id")
                          or earlier.extra.get("rack_id"),
                          executor=earlier.kind or earlier.plan.choice.kind,
                          output=old.output)
            for earlier, old in entries[:-1] if old.status in ("failed", "error")]))
    suite = junit.Suite(last.suite.name, cases, dict(last.suite.properties),
                        sum(r.suite.seconds for r in runs), runs[0].suite.timestamp)
    counts = {status: suite.count(status) for status in ("passed", "failed", "error",
                                                          "skipped")}
    return replace(last, suite=suite, outcome=last.outcome.with_counts(counts))


def flaky_cases(result: CellResult) -> list[junit.Case]:
    """The cell's cases that failed, then passed."""
    return [c for c in merged(result).suite.cases if c.flaky] if result.attempts else []


def rerun_selection(attempt: BoardResult) -> tuple[str, ...]:
    """What a re-run after ``attempt`` runs: the node ids of its failed pytest tests; empty
    (the whole suite) for a line harness, or when a module failed to collect."""
    if attempt.plan.harness != "pytest" or attempt.collect_failed:
        return ()
    return attempt.failed_ids


def work_dir(root: Path, cell: Cell, attempt: int) -> Path:
    """``<run>/<board>/<app>`` for the first attempt, ``.../attempt-N`` after it."""
    base = root / cell.board.name / cell.app.name
    return base if attempt == 1 else base / f"attempt-{attempt}"
