"""The QEMU executor against real QEMU: boot, crash detection, hangs, kills, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from runsupport import BOARDS, bad_stack_image, qemu_pids_for, write_app

from hil.boards import load_board
from hil.console import ConsoleTimeout
from hil.crash import CrashError
from hil.errors import EmulatorError, ExitCode
from hil.executors.qemu import QemuExecutor
from hil.image import Image

pytestmark = pytest.mark.slow

HANG_APP = """\
#include "hil.h"
int main(void)
{
    hil_println("booting the hanging app");
    hil_println("about to hang");
    for (;;) {
    }
}
"""


def _gone(pid: int, within: float = 15.0) -> bool:
    """True once ``pid`` is gone or a zombie (polled: never a timing assertion)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("board", BOARDS)
def test_boot_command_reset(built, board, tmp_path: Path):
    image = built(board)
    with QemuExecutor(load_board(board), work_dir=tmp_path) as ex:
        con = ex.start(image)
        assert con.wait_ready().startswith(f"hil-shell {board} ")
        assert con.command("ping") == ["pong"]
        ex.reset()
        assert con.wait_ready().startswith("hil-shell")
        assert con.command("add 1 2") == ["3"]
        pid = ex.proc.pid
    assert ex.outcome.state == "stopped"
    assert _gone(pid)
    assert qemu_pids_for(image.hex) == [] or all(p != pid for p in qemu_pids_for(image.hex))


@pytest.mark.parametrize("board", BOARDS)
def test_fault_command_is_a_crash_with_decoded_function(built, board, tmp_path: Path):
    image = built(board)
    with QemuExecutor(load_board(board), work_dir=tmp_path) as ex:
        con = ex.start(image)
        con.wait_ready()
        with pytest.raises(CrashError) as err:
            con.command("fault", timeout=30)
    crash = err.value.crash
    assert crash.source == "firmware"
    assert crash.function and "fault" in crash.function
    assert crash.pc_location.file.endswith("main.c")
    assert err.value.exit_code == ExitCode.TEST_FAILED


@pytest.mark.parametrize("board", ["nucleo-f4", "nucleo-f446re"])
def test_bad_image_locks_up_and_is_decoded(built, board, tmp_path: Path):
    image = bad_stack_image(built(board), tmp_path / "bad.hex")
    with QemuExecutor(load_board(board), work_dir=tmp_path / "run") as ex:
        con = ex.start(image)
        with pytest.raises(CrashError) as err:
            con.wait_ready(timeout=60)
    crash = err.value.crash
    assert crash.source == "emulator" and crash.kind == "lockup"
    assert crash.pc is not None and crash.function is not None
    assert "Lockup" in str(err.value)
    assert ex.outcome.state == "crashed"


def test_hanging_firmware_times_out_with_transcript_tail(tmp_path: Path):
    from hil.build import build

    board = load_board("nucleo-f4")
    app = write_app(tmp_path / "hang", HANG_APP)
    image = Image.from_build(build(board, app, out=tmp_path / "out"))
    with QemuExecutor(board, work_dir=tmp_path / "run", timeout=1.0) as ex:
        con = ex.start(image)
        with pytest.raises(ConsoleTimeout) as err:
            con.wait_ready()
    text = str(err.value)
    assert "| about to hang" in text
    assert str(tmp_path / "run" / "console.log") in text
    assert err.value.exit_code == ExitCode.TEST_FAILED


def test_qemu_killed_mid_test_is_an_infrastructure_error(built, tmp_path: Path):
    image = built("nucleo-f4")
    with QemuExecutor(load_board("nucleo-f4"), work_dir=tmp_path) as ex:
        con = ex.start(image)
        con.wait_ready()
        os.kill(ex.proc.pid, signal.SIGKILL)
        with pytest.raises(EmulatorError) as err:
            for _ in range(100):
                con.command("ping", timeout=5)
    assert "killed by SIGKILL" in str(err.value)
    assert err.value.exit_code == ExitCode.INFRASTRUCTURE
    assert ex.outcome.state == "died"


PARENT = """\
import sys, time
from pathlib import Path
from hil.boards import load_board
from hil.executors.qemu import QemuExecutor
from hil.image import Image
ex = QemuExecutor(load_board("nucleo-f4"), work_dir=Path(sys.argv[2]))
ex.start(Image.from_path(Path(sys.argv[1])))
ex.console.wait_ready()
print(ex.proc.pid, flush=True)
if sys.argv[3] == "exit":
    sys.exit(0)  # without stop(): the atexit hook must take QEMU along
time.sleep(600)
"""


@pytest.mark.parametrize("how", [
    pytest.param("sigkill", id="parent-killed-with-sigkill"),
    pytest.param("sigint", id="parent-interrupted-ctrl-c"),
    pytest.param("sigterm", id="parent-terminated"),
    pytest.param("exit", id="parent-exits-without-stop"),
])
def test_no_orphan_qemu_when_the_parent_goes(built, tmp_path: Path, how):
    image = built("nucleo-f4")
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT))
    proc = subprocess.Popen([sys.executable, str(script), str(image.hex), str(tmp_path / "w"),
                             how], stdout=subprocess.PIPE, text=True)
    try:
        qemu_pid = int(proc.stdout.readline())
        if how != "exit":  # (with "exit" the parent may already be gone, QEMU with it)
            assert not _gone(qemu_pid, within=0.1)
            proc.send_signal({"sigkill": signal.SIGKILL, "sigint": signal.SIGINT,
                              "sigterm": signal.SIGTERM}[how])
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert _gone(qemu_pid), f"QEMU {qemu_pid} outlived its parent"


def test_missing_image_is_a_config_error(tmp_path: Path):
    from hil.errors import ConfigError

    with pytest.raises(ConfigError):
        Image.from_path(tmp_path / "nope.hex")
