"""The shell example's test suite: every command, malformed input, and the fault report.

Run with the hil pytest plugin: ``hil test --board nucleo-f4`` (or
``pytest firmware_examples/shell/tests --hil-board nucleo-f4``).
"""

from __future__ import annotations

import zlib

import pytest
from intelhex import IntelHex

from hil.console import ShellError
from hil.crash import CrashError


def test_banner_names_the_board(dut, board):
    assert dut.banner is not None
    assert dut.banner.startswith(f"hil-shell {board.name} ")


def test_ping(dut):
    assert dut.command("ping") == ["pong"]


@pytest.mark.parametrize("text", [
    pytest.param("hello", id="word"),
    pytest.param("hello  world, with spaces", id="spaces"),
    pytest.param("x" * 100, id="long-text"),
])
def test_echo(dut, text):
    assert dut.command(f"echo {text}") == [text]


@pytest.mark.parametrize(("a", "b", "expected"), [
    pytest.param(2, 3, 5, id="small"),
    pytest.param(-5, 3, -2, id="negative"),
    pytest.param(0, 0, 0, id="zero"),
    pytest.param(2147483647, 1, -2147483648, id="wraps-at-int32-max"),
    pytest.param(-2147483648, -1, 2147483647, id="wraps-at-int32-min"),
])
def test_add(dut, a, b, expected):
    assert dut.command(f"add {a} {b}") == [str(expected)]


@pytest.mark.parametrize("data", [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x00", id="one-zero-byte"),
    pytest.param(b"123456789", id="check-value"),
    pytest.param(bytes(range(64)), id="max-bytes"),
])
def test_crc32_matches_zlib(dut, data):
    reply = dut.command(f"crc32 {data.hex()}".rstrip())
    assert reply == [f"{zlib.crc32(data):08x}"]


def test_crc32_bytes_split_over_words(dut):
    assert dut.command("crc32 de ad beef") == [f"{zlib.crc32(bytes.fromhex('deadbeef')):08x}"]


def test_mem_reads_the_vector_table(dut, board, image):
    ih = IntelHex(str(image.hex))
    start = board.app_start
    word = int.from_bytes(bytes(ih.tobinarray(start=start, size=4)), "little")
    assert dut.command(f"mem {start:x}") == [f"{word:08x}"]


def test_version(dut, board, image):
    (line,) = dut.command("version")
    assert f"board={board.name}" in line
    assert "app=shell" in line
    if image.toolchain:
        assert f"toolchain={image.toolchain}" in line


def test_help_lists_every_command(dut):
    listed = {line.split()[0] for line in dut.command("help")}
    assert {"ping", "echo", "add", "crc32", "mem", "version", "help", "fault"} <= listed


# ---------------------------------------------------------------- malformed input

@pytest.mark.parametrize(("line", "reason"), [
    pytest.param("frobnicate", "unknown command", id="unknown-command"),
    pytest.param("PING", "unknown command", id="commands-are-case-sensitive"),
    pytest.param("add 1", "usage: add <a> <b>", id="add-missing-argument"),
    pytest.param("add 1 2 3", "usage: add <a> <b>", id="add-extra-argument"),
    pytest.param("add one 2", None, id="add-not-a-number"),
    pytest.param("add 99999999999 1", None, id="add-out-of-range"),
    pytest.param("crc32 abc", None, id="crc32-odd-length-hex"),
    pytest.param("crc32 zz", "bad hex digit", id="crc32-non-hex"),
    pytest.param("crc32 " + "00" * 65, None, id="crc32-too-many-bytes"),
    pytest.param("mem", "usage: mem <hex address>", id="mem-missing-address"),
    pytest.param("mem xyz", None, id="mem-non-hex"),
    pytest.param("ping extra", None, id="ping-with-argument"),
])
def test_malformed_input_answers_err(dut, line, reason):
    with pytest.raises(ShellError) as err:
        dut.command(line)
    if reason is not None:
        assert err.value.reason == reason
    else:
        assert err.value.reason  # some reason is given
    assert dut.command("ping") == ["pong"]  # and the shell still works


def test_empty_lines_are_ignored(dut):
    dut.send("")
    dut.send("")
    dut.write(b"\r\n")
    assert dut.command("ping") == ["pong"]


@pytest.mark.parametrize("ending", [
    pytest.param(b"\n", id="lf"), pytest.param(b"\r", id="cr"), pytest.param(b"\r\n", id="crlf"),
])
def test_line_endings(dut, ending):
    dut.write(b"echo end" + ending)
    assert dut.read_line() == "end"
    assert dut.read_line() == "OK"
    assert dut.command("ping") == ["pong"]  # a CRLF is one line ending, not two


def test_overlong_line_gets_one_error_then_recovers(dut):
    with pytest.raises(ShellError) as err:
        dut.command("echo " + "y" * 600)
    assert err.value.reason == "line too long"
    assert dut.command("ping") == ["pong"]


def test_many_commands_in_one_write(dut):
    dut.write(b"ping\nadd 1 2\necho x\n")
    assert [dut.read_line() for _ in range(6)] == ["pong", "OK", "3", "OK", "x", "OK"]


def test_reset_boots_again(hil_reset, board):
    assert hil_reset.banner.startswith(f"hil-shell {board.name} ")
    assert hil_reset.command("ping") == ["pong"]


# ---------------------------------------------------------------- fault report

def test_fault_is_reported_as_a_crash_in_the_faulting_function(dut):
    with pytest.raises(CrashError) as err:
        dut.command("fault", timeout=10)
    crash = err.value.crash
    assert crash.source == "firmware"
    assert crash.pc is not None
    assert crash.function is not None and "fault" in crash.function
    assert crash.pc_location.file and crash.pc_location.line


def test_board_is_usable_after_a_crash(dut):
    """The plugin resets a crashed board before the next test that uses it."""
    assert dut.command("ping") == ["pong"]
