"""The verdict of a cell from its attempts, and the gate policy's exit code (no QEMU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil import junit
from hil.app import load_app
from hil.boards import load_board
from hil.cli._exit import exit_code_for
from hil.errors import ConsoleError, ExitCode
from hil.executors import Choice
from hil.gate.plan import Cell
from hil.gate.scheduler import CellResult
from hil.gate.verdict import Policy, gate_outcomes, matrix_rows
from hil.image import Image
from hil.outcome import Outcome
from hil.rack.inventory import RackEntry
from hil.testrun import BoardResult, Plan


@pytest.fixture
def cell(tmp_path: Path) -> Cell:
    d = tmp_path / "alpha"
    d.mkdir()
    (d / "main.c").write_text("int main(void) { return 0; }\n")
    (d / "app.yaml").write_text("name: alpha\n")
    entries = (RackEntry("f4-a", "nucleo-f4", "hilsim:va"),
               RackEntry("f4-b", "nucleo-f4", "hilsim:vb"))
    return Cell(load_app(d), load_board("nucleo-f4"), "unity", "virtual", entries)


def attempt(cell: Cell, outcome: Outcome, rack_id: str | None, kind: str = "qemu"):
    plan = Plan(cell.board, Image(Path("fw.hex")), Choice(kind, "test"), cell.harness,
                cell.app.name, None, Path("w"))
    return BoardResult(plan, junit.Suite("s"), outcome, kind=kind,
                       extra={"rack_id": rack_id})


def test_infrastructure_retry_then_pass_names_both_boards(cell):
    result = CellResult(cell, [attempt(cell, Outcome.of_error(ConsoleError("lost")), "f4-a"),
                               attempt(cell, Outcome.passed(), "f4-b")], infra_retries=1)
    assert result.status == "passed on a virtual board"
    assert result.describe() == \
        "passed after 1 infrastructure retry (f4-a -> f4-b), on a virtual board"
    assert exit_code_for(gate_outcomes([result], Policy())) == 0


def test_fail_then_pass_is_flaky_and_the_policy_decides(cell):
    result = CellResult(cell, [attempt(cell, Outcome.failed(), "f4-a"),
                               attempt(cell, Outcome.passed(), "f4-a")], reruns=1)
    assert result.status == "flaky"
    assert result.describe() == "flaky: failed 1 of 2 runs (f4-a -> f4-a)"
    assert exit_code_for(gate_outcomes([result], Policy(allow_flaky=True))) == 0
    assert exit_code_for(gate_outcomes([result], Policy(allow_flaky=False))) == \
        ExitCode.FLAKY


def test_a_failure_outranks_flaky_and_not_run(cell):
    flaky = CellResult(cell, [attempt(cell, Outcome.failed(), None),
                              attempt(cell, Outcome.passed(), None)], reruns=1)
    failed = CellResult(cell, [attempt(cell, Outcome.failed(), None)])
    not_run = CellResult(Cell(cell.app, cell.board, "unity",
                              reason="no board with fixture can"))
    assert not_run.describe() == "not run: no board with fixture can"
    assert exit_code_for(gate_outcomes([not_run], Policy())) == ExitCode.NOT_RUN
    assert exit_code_for(gate_outcomes([flaky, not_run], Policy(allow_flaky=False))) == \
        ExitCode.FLAKY
    assert exit_code_for(gate_outcomes([flaky, failed, not_run], Policy())) == \
        ExitCode.TEST_FAILED


def test_a_qemu_pass_on_a_board_the_gate_requires_on_hardware_fails_it(cell):
    passed = CellResult(Cell(cell.app, cell.board, "unity", "qemu"),
                        [attempt(cell, Outcome.passed(), None)])
    assert passed.status == "passed in QEMU only"
    assert exit_code_for(gate_outcomes([passed], Policy(("nucleo-f4",)))) == \
        ExitCode.NO_HARDWARE
    hw = CellResult(cell, [attempt(cell, Outcome.passed(), "f4-a", kind="hardware")])
    assert hw.status == "passed on hardware"
    assert exit_code_for(gate_outcomes([hw], Policy(("nucleo-f4",)))) == 0


def test_filtered_cells_are_left_out_of_the_matrix_and_the_code(cell):
    filtered = CellResult(Cell(cell.app, load_board("hifive1-revb"), "unity",
                               reason="filtered (--board)"))
    ran = CellResult(cell, [attempt(cell, Outcome.passed(), "f4-a")])
    assert matrix_rows([ran, filtered]) == \
        (["app", "nucleo-f4"], [["alpha", "passed on a virtual board"]])
    assert gate_outcomes([filtered], Policy()) == []


def _recovered(name: str, rack_id: str, step: str = "") -> junit.Case:
    return junit.Case(name, "tests.test_hang", properties={"hil.rack_id": rack_id},
                      recovered=step)


def test_a_recovered_pass_stays_a_pass_but_never_reads_as_a_clean_one(cell, tmp_path):
    first = attempt(cell, Outcome.of_error(ConsoleError("lost")), "f4-a")
    first.suite.cases = [_recovered("test_ping", "f4-a", "swd-reset")]
    last = attempt(cell, Outcome.passed(), "f4-b")
    last.suite.cases = [_recovered("test_ping", "f4-b", "power-cycle"),
                        _recovered("test_add", "f4-b", "power-cycle"),
                        _recovered("test_echo", "f4-b")]
    result = CellResult(cell, [first, last], infra_retries=1)
    assert result.status == "passed on a virtual board"
    assert exit_code_for(gate_outcomes([result], Policy())) == 0
    assert matrix_rows([result])[1] == [[
        "alpha", "passed after 1 infrastructure retry (f4-a -> f4-b), on a virtual board, "
        "recovered by swd-reset (f4-a), power-cycle (f4-b, 2 times)"]]
    assert last.verdict.endswith("not a hardware pass, recovered by power-cycle (f4-b, "
                                 "2 times)")
    clean = attempt(cell, Outcome.passed(), "f4-a")
    clean.suite.cases = [_recovered("test_echo", "f4-a")]
    assert CellResult(cell, [clean]).describe() == "passed on a virtual board"
    assert "recovered" not in clean.verdict


def test_the_report_shows_the_recovery_beside_the_verdict(cell, tmp_path):
    from hil import runreport

    ran = attempt(cell, Outcome.passed(), "f4-a")
    ran.suite.cases = [_recovered("test_ping", "f4-a", "power-cycle")]
    [shown] = runreport.cells_from_results([ran])
    assert (shown.verdict, shown.recovered) == \
        ("passed-virtual", "recovered by power-cycle (f4-a)")
    page = runreport.render([shown], base=tmp_path)
    assert 'data-recovered="recovered by power-cycle (f4-a)"' in page
    assert '<span class="v">passed on a virtual board</span><span class="recovered">, ' \
        'recovered by power-cycle (f4-a)</span>' in page
    assert "1 passed on a virtual board (1 with a board recovered" in page
