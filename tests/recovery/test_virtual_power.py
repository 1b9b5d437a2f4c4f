"""The ``virtual`` power driver for real: a booted virtual board switched off has no QEMU and
its simulated probe does not connect; switched on, it boots the flashed firmware again and
the shell answers. Both owners of a virtual board's QEMU follow it: the executor of a test
run and ``VirtualBoardHost`` under ``hil rack-host`` (whose console pty survives)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import serial
import yaml
from projects import read_until

from hil.boards import load_board
from hil.errors import ConfigError, PowerError, ProbeLostError
from hil.executors.virtual import VirtualBoardExecutor
from hil.flash import make_flasher
from hil.image import Image
from hil.power import driver_for
from hil.rack.host import VirtualBoardHost
from hil.rack.inventory import load_rack, parse_rack

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm absent")

RACK = """\
schema: 1
boards:
  - id: f4-v
    board: nucleo-f4
    probe: hilsim:pw-f4-v
    emulator: qemu
    power: {driver: virtual, off_time_ms: 50}
"""


@pytest.fixture
def entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "rack.yaml"
    path.write_text(RACK)
    monkeypatch.setenv("HIL_RACK", str(path))
    return load_rack().entry("f4-v")


@pytest.mark.parametrize("text", [
    pytest.param("probe: stlink:0670FF48\n    console: /dev/null", id="real-probe"),
    pytest.param("probe: hilsim:x", id="no-emulator"),
])
def test_the_virtual_driver_refuses_a_board_that_is_not_virtual(tmp_path, text):
    data = f"schema: 1\nboards:\n  - id: b1\n    board: nucleo-f4\n    {text}\n" \
           "    power: {driver: virtual}\n"
    with pytest.raises(ConfigError) as err:
        parse_rack(yaml.safe_load(data), tmp_path / "rack.yaml")
    message = str(err.value)
    assert "rack.yaml: boards[0].power.driver:" in message
    assert "only virtual boards" in message and "hilsim:" in message


def test_an_unknown_key_of_the_virtual_driver_is_an_error(tmp_path):
    data = ("schema: 1\nboards:\n  - id: b1\n    board: nucleo-f4\n    probe: hilsim:b1\n"
            "    emulator: qemu\n    power: {driver: virtual, port: 2}\n")
    with pytest.raises(ConfigError, match=r"boards\[0\]\.power\.port: unknown key"):
        parse_rack(yaml.safe_load(data), tmp_path / "rack.yaml")


def _until(what: str, ready, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.02)


@pytest.mark.slow
@needs_qemu
def test_a_test_run_follows_the_power_of_its_virtual_board(entry, shell_hex, tmp_path):
    board = load_board("nucleo-f4")
    power = driver_for(entry)
    assert power is not None
    with VirtualBoardExecutor(board, entry, work_dir=tmp_path / "run") as executor:
        console = executor.start(Image.from_path(shell_hex, work_dir=tmp_path / "img"))
        console.wait_ready(20)
        qemu = executor.proc
        assert qemu is not None and qemu.poll() is None

        power.off()
        with pytest.raises(PowerError, match=r"f4-v .* is powered off"):
            console.expect("never", timeout=5)  # the monitor sees it while waiting
        assert qemu.poll() is not None  # that QEMU is gone, no other runs
        assert executor.proc is None
        with pytest.raises(ProbeLostError, match="powered off"):
            make_flasher(board, entry.probe).flash(shell_hex)

        power.on()
        executor.follow_power()
        console.wait_ready(20)  # booted again from what the simulated flash holds
        assert console.command("ping") == ["pong"]
    assert executor.proc is None or executor.proc.poll() is not None


@pytest.mark.slow
@needs_qemu
def test_a_board_that_answers_at_once_is_still_switched_off(entry, shell_hex, tmp_path):
    """The power is followed while the firmware talks, not only while the console is quiet:
    a test that pings without pause sees the switch within a few commands."""
    board = load_board("nucleo-f4")
    power = driver_for(entry)
    assert power is not None
    with VirtualBoardExecutor(board, entry, work_dir=tmp_path / "run") as executor:
        console = executor.start(Image.from_path(shell_hex, work_dir=tmp_path / "img"))
        console.wait_ready(20)
        qemu = executor.proc
        assert qemu is not None
        assert console.command("ping") == ["pong"]
        power.off()
        deadline = time.monotonic() + 20
        with pytest.raises(PowerError, match="is powered off"):
            while time.monotonic() < deadline:
                console.command("ping", 5)
        assert qemu.poll() is not None



@pytest.mark.slow
@needs_qemu
def test_the_rack_host_stops_and_boots_a_virtual_board_with_its_power(entry, shell_hex,
                                                                      tmp_path):
    from hil.cli import main

    power = driver_for(entry)
    assert power is not None
    host = VirtualBoardHost(entry, console_path=tmp_path / "consoles" / "f4-v",
                            work_dir=tmp_path / "work")
    try:
        host.start()
        with serial.Serial(str(host.console_path), 115200, timeout=0.1) as console:
            assert main(["flash", "--board", "nucleo-f4", "--probe", str(entry.probe),
                         "--image", str(shell_hex)]) == 0
            _until("boot", lambda: (host.poll(), host.boots)[1] == 1)
            read_until(console, b"READY")
            first = host.proc
            assert first is not None

            power.off()
            host.poll()
            assert host.proc is None and first.poll() is not None  # no QEMU while off
            host.poll()
            assert host.proc is None and host.boots == 1
            assert main(["flash", "--board", "nucleo-f4", "--probe", str(entry.probe),
                         "--image", str(shell_hex)]) != 0  # no target answers

            power.on()
            _until("boot after power on", lambda: (host.poll(), host.boots)[1] == 2)
            read_until(console, b"READY")  # the same console pty, a fresh boot
            console.write(b"ping\n")
            read_until(console, b"pong")
    finally:
        host.stop()
    assert host.proc is None
