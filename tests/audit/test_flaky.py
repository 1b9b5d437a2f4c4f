"""``hil audit flaky``: flake rates per test case and board, from the attempts of cell runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hil import audit
from hil.cli import main
from hil.errors import AuditError

SHA = "ab" * 32


def attempt(cell_run: str, number: int, rack_id: str, cases: list[list[str]], *,
            outcome: str = "passed", retry: str | None = None, app: str = "shell") -> None:
    audit.record_test(image_sha256=SHA, board="nucleo-f4", rack_id=rack_id,
                      executor="hardware", passed=sum(c[1] == "passed" for c in cases),
                      failed=sum(c[1] == "failed" for c in cases), skipped=0, junit=None,
                      toolchain="gcc", app=app, seconds=1.0, outcome=outcome,
                      attempt=number, retry=retry, cell_run=cell_run, cases=cases)


def fail_then_pass(cell_run: str, first: str, second: str, case: str) -> None:
    attempt(cell_run, 1, first, [[case, "failed"], ["test_boot", "passed"]], outcome="failed")
    attempt(cell_run, 2, second, [[case, "passed"], ["test_boot", "passed"]], retry="rerun")


@pytest.fixture
def history(state: Path) -> None:
    """test_echo flaky on f4-a and f4-c (the test); test_uart flaky only on f4-b (the board),
    passing on f4-a and f4-c; an infrastructure failure that is nobody's flake."""
    fail_then_pass("run1", "f4-a", "f4-a", "test_echo")
    fail_then_pass("run2", "f4-c", "f4-c", "test_echo")
    fail_then_pass("run3", "f4-b", "f4-a", "test_uart")
    fail_then_pass("run4", "f4-b", "f4-b", "test_uart")
    attempt("run5", 1, "f4-a", [["test_uart", "passed"], ["test_echo", "passed"]])
    attempt("run6", 1, "f4-c", [["test_uart", "passed"]])
    attempt("run7", 1, "f4-c", [["test_uart", "error"]], outcome="infrastructure")
    attempt("run7", 2, "f4-a", [["test_uart", "passed"]], retry="infrastructure")
    # an older record, without the fields: still readable, left out
    audit.record_test(image_sha256=SHA, board="nucleo-f4", rack_id="f4-a",
                      executor="hardware", passed=1, failed=0, skipped=0, junit=None,
                      toolchain="gcc")


def flaky_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()
    assert main(["audit", "flaky", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_test_flaky_everywhere_and_one_flaky_only_on_a_board(history, capsys):
    data = flaky_json(capsys)
    assert data["records_without_cases"] == 1
    tests = {t["case"]: t for t in data["tests"]}
    echo, uart = tests["test_echo"], tests["test_uart"]
    assert echo["diagnosis"] == "flaky on every board it ran on: a flaky test"
    assert {b["board"]: (b["runs"], b["failures"], b["flaky"]) for b in echo["boards"]} == {
        "f4-a": (3, 1, 1), "f4-c": (2, 1, 1)}
    assert uart["diagnosis"] == "flaky only on f4-b: look at the board"
    # the infrastructure attempt on f4-c is not a failure of the test
    assert {b["board"]: (b["runs"], b["failures"], b["flaky"]) for b in uart["boards"]} == {
        "f4-a": (3, 0, 0), "f4-b": (3, 2, 2), "f4-c": (1, 0, 0)}
    assert (uart["runs"], uart["failures"], uart["flaky"]) == (7, 2, 2)
    assert tests["test_boot"]["diagnosis"] == "passed every run"
    assert main(["audit", "flaky"]) == 0
    out = capsys.readouterr().out
    assert "shell: test_uart  (flaky only on f4-b: look at the board)" in out
    assert "test_boot" not in out  # never failed: counted, not listed


def test_since_leaves_older_runs_out(history, capsys):
    assert flaky_json(capsys, "--since", "2999-01-01")["tests"] == []


def test_a_failure_never_followed_by_a_pass_is_not_flaky(state, capsys):
    attempt("r", 1, "f4-a", [["test_x", "failed"]], outcome="failed")
    attempt("r", 2, "f4-a", [["test_x", "failed"]], outcome="failed", retry="rerun")
    attempt("s", 1, "f4-a", [["test_x", "passed"]])  # another cell run: not a re-run
    (test,) = flaky_json(capsys)["tests"]
    assert (test["runs"], test["failures"], test["flaky"]) == (3, 2, 0)
    assert test["diagnosis"].endswith("not flaky")


def test_an_unknown_retry_reason_is_refused(state):
    with pytest.raises(AuditError, match="retry"):
        attempt("r", 2, "f4-a", [], retry="again")
