"""An idle board costs next to nothing (issue 16): the shell waiting for a command sleeps
(WFI until the UART's receive interrupt) instead of polling, in QEMU as on a board.

Boots the shell on every board and toolchain, lets it idle, and bounds the QEMU process's
CPU time generously: a fifth of the idle wall time. A sleeping shell keeps QEMU under 1% of
a core; a busy-waiting one took 60-140% on an idle 2-core host and still 40-50% at a load
average of 9, so the bound catches the regression without asserting a fine time. Then the
board must still answer: the receive interrupt woke it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fwsupport import matrix

IDLE_SECONDS = 3.0
BOUND = 0.2  # share of one core
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (/proc/PID/stat fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def idle_cpu(con) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the board's QEMU over IDLE_SECONDS of silence."""
    pid = con.qemu.pid
    assert pid is not None
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    time.sleep(IDLE_SECONDS)
    return cpu_seconds(pid) - cpu0, time.monotonic() - wall0


@pytest.mark.parametrize(("board_name", "toolchain"), matrix())
def test_idle_shell_sleeps_and_still_answers(firmware, qemu, board_name, toolchain):
    board, result = firmware(board_name, "shell", toolchain)
    con = qemu(board, result.hex)
    con.expect(r"^READY$")
    cpu, wall = idle_cpu(con)
    assert cpu < BOUND * wall, f"idle QEMU used {cpu:.2f} s of CPU in {wall:.2f} s: busy-waiting?"
    assert con.command("ping") == (["pong"], "OK")
    assert con.command("echo awake after idling") == (["awake after idling"], "OK")


@pytest.mark.parametrize(("board_name", "toolchain"), matrix())
def test_burst_longer_than_the_receive_buffer_loses_nothing(firmware, qemu, board_name,
                                                            toolchain):
    """QEMU hands bytes over as fast as the UART is read: a full receive buffer must leave
    them in the UART (and mask its interrupt) rather than drop them or starve the shell."""
    board, result = firmware(board_name, "shell", toolchain)
    con = qemu(board, result.hex)
    con.expect(r"^READY$")
    lines = [f"echo {n:03d} " + "x" * 60 for n in range(30)]  # 2 KiB in one write
    con.write("".join(line + "\n" for line in lines).encode())
    for line in lines:
        assert (con.read_line(), con.read_line()) == (line[5:], "OK")


@pytest.mark.parametrize(("board_name", "toolchain"), matrix())
def test_halted_board_sleeps_even_when_bytes_arrive(firmware, qemu, board_name, toolchain):
    """After main() returns (selftest) the runtime halts: with the tick and the console's
    interrupt stopped, neither a pending tick nor received bytes keep the core awake."""
    board, result = firmware(board_name, "selftest", toolchain)
    con = qemu(board, result.hex)
    con.expect(r"^OK$")  # Unity's verdict, the last line before main() returns
    con.write(b"bytes nobody reads\n")
    cpu, wall = idle_cpu(con)
    assert cpu < BOUND * wall, f"halted QEMU used {cpu:.2f} s of CPU in {wall:.2f} s"
