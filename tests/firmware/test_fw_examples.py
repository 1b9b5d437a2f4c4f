"""blinky and selftest on every board's QEMU, built with GCC and Clang."""

from __future__ import annotations

import re

import pytest
from fwsupport import ROOT, matrix

pytestmark = pytest.mark.slow

UNITY_RESULT = re.compile(r"^([^:/\\]+):(\d+):(\w+):(PASS|FAIL|IGNORE)(?::(.*))?$")
UNITY_SUMMARY = re.compile(r"^(\d+) Tests (\d+) Failures (\d+) Ignored ?$")


@pytest.mark.parametrize("board_name, toolchain", matrix())
def test_blinky_banner_and_heartbeats(firmware, qemu, board_name, toolchain):
    board, image = firmware(board_name, "blinky", toolchain)
    console = qemu(board, image.hex, timeout=15)
    assert console.read_line() == f"hil-blinky {board.name}"
    assert console.read_line() == "heartbeat 1"
    assert console.read_line() == "heartbeat 2"


@pytest.mark.parametrize("board_name, toolchain", matrix())
def test_selftest_prints_a_consistent_unity_summary(firmware, qemu, board_name, toolchain):
    board, image = firmware(board_name, "selftest", toolchain)
    console = qemu(board, image.hex)
    assert console.read_line() == f"hil-selftest {board.name} 1.0.0"
    results = []
    while True:
        line = console.read_line()
        if line == "":
            break
        m = UNITY_RESULT.match(line)
        assert m, f"not a Unity result line: {line!r}"
        results.append(m)
    assert console.read_line() == "-----------------------"
    summary = UNITY_SUMMARY.match(console.read_line())
    assert summary
    verdict = console.read_line()

    tests, failures, ignored = (int(g) for g in summary.groups())
    kinds = [m.group(4) for m in results]
    assert tests == len(results)
    assert failures == kinds.count("FAIL") == 0, [m.string for m in results]
    assert ignored == kinds.count("IGNORE") >= 1
    assert verdict == "OK"
    for m in results:
        assert m.group(1) == "main.c"  # the basename: no build paths in the output
        if m.group(4) == "IGNORE":
            assert m.group(5).startswith(" ") and m.group(5).strip()


@pytest.mark.parametrize("board_name, toolchain", matrix())
def test_images_hold_no_build_paths(firmware, board_name, toolchain):
    for app in ("shell", "selftest", "blinky"):
        _, image = firmware(board_name, app, toolchain)
        data = image.bin.read_bytes()
        assert str(ROOT).encode() not in data
        assert str(image.bin.parent).encode() not in data
        assert b"/tmp/" not in data
