"""The pytest plugin, tested with pytester: fixtures, markers, xdist, options."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

SUITE = """\
import pytest

def test_board_and_image(board, image):
    assert board.name == "nucleo-f4"
    assert len(image.sha256) == 64 and image.hex.is_file()

def test_dut(dut):
    assert dut.command("ping") == ["pong"]

def test_reset(hil_reset):
    assert hil_reset.banner.startswith("hil-shell nucleo-f4")

@pytest.mark.hardware_only
def test_only_on_hardware(dut):
    raise AssertionError("must not run in QEMU")

@pytest.mark.boards("hifive1-revb")
def test_only_on_hifive(dut):
    raise AssertionError("must not run on nucleo-f4")

@pytest.mark.boards("nucleo-f411re")
def test_alias_matches(dut):
    assert dut.command("add 1 1") == ["2"]
"""


def test_fixtures_and_markers(pytester: pytest.Pytester, built):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("--hil-board", "nucleo-f4", "--hil-image",
                                           str(built("nucleo-f4").hex), "-rs", "-p",
                                           "no:cacheprovider")
    result.assert_outcomes(passed=4, skipped=2)
    result.stdout.fnmatch_lines([
        "*hil: nucleo-f4: running in QEMU (netduinoplus2)*",
        "*hardware_only: running in QEMU*",
        "*only for boards hifive1-revb, not nucleo-f4*",
    ])


def test_builds_the_app_when_no_image_is_given(pytester: pytest.Pytester):
    pytester.makepyfile(test_a="def test_a(dut, image):\n    assert image.app == 'shell'\n"
                               "    assert dut.command('ping') == ['pong']\n")
    result = pytester.runpytest_subprocess("--hil-board", "hifive1-revb", "-p",
                                           "no:cacheprovider")
    result.assert_outcomes(passed=1)


WORKER_MODULE = """\
import os

def test_record_instance(dut, hil_executor):
    with open({out!r}, "a") as fh:
        fh.write(f"{{os.environ.get('PYTEST_XDIST_WORKER')}} {{hil_executor.proc.pid}}\\n")
    assert dut.command("ping") == ["pong"]
"""


def test_xdist_workers_get_their_own_board_instance(pytester: pytest.Pytester, built, tmp_path):
    out = tmp_path / "instances.txt"
    for i in range(4):
        pytester.makepyfile(**{f"test_m{i}": WORKER_MODULE.format(out=str(out))})
    result = pytester.runpytest_subprocess("--hil-board", "lm3s6965evb", "--hil-image",
                                           str(built("lm3s6965evb").hex), "-n", "2",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    rows = [line.split() for line in out.read_text().splitlines()]
    assert len({pid for _, pid in rows}) == 4  # one QEMU per module
    assert {worker for worker, _ in rows} <= {"gw0", "gw1"}


def test_missing_board_option_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile(test_a="def test_a(dut):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*--hil-board*"])
