"""The ztest harness on recorded Zephyr output: one case per test, statuses, assertion text."""

from __future__ import annotations

import pytest

from hil.console import Console
from hil.crash import CrashError
from hil.harnesses.base import Crashed, HarnessConfig, TestCase, run
from hil.harnesses.ztest import ZtestHarness

CONFIG = HarnessConfig(board="nucleo-f4", app="zt", timeout=1.0)

ZEPHYR_RUN = """\
*** Booting Zephyr OS build v3.6.0 ***
Running TESTSUITE framework_tests
===================================================================
START - test_assert
 PASS - test_assert in 0.001 seconds
===================================================================
START - test_fail

    Assertion failed at WEST_TOPDIR/zephyr/tests/ztest/base/src/main.c:38: framework_tests_test_fail: (1 not equal to 2)
values differ
 FAIL - test_fail in 0.005 seconds
===================================================================
START - test_skip
 SKIP - test_skip in 0.001 seconds
===================================================================
TESTSUITE framework_tests failed.
Running TESTSUITE other_suite
===================================================================
START - test_assert
printed by the test
 PASS - test_assert in 0.002 seconds
===================================================================
TESTSUITE other_suite succeeded.

------ TESTSUITE SUMMARY START ------

SUITE FAIL -  66.67% [framework_tests]: pass = 1, fail = 1, skip = 1, total = 3 duration = 0.007 seconds
 - PASS - [framework_tests.test_assert] duration = 0.001 seconds
 - FAIL - [framework_tests.test_fail] duration = 0.005 seconds
 - SKIP - [framework_tests.test_skip] duration = 0.001 seconds

SUITE PASS - 100.00% [other_suite]: pass = 1, fail = 0, skip = 0, total = 1 duration = 0.002 seconds
 - PASS - [other_suite.test_assert] duration = 0.002 seconds

------ TESTSUITE SUMMARY END ------

===================================================================
PROJECT EXECUTION FAILED
"""


def feed_all(text: str) -> tuple[ZtestHarness, list[TestCase]]:
    harness = ZtestHarness(CONFIG)
    cases: list[TestCase] = []
    for line in text.splitlines():
        events = harness.feed(line)
        assert not any(isinstance(e, Crashed) for e in events)
        cases += [e for e in events if isinstance(e, TestCase)]
    return harness, cases


def test_one_case_per_test_with_suite_status_and_assertion():
    harness, cases = feed_all(ZEPHYR_RUN)
    assert harness.done
    assert [(c.classname, c.name, c.status) for c in cases] == [
        ("framework_tests", "test_assert", "passed"),
        ("framework_tests", "test_fail", "failed"),
        ("framework_tests", "test_skip", "skipped"),
        ("other_suite", "test_assert", "passed")]
    fail = cases[1]
    assert fail.message.startswith("Assertion failed at WEST_TOPDIR/zephyr/tests/ztest/base/"
                                   "src/main.c:38: framework_tests_test_fail: (1 not equal to 2)")
    assert fail.text.splitlines()[-1] == "values differ"
    assert fail.seconds == pytest.approx(0.005)
    assert cases[3].output == ["printed by the test"]
    assert harness.finish(None) == []  # summary and verdict agree with the cases


def test_project_failed_without_a_failed_test_is_a_failure():
    text = ZEPHYR_RUN.replace(" FAIL - test_fail", " PASS - test_fail").replace(
        " - FAIL - [framework_tests.test_fail]", " - PASS - [framework_tests.test_fail]")
    text = text.replace("TESTSUITE framework_tests failed.", "TESTSUITE framework_tests "
                        "succeeded.")
    harness, cases = feed_all(text)
    assert all(c.status != "failed" for c in cases)
    (owed,) = harness.finish(None)
    assert owed.status == "failed" and "PROJECT EXECUTION FAILED" in owed.message


def test_summary_disagreeing_with_the_results_is_reported():
    text = ZEPHYR_RUN.replace(" - SKIP - [framework_tests.test_skip]",
                              " - PASS - [framework_tests.test_skip]")
    harness, _ = feed_all(text)
    (owed,) = harness.finish(None)
    assert owed.name == "ztest-summary" and "framework_tests.test_skip" in owed.message


@pytest.mark.parametrize(("line", "status", "seconds"), [
    pytest.param(" PASS - test_a in 0.010 seconds", "passed", 0.01, id="zephyr-3"),
    pytest.param(" PASS - test_a", "passed", None, id="legacy-no-duration"),
    pytest.param(" BLOCK - test_a in 0.000 seconds", "skipped", 0.0, id="blocked"),
])
def test_result_line_forms(line, status, seconds):
    harness = ZtestHarness(CONFIG)
    harness.feed("Running test suite legacy")
    harness.feed("START - test_a")
    (case,) = harness.feed(line)
    assert (case.classname, case.name, case.status, case.seconds) == \
        ("legacy", "test_a", status, seconds)


FATAL = """\
Running TESTSUITE crashy
START - test_null
E: ***** BUS FAULT *****
E:   Precise data bus error
E:   BFAR Address: 0x0
E: r0/a1:  0x00000000  r1/a2:  0x00000001  r2/a3:  0x00000002
E: r3/a4:  0x00000003 r12/ip:  0x0000000c r14/lr:  0x08000321
E:  xpsr:  0x61000000
E: Faulting instruction address (r15/pc): 0x08000abc
E: >>> ZEPHYR FATAL ERROR 0: CPU exception on CPU 0
E: Current thread: 0x20000300 (unknown)
"""


def test_fatal_error_is_a_crash_with_the_registers_zephyr_printed():
    harness = ZtestHarness(CONFIG)
    events = [e for line in FATAL.splitlines() for e in harness.feed(line)]
    (crashed,) = [e for e in events if isinstance(e, Crashed)]
    assert crashed.crash.kind == "ZEPHYR FATAL ERROR 0: CPU exception on CPU 0"
    assert crashed.crash.pc == 0x08000ABC and crashed.crash.return_address == 0x08000321


def test_runner_ends_the_run_at_the_fatal_error_and_blames_the_running_test():
    with Console("loop://", timeout=1) as con:
        con.write(FATAL.replace("\n", "\r\n").encode())
        result = run(con, ZtestHarness(CONFIG), CONFIG)
    assert isinstance(result.stop, CrashError)
    assert "ZEPHYR FATAL ERROR 0" in str(result.stop) and "PC 0x08000abc" in str(result.stop)
    (case,) = result.cases
    assert (case.classname, case.name, case.status) == ("crashy", "test_null", "error")
    assert "crashed" in case.message and "Precise data bus error" in case.text


def test_output_that_stops_mid_test_fails_that_test_at_the_timeout():
    with Console("loop://", timeout=1) as con:
        con.write(b"Running TESTSUITE s\r\nSTART - test_hangs\r\nstill going\r\n")
        harness = ZtestHarness(CONFIG)
        harness.run_timeout = 0.3
        result = run(con, harness, CONFIG)
    (case,) = result.cases
    assert (case.name, case.status) == ("test_hangs", "failed")
    assert "did not finish" in case.message and "still going" in case.text


def test_a_test_without_a_result_line_fails_when_the_next_starts():
    harness = ZtestHarness(CONFIG)
    events = [e for line in ["Running TESTSUITE s", "START - test_quiet", "some print",
                             "START - test_next", " PASS - test_next in 0.001 seconds"]
              for e in harness.feed(line)]
    assert [(e.name, e.status) for e in events if isinstance(e, TestCase)] == [
        ("test_quiet", "failed"), ("test_next", "passed")]
    assert "no result line before START - test_next" in events[0].message
    assert "some print" in events[0].text
