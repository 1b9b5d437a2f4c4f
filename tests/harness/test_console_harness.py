"""The console harness over a real Console (pyserial loop://): patterns as test cases."""

from __future__ import annotations

import pytest

from hil.console import Console
from hil.errors import UsageError
from hil.harnesses.base import HarnessConfig, run
from hil.harnesses.console import ConsoleHarness

OUTPUT = b"boot v1.2\r\nsensor ok\r\nready 42\r\n"


def _run(patterns, *, ordered=False, timeout=0.5, output=OUTPUT):
    config = HarnessConfig(board="b", app="a", timeout=timeout, expect=tuple(patterns),
                           ordered=ordered)
    with Console("loop://", timeout=1) as con:
        con.write(output)
        return run(con, ConsoleHarness(config), config)


@pytest.mark.parametrize("ordered", [pytest.param(True, id="ordered"),
                                     pytest.param(False, id="any-order")])
def test_patterns_seen_pass_one_case_each(ordered):
    result = _run([r"^boot v\d", "sensor ok", r"ready (\d+)"], ordered=ordered)
    assert result.stop is None
    assert [(c.name, c.status) for c in result.cases] == [
        (r"expect[0] /^boot v\d/", "passed"), ("expect[1] /sensor ok/", "passed"),
        (r"expect[2] /ready (\d+)/", "passed")]
    assert result.cases[0].classname == "b.a"


def test_any_order_accepts_patterns_out_of_order():
    result = _run(["ready", "boot"])
    assert [c.status for c in result.cases] == ["passed", "passed"]
    assert [c.name for c in result.cases] == ["expect[1] /boot/", "expect[0] /ready/"]


def test_ordered_refuses_patterns_out_of_order():
    result = _run(["ready", "boot"], ordered=True)
    by_name = {c.name: c for c in result.cases}
    assert by_name["expect[0] /ready/"].status == "passed"
    missing = by_name["expect[1] /boot/"]
    assert missing.status == "failed"
    assert "not seen within 0.5 s (after expect[0] /ready/)" in missing.message
    assert "ready 42" in missing.text  # the last lines received


def test_missing_pattern_fails_with_the_timeout_and_last_lines():
    result = _run(["boot", "never printed", "also missing"], ordered=True)
    statuses = {c.name: (c.status, c.message) for c in result.cases}
    assert statuses["expect[0] /boot/"] == ("passed", "")
    assert statuses["expect[1] /never printed/"][0] == "failed"
    assert statuses["expect[2] /also missing/"] == (
        "failed", "not reached: expect[1] /never printed/ never matched")
    assert "sensor ok" in next(c.text for c in result.cases if c.status == "failed")
    assert len(result.cases) == 3  # no extra run case: the patterns explain the timeout


def test_a_firmware_fault_line_ends_the_run_as_an_error():
    result = _run(["boot", "ready"], output=b"boot\r\nFAULT HardFault CFSR=00000000 "
                  b"HFSR=40000000 PC=08000100 LR=08000200\r\n")
    assert [(c.name, c.status) for c in result.cases] == [
        ("expect[0] /boot/", "passed"), ("expect[1] /ready/", "error")]
    assert "HardFault" in result.cases[1].text


@pytest.mark.parametrize(("patterns", "words"), [
    pytest.param([], "needs patterns", id="none"),
    pytest.param(["ok", "(unclosed"], "--expect[1]: '(unclosed' is not a regular expression",
                 id="bad-regex"),
])
def test_bad_patterns_are_usage_errors(patterns, words):
    with pytest.raises(UsageError, match=words.replace("[", r"\[").replace("(", r"\(")):
        ConsoleHarness(HarnessConfig(board="b", app="a", expect=tuple(patterns)))
