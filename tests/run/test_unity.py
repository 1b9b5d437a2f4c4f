"""Unity output parsing: any Unity image's output, not only hil's selftest."""

from __future__ import annotations

import pytest

from hil.console import Console
from hil.harnesses.base import HarnessConfig, run
from hil.harnesses.unity import UnityHarness, parse

REAL_UNITY = """\
hil-selftest nucleo-f4
test_foo.c:12:test_adds:PASS
some debug print from the next test
test_foo.c:20:test_fails:FAIL: Expected 3 Was 4
test_foo.c:31:test_ignored:IGNORE: not on this board
test_foo.c:40:test_ignored_no_reason:IGNORE
C:\\src\\test_win.c:7:test_windows_path:PASS
test_foo.c:50:test_message_with_colons:FAIL: Expected 'a:b' Was 'a:c'

-----------------------
6 Tests 2 Failures 2 Ignored 
FAIL
"""


def test_parses_every_case_with_messages():
    run = parse(REAL_UNITY)
    assert [(c.name, c.status) for c in run.cases] == [
        ("test_adds", "passed"), ("test_fails", "failed"), ("test_ignored", "skipped"),
        ("test_ignored_no_reason", "skipped"), ("test_windows_path", "passed"),
        ("test_message_with_colons", "failed")]
    fails = {c.name: c for c in run.cases}
    assert fails["test_fails"].message == "Expected 3 Was 4"
    assert fails["test_fails"].line == 20 and fails["test_fails"].file == "test_foo.c"
    assert fails["test_fails"].output == ["some debug print from the next test"]
    assert fails["test_ignored"].message == "not on this board"
    assert fails["test_message_with_colons"].message == "Expected 'a:b' Was 'a:c'"
    assert fails["test_windows_path"].file == "C:\\src\\test_win.c"
    assert (run.tests, run.failures, run.ignored, run.verdict) == (6, 2, 2, "FAIL")
    assert run.mismatch() is None


@pytest.mark.parametrize(("text", "problem"), [
    pytest.param("a.c:1:t:PASS\n", "no Unity summary line", id="no-summary"),
    pytest.param("a.c:1:t:PASS\n-----\n2 Tests 0 Failures 0 Ignored\nOK\n", "summary says 2",
                 id="lost-a-test"),
])
def test_mismatch_is_reported(text, problem):
    assert problem in parse(text).mismatch()


def test_run_unity_reads_until_the_verdict():
    with Console("loop://", timeout=2) as con:
        con.write(b"boot\r\nx.c:1:t1:PASS\r\nx.c:2:t2:IGNORE: later\r\n-----\r\n"
                  b"2 Tests 0 Failures 1 Ignored\r\nOK\r\nafter\r\n")
        harness = UnityHarness(HarnessConfig(board="b", app="a", timeout=0.5))
        result = run(con, harness, HarnessConfig(board="b", app="a"))
    assert [(c.name, c.status) for c in result.cases] == [("t1", "passed"), ("t2", "skipped")]
    assert result.stop is None and harness.parser.run.verdict == "OK"
    assert result.cases[1].message == "later" and result.cases[0].output == ["boot"]
    assert result.cases[0].classname == "b.a.x"
