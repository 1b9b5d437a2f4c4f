"""The rack-host side of a virtual board, in-process: the simulated probe publishes resets
and halts, and ``VirtualBoardHost`` boots QEMU from the simulated flash behind a console pty
that survives resets. (tests/rack/test_cross_host.py runs it behind pyocd server + ser2net.)
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import serial
import shell_image
from projects import read_until

from hil.cli import main
from hil.errors import ConfigError
from hil.flash.sim.runstate import RunState, read_run_state
from hil.flash.sim.store import sim_dir
from hil.rack.host import VirtualBoardHost, host_entries
from hil.rack.inventory import load_rack

shell_hex = shell_image.shell_hex  # the fixture, under its name

RACK = """\
schema: 1
boards:
  - id: f4-v
    board: nucleo-f4
    probe: hilsim:f4-v
    emulator: qemu
  - id: f4-real
    board: nucleo-f4
    probe: stlink:0670FF48
    console: /dev/null
"""


@pytest.fixture
def rack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "rack.yaml"
    path.write_text(RACK)
    monkeypatch.setenv("HIL_RACK", str(path))
    return path


def _flash(image: Path, *extra: str) -> None:
    assert main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-v",
                 "--image", str(image), *extra]) == 0


def test_a_board_never_flashed_runs_and_was_never_reset(rack):
    assert read_run_state(sim_dir(), "f4-v") == RunState(resets=0, running=True)


def test_flashing_publishes_resets_and_halts(rack, shell_hex):
    _flash(shell_hex)
    after_reset = read_run_state(sim_dir(), "f4-v")
    assert after_reset.running and after_reset.resets >= 1

    _flash(shell_hex, "--no-reset")  # pyOCD leaves the core halted
    halted = read_run_state(sim_dir(), "f4-v")
    assert not halted.running and halted.resets > after_reset.resets


def test_host_entries_are_virtual_boards(rack):
    assert [e.id for e in host_entries(load_rack())] == ["f4-v"]
    with pytest.raises(ConfigError, match="not a virtual board"):
        host_entries(load_rack(), ["f4-real"])
    with pytest.raises(ConfigError, match="no rack entry 'nope'"):
        host_entries(load_rack(), ["nope"])



def _poll_until(host: VirtualBoardHost, boots: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while host.boots < boots and time.monotonic() < deadline:
        host.poll()
        time.sleep(0.02)
    assert host.boots == boots


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm absent")
def test_host_boots_from_flash_and_restarts_on_reset(rack, shell_hex, tmp_path):
    (entry,) = host_entries(load_rack(), ["f4-v"])
    host = VirtualBoardHost(entry, console_path=tmp_path / "consoles" / "f4-v",
                            work_dir=tmp_path / "work")
    try:
        host.start()
        assert host.console_path.is_symlink()
        host.poll()
        assert host.proc is None  # nothing flashed yet: nothing to run
        with serial.Serial(str(host.console_path), 115200, timeout=0.1) as console:
            _flash(shell_hex)
            _poll_until(host, 1)
            read_until(console, b"READY")
            console.write(b"ping\n")
            read_until(console, b"pong")
            first_qemu = host.proc

            _flash(shell_hex)  # unchanged image: nothing written, but a reset
            _poll_until(host, 2)
            assert host.proc is not first_qemu and first_qemu.poll() is not None
            read_until(console, b"hil-shell nucleo-f4")
            console.write(b"add 2 3\n")
            read_until(console, b"5\r\nOK")

            _flash(shell_hex, "--no-reset")  # the core stays halted: QEMU is paused
            host.poll()
            assert host.qemu is None or host.qemu.paused
    finally:
        qemu = host.proc
        host.stop()
    assert qemu is None or qemu.poll() is not None
    assert not host.console_path.exists()


def test_a_pyocd_server_that_is_down_is_a_clear_error(shell_hex, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    code = main(["flash", "--board", "nucleo-f4", "--probe", f"remote:127.0.0.1:{port}",
                 "--image", str(shell_hex)])
    _, err = capsys.readouterr()
    assert code == 10, err
    assert f"pyocd server at 127.0.0.1:{port} is not reachable" in err
    assert "Traceback" not in err
