"""A suite's errors as ``hil test`` sees them: the plugin records each error's kind (not a
number), and the verdict tells a wrong answer (exit 1) from the rig failing (its own code)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from hil.cli import main
from hil.errors import ExitCode

pytestmark = pytest.mark.slow

SUITE = """\
import pytest
from hil.errors import ProbeLostError


def test_wrong_answer(dut):
    dut.command("no-such-command")


def test_probe_gone(dut):
    raise ProbeLostError("probe stlink:0669 went away mid-test")


def test_passes(dut):
    assert dut.command("ping") == ["pong"]
"""


def _suite(tmp_path: Path, body: str) -> Path:
    d = tmp_path / "suite"
    d.mkdir()
    (d / "test_it.py").write_text(textwrap.dedent(body))
    return d


def test_plugin_records_the_kind_of_each_rig_error(pytester: pytest.Pytester, built,
                                                    tmp_path: Path):
    pytester.makepyfile(test_it=SUITE)
    info = tmp_path / "run-info.jsonl"
    result = pytester.runpytest_subprocess("--hil-board", "nucleo-f4", "--hil-image",
                                           str(built("nucleo-f4").hex), "--hil-run-info",
                                           str(info), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    (record,) = [json.loads(line) for line in info.read_text().splitlines()]
    # the ERR reply is a test failure: only the probe error is recorded, by kind
    (error,) = record["errors"]
    assert error.pop("test").endswith("test_it.py::test_probe_gone")
    assert error == {
        "chain": ["ProbeLostError", "FlashError", "InfrastructureError", "HilError"],
        "family": "infrastructure",
        "message": "probe stlink:0669 went away mid-test"}
    assert "exit_code" not in record and "error_codes" not in record


def test_rig_error_in_a_suite_exits_with_its_own_code(tmp_path: Path, capsys):
    suite = _suite(tmp_path, SUITE)
    rc = main(["test", "--board", "nucleo-f4", "shell", "--suite", str(suite)])
    err = capsys.readouterr().err
    assert rc == ExitCode.PROBE_LOST, err
    line = next(x for x in err.splitlines() if "infrastructure failure: " in x)
    assert "test_it.py::test_probe_gone: probe stlink:0669 went away mid-test" in line


def test_an_err_reply_is_a_test_failure_not_an_infrastructure_one(tmp_path: Path, capsys):
    suite = _suite(tmp_path, """\
        def test_wrong_answer(dut):
            dut.command("no-such-command")
        """)
    rc = main(["test", "--board", "nucleo-f4", "shell", "--suite", str(suite)])
    out, err = capsys.readouterr()
    assert rc == ExitCode.TEST_FAILED, err
    assert "FAILED in QEMU" in out and "infrastructure failure" not in err
