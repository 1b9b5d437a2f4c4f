"""``hil.debug.session.serve``: what ends a debug session's console copy and what does not,
with a console stand-in behind the same read/write interface."""

from __future__ import annotations

import io

import pytest

from hil.crash import CrashError, parse_fault_line, parse_qemu_fatal
from hil.debug.session import DebugOnFailure, serve

FAULT = "FAULT BusFault CFSR=00008200 HFSR=00000000 PC=08000a46 LR=08000a5b XPSR=21000000"
LOCKUP = ("qemu: fatal: Lockup: can't escalate 3 to HardFault (current priority -1)\n"
          "R00=00000000 R01=00000000 R02=00000000 R03=00000000\n"
          "R12=00000000 R13=20000fe0 R14=fffffff9 R15=fffffff0\nXPSR=40000003 -Z-- A handler\n")


class ScriptedConsole:
    """Returns (or raises) the scripted items, then nothing."""

    def __init__(self, *items: str | CrashError) -> None:
        self.items = list(items)
        self.written: list[bytes] = []

    def read_available(self, timeout: float) -> str:
        if not self.items:
            return ""
        item = self.items.pop(0)
        if isinstance(item, CrashError):
            raise item
        return item

    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_a_firmware_fault_is_shown_and_the_session_goes_on() -> None:
    crash = parse_fault_line(FAULT)
    assert crash is not None
    out = io.StringIO()
    console = ScriptedConsole("READY\n", CrashError(crash), "still here\n")
    serve(console, seconds=1.0, forward_input=False, out=out)  # type: ignore[arg-type]
    text = out.getvalue()
    assert "READY" in text and "BusFault at PC 0x08000a46" in text and "still here" in text


def test_an_emulator_lockup_ends_the_session() -> None:
    crash = parse_qemu_fatal(LOCKUP)
    assert crash is not None and crash.source == "emulator"
    console = ScriptedConsole("READY\n", CrashError(crash), "never read\n")
    with pytest.raises(CrashError):
        serve(console, seconds=60.0, forward_input=False,  # type: ignore[arg-type]
              out=io.StringIO())
    assert console.items == ["never read\n"]


@pytest.mark.parametrize(("wait", "terminal", "expected"), [
    pytest.param(None, True, None, id="terminal-waits-for-ctrl-c"),
    pytest.param(None, False, 0.0, id="unattended-does-not-wait"),
    pytest.param(30.0, False, 30.0, id="debug-wait-unattended"),
    pytest.param(30.0, True, 30.0, id="debug-wait-on-a-terminal"),
])
def test_how_long_a_failed_board_is_kept(wait, terminal, expected) -> None:
    assert DebugOnFailure(wait=wait).seconds(terminal) == expected
