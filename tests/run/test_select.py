"""Executor selection: auto falls back to QEMU and says why; hardware is never pretended."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.boards import load_board
from hil.errors import NoHardwareError, UsageError
from hil.executors import choose_executor, make_executor, select_executor
from hil.executors.hardware import HardwareExecutor
from hil.executors.qemu import QemuExecutor


def _rack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, console: str) -> None:
    rack = tmp_path / "rack-real.yaml"
    rack.write_text(f"schema: 1\nboards:\n  - id: f4-bench\n    board: nucleo-f4\n"
                    f"    probe: stlink:0670FF000000000000000001\n    console: {console}\n")
    monkeypatch.setenv("HIL_RACK", str(rack))


def test_auto_falls_back_to_qemu_and_says_why(tmp_path: Path, capsys):
    ex = select_executor(load_board("nucleo-f4"), "auto", work_dir=tmp_path)
    assert isinstance(ex, QemuExecutor)
    err = capsys.readouterr().err
    assert "nucleo-f4: running in QEMU (netduinoplus2): no hardware present" in err


def test_absent_console_device_is_not_hardware(tmp_path: Path, monkeypatch):
    _rack(tmp_path, monkeypatch, str(tmp_path / "ttyACM9"))
    choice = choose_executor(load_board("nucleo-f4"))
    assert choice.kind == "qemu"
    assert "f4-bench" in choice.reason and "does not exist" in choice.reason
    with pytest.raises(NoHardwareError) as err:
        choose_executor(load_board("nucleo-f4"), "hardware")
    assert "nucleo-f4" in str(err.value) and "f4-bench" in str(err.value)


def test_unreachable_network_console_is_not_hardware(tmp_path: Path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _rack(tmp_path, monkeypatch, f"rfc2217://127.0.0.1:{port}")
    with pytest.raises(NoHardwareError) as err:
        choose_executor(load_board("nucleo-f4"), require_hardware=True)
    assert "unreachable" in str(err.value)


def test_contradictory_options_are_usage_errors():
    with pytest.raises(UsageError):
        choose_executor(load_board("nucleo-f4"), "qemu", require_hardware=True)
    with pytest.raises(UsageError):
        choose_executor(load_board("nucleo-f4"), "sometimes")


def test_hardware_executor_needs_a_console(tmp_path: Path):
    from hil.errors import ConfigError
    from hil.executors import Choice
    from hil.rack.inventory import RackEntry

    entry = RackEntry(id="x", board="nucleo-f4", probe="stlink:1", console=None)
    with pytest.raises(ConfigError):
        make_executor(load_board("nucleo-f4"), Choice("hardware", "test", entry),
                      work_dir=tmp_path)
    entry = RackEntry(id="x", board="nucleo-f4", probe="stlink:1", console="loop://")
    ex = make_executor(load_board("nucleo-f4"), Choice("hardware", "test", entry),
                       work_dir=tmp_path)
    assert isinstance(ex, HardwareExecutor) and "x" in ex.description


@pytest.mark.slow
def test_hardware_executor_flashes_through_the_flasher_and_opens_the_console(
        built, tmp_path: Path, monkeypatch):
    """The hardware executor over a simulated probe (pyOCD's real flash path) and a loop://
    console: start() flashes and opens the console. A hilsim: entry is never *chosen* as
    hardware (its verdicts are not hardware verdicts), so the executor is built directly."""

    rack = tmp_path / "rack-sim.yaml"
    rack.write_text("schema: 1\nboards:\n  - id: bench-1\n    board: nucleo-f4\n"
                    "    probe: hilsim:bench1\n    console: loop://\n")
    monkeypatch.setenv("HIL_RACK", str(rack))
    board = load_board("nucleo-f4")
    choice = choose_executor(board)
    assert choice.kind == "qemu" and [e.id for e in choice.entries] == ["bench-1"]
    with pytest.raises(NoHardwareError):
        choose_executor(board, require_hardware=True)
    entry = choice.entries[0]
    with HardwareExecutor(board, entry, work_dir=tmp_path / "run") as ex:
        console = ex.start(built("nucleo-f4"))
        console.send("hello")
        assert console.read_line() == "hello"  # loop:// echoes
        assert ex.outcome.state == "running"
    assert ex.outcome.state == "stopped"
