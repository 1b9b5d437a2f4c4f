"""The CLI's answer when a cancel signal interrupts a library mid-operation."""

from __future__ import annotations

import argparse
import os
import signal
from types import ModuleType

import pytest

from hil import cli
from hil.errors import Cancelled


def _command(run) -> ModuleType:
    module = ModuleType("victim")
    module.NAME = "victim"  # type: ignore[attr-defined]
    module.HELP = "raises as a library interrupted by a signal does"  # type: ignore[attr-defined]
    module.add_arguments = lambda p: None  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    return module


def _library_confused_by_the_signal(args: argparse.Namespace) -> int:
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises Cancelled right here
        signal.pause()
    except Cancelled:
        # what pyOCD did in about one flash cancel in ten: its cleanup fails on a lock the
        # interrupted code never took, and a plain RuntimeError replaces the Cancelled
        raise RuntimeError("cannot release un-acquired lock") from None
    return 0


def test_a_library_error_after_a_cancel_exits_as_the_cancel(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_subcommand_modules",
                        lambda only=None: [_command(_library_confused_by_the_signal)])
    assert cli.main(["victim"]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "cancelled by SIGTERM" in err and "Traceback" not in err


def test_a_library_error_without_a_cancel_is_still_a_bug_with_a_traceback(monkeypatch):
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("a real bug")

    monkeypatch.setattr(cli, "_subcommand_modules", lambda only=None: [_command(broken)])
    with pytest.raises(RuntimeError, match="a real bug"):
        cli.main(["victim"])
