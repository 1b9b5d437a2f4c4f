"""The hello app's test suite: hil's pytest plugin boots the board and gives `dut`."""

import pytest

from hil.console import ShellError


def test_ping(dut):
    assert dut.command("ping") == ["pong"]


def test_hello_names_the_caller(dut):
    assert dut.command("hello world") == ["hello, world"]


def test_unknown_command_is_an_error(dut):
    with pytest.raises(ShellError):
        dut.command("launch")


def test_banner_names_the_board(hil_reset, board):
    # hil_reset boots the board again; the banner came before READY
    assert f"hello from {board.name}" in hil_reset.last_lines()
