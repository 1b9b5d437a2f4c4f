"""One verdict for the plan: the app x board matrix and the gate policy's exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from hil.errors import NoHardwareError
from hil.gate.plan import FILTERED, Cell
from hil.gate.scheduler import FLAKY, NOT_RUN, PASSED_HARDWARE, CellResult
from hil.outcome import Outcome, OutcomeKind
from hil.ui import table


@dataclass(frozen=True)
class Policy:
    """The project file's ``[gate]``: boards that must pass on hardware, flaky allowed."""

    require_hardware: tuple[str, ...] = ()
    allow_flaky: bool = True


def matrix_rows(results: Sequence[CellResult]) -> tuple[list[str], list[list[str]]]:
    """Header (``app``, then each board) and one row per app; a filtered cell is ``-``, a
    board or app with only filtered cells is left out."""
    shown = [r for r in results if not r.cell.reason.startswith(FILTERED)]
    boards = sorted({r.cell.board.name for r in shown})
    apps = list(dict.fromkeys(r.cell.app.name for r in shown))
    text = {(r.cell.app.name, r.cell.board.name): _text(r) for r in results}
    rows = [[app, *(text.get((app, b), "") for b in boards)] for app in apps]
    return ["app", *boards], rows


def _text(result: CellResult) -> str:
    if not result.cell.runnable and result.cell.reason.startswith(FILTERED):
        return "-"
    return result.describe()


def print_matrix(results: Sequence[CellResult], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    headers, rows = matrix_rows(results)
    print("\nhil: the test plan's verdict (app x board):", file=out)
    table(headers, rows, out)
    if any("-" in row[1:] for row in rows):
        print("(-: filtered out by --app, --tag or --board)", file=out)


def cell_outcome(result: CellResult, policy: Policy) -> Outcome | None:
    """What a cell adds to the gate's exit code (None: nothing, it was filtered)."""
    cell: Cell = result.cell
    if result.status == NOT_RUN:
        if cell.reason.startswith(FILTERED):
            return None
        if cell.hardware_required:
            return Outcome.of_error(NoHardwareError(f"{cell.id}: {cell.reason}"))
        return Outcome(OutcomeKind.NOT_RUN)
    if result.status == FLAKY:
        return Outcome.passed() if policy.allow_flaky else Outcome(OutcomeKind.FLAKY)
    if result.outcome.ok and cell.board.name in policy.require_hardware and \
            result.status != PASSED_HARDWARE:
        return Outcome.of_error(NoHardwareError(f"{cell.id} passed, not on hardware"))
    return result.outcome


def gate_outcomes(results: Sequence[CellResult], policy: Policy) -> list[Outcome]:
    return [o for r in results if (o := cell_outcome(r, policy)) is not None]
