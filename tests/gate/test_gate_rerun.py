"""--retry-failed re-runs only the failed tests of a pytest cell (a line harness cell runs
whole again) and judges each case on its own: JUnit Surefire elements, audit attempts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gatesupport import console_app, unity_failing_app
from junit_rules import assert_valid
from test_gate_cli import matrix

from hil.audit.store import open_store
from hil.cli import main

pytestmark = pytest.mark.slow
MODULE = "apps.echo.tests.test_echo"  # pytest's classname: the module below the project root

SUITE = """
from pathlib import Path

RUNS = Path({runs!r})


def _count(name):
    with open(RUNS, "a") as fh:
        fh.write(name + "\\n")


def test_stable(dut):
    _count("stable")


class TestReply:
    def test_once_lost(self, dut):
        _count("once")
        if RUNS.read_text().count("once") == 1:
            raise AssertionError("the reply was lost")

    def test_always_lost(self, dut):
        _count("always")
        {always}
"""


def _pytest_app(root: Path, runs: Path, always_fails: bool) -> None:
    d = console_app(root, "echo")
    (d / "app.yaml").write_text("name: echo\n")
    (d / "tests").mkdir()
    body = "raise AssertionError('never answers')" if always_fails else "pass"
    (d / "tests" / "test_echo.py").write_text(SUITE.format(runs=str(runs), always=body))


def _cases(junit: Path) -> dict[str, ET.Element]:
    assert_valid(junit)
    return {f"{c.get('classname')}::{c.get('name')}": c
            for c in ET.parse(junit).getroot().iter("testcase")}


def _attempts(app: str) -> list[tuple[int, list[str]]]:
    with open_store() as store:
        return sorted((r.payload["attempt"], sorted(c[0] for c in r.payload["cases"]))
                      for r in store.since(None, ("test",)) if r.payload.get("app") == app)


def test_only_the_failed_pytest_test_runs_again_and_is_flaky(gate_project, capsys, tmp_path):
    runs = tmp_path / "runs"
    _pytest_app(gate_project, runs, always_fails=False)
    junit = tmp_path / "verdict.xml"
    rc = main(["test", "--on", "qemu", "-b", "nucleo-f4", "--retry-failed", "2",
               "--junit", str(junit)])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    assert sorted(runs.read_text().split()) == ["always", "once", "once", "stable"]
    assert "re-running the 1 failed test (1 of 2)" in captured.err
    assert "flaky: apps.echo.tests.test_echo.TestReply::test_once_lost failed on nucleo-f4" in \
        captured.err
    assert matrix(captured.out)["echo"]["nucleo-f4"] == \
        "flaky: failed 1 of 2 runs (qemu -> qemu)"
    cases = _cases(junit)
    assert sorted(cases) == ["apps.echo.tests.test_echo.TestReply::test_always_lost",
                             "apps.echo.tests.test_echo.TestReply::test_once_lost",
                             "apps.echo.tests.test_echo::test_stable"]
    once = cases["apps.echo.tests.test_echo.TestReply::test_once_lost"]
    assert once.find("failure") is None and once.find("flakyFailure") is not None
    for name in (f"{MODULE}::test_stable", f"{MODULE}.TestReply::test_always_lost"):
        assert list(cases[name]) == [] or all(
            e.tag in ("system-out", "system-err") for e in cases[name]), name
    assert _attempts("echo") == [
        (1, [f"{MODULE}.TestReply::test_always_lost", f"{MODULE}.TestReply::test_once_lost",
             f"{MODULE}::test_stable"]),
        (2, [f"{MODULE}.TestReply::test_once_lost"])]


def test_a_test_that_keeps_failing_is_rerun_alone_and_fails(gate_project, capsys, tmp_path):
    runs = tmp_path / "runs"
    _pytest_app(gate_project, runs, always_fails=True)
    junit = tmp_path / "verdict.xml"
    rc = main(["test", "--on", "qemu", "-b", "nucleo-f4", "--retry-failed", "1",
               "--junit", str(junit)])
    captured = capsys.readouterr()
    assert rc == 1, captured.out + captured.err
    # both failed tests run again, the one that passed does not
    assert sorted(runs.read_text().split()) == ["always", "always", "once", "once", "stable"]
    assert "re-running the 2 failed tests (1 of 1)" in captured.err
    cases = _cases(junit)
    always = cases["apps.echo.tests.test_echo.TestReply::test_always_lost"]
    assert always.find("failure") is not None and len(always.findall("rerunFailure")) == 1
    assert cases[f"{MODULE}.TestReply::test_once_lost"].find("flakyFailure") is not None
    assert cases["apps.echo.tests.test_echo::test_stable"].find("failure") is None


def test_a_line_harness_cell_runs_whole_again_and_is_judged_per_case(gate_project, capsys,
                                                                    tmp_path):
    unity_failing_app(gate_project, "sums")
    junit = tmp_path / "verdict.xml"
    rc = main(["test", "--on", "qemu", "-b", "nucleo-f4", "--retry-failed", "1",
               "--junit", str(junit)])
    captured = capsys.readouterr()
    assert rc == 1, captured.out + captured.err
    assert "re-running the whole suite (1 of 1)" in captured.err
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases["test_sum"].find("failure") is None and not cases["test_sum"].findall(
        "rerunFailure") and not cases["test_sum"].findall("flakyFailure")
    assert cases["test_product"].find("failure") is not None
    assert len(cases["test_product"].findall("rerunFailure")) == 1
    # a line harness's classname starts with the board: the audit names the test without it
    assert _attempts("sums") == [(n, ["sums.main::test_product", "sums.main::test_sum"])
                                 for n in (1, 2)]


SAME_NAME = """
from pathlib import Path

MARK = Path({mark!r})


def test_reply(dut):
    {body}
"""


def test_two_tests_of_one_name_in_two_modules_stay_two(gate_project, capsys, tmp_path):
    d = console_app(gate_project, "echo")
    (d / "app.yaml").write_text("name: echo\n")
    (d / "tests").mkdir()
    mark = str(tmp_path / "mark")
    (d / "tests" / "test_uart.py").write_text(SAME_NAME.format(mark=mark, body=(
        "if not MARK.exists():\n        MARK.write_text('x')\n        assert False")))
    (d / "tests" / "test_usb.py").write_text(SAME_NAME.format(mark=mark, body="pass"))
    assert main(["test", "--on", "qemu", "-b", "nucleo-f4", "--retry-failed", "1"]) == 0
    capsys.readouterr()
    assert main(["audit", "flaky", "--json"]) == 0
    tests = {t["case"]: (t["runs"], t["failures"], t["flaky"])
             for t in json.loads(capsys.readouterr().out)["tests"]}
    assert tests == {"apps.echo.tests.test_uart::test_reply": (2, 1, 1),
                     "apps.echo.tests.test_usb::test_reply": (1, 0, 0)}
