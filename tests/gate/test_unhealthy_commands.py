"""Commands that lease a rack board do not wait for boards that are out of service: the
``--on auto`` choice skips unhealthy entries (plain QEMU, with a note naming them), and a
command only a rack board can serve fails at once naming each board, its reason and the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gatesupport import console_app

from hil.cli import main
from hil.errors import BoardsUnhealthy, ExitCode, LeaseTimeout
from hil.rack import lease_store
from hil.rack.inventory import load_rack
from hil.rack.leases import Holder, open_store

REASONS = {"f4-a": "probe lost twice", "f4-b": "console dead"}


def _rack(root: Path) -> None:
    (root / "rack.yaml").write_text(
        "schema: 1\nboards:\n"
        "  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:unh-f4-a', emulator: qemu}\n"
        "  - {id: f4-b, board: nucleo-f4, probe: 'hilsim:unh-f4-b', emulator: qemu}\n")


def _mark(root: Path, *ids: str) -> None:
    with lease_store(load_rack(root / "rack.yaml")) as store:
        for rack_id in ids:
            store.mark_unhealthy(rack_id, REASONS[rack_id])


@pytest.fixture
def sick_rack(gate_project: Path) -> Path:
    """Two virtual nucleo-f4 boards, both unhealthy, and an app ``alpha``."""
    console_app(gate_project, "alpha")
    _rack(gate_project)
    _mark(gate_project, "f4-a", "f4-b")
    return gate_project


def _names_both_and_the_fix(err: str) -> None:
    assert "f4-a: probe lost twice" in err and "f4-b: console dead" in err
    assert "hil rack check f4-a" in err and "hil rack reset f4-a" in err


def _names_both_skipped(err: str) -> None:
    assert "unhealthy, skipped: f4-a, f4-b (probe lost twice; console dead" in err
    assert "hil rack check ID" in err


def test_a_lease_whose_candidates_are_all_unhealthy_does_not_wait(tmp_path: Path):
    with open_store(tmp_path / "leases.sqlite") as store:
        for rack_id, reason in REASONS.items():
            store.mark_unhealthy(rack_id, reason)
        # a wait that would otherwise run out (LeaseTimeout) ends at once instead
        with pytest.raises(BoardsUnhealthy) as info:
            store.acquire(["f4-a", "f4-b"], wait=30.0)
        assert info.value.exit_code == ExitCode.NO_HARDWARE
        assert "f4-a: probe lost twice; f4-b: console dead" in str(info.value)
        assert store.queue_length() == 0  # left the queue


def test_a_wait_for_held_and_unhealthy_boards_says_which_is_which(tmp_path: Path):
    with open_store(tmp_path / "leases.sqlite") as store:
        store.mark_unhealthy("f4-b", "console dead")
        store.acquire(["f4-a"], holder=Holder.current("another job"))
        with pytest.raises(LeaseTimeout) as info:  # one healthy but busy: a real wait
            store.acquire(["f4-a", "f4-b"], wait=0.5)
        assert "held: f4-a" in str(info.value)
        assert "f4-b unhealthy: console dead" in str(info.value)


def test_hil_flash_fails_at_once_when_every_board_is_unhealthy(sick_rack: Path, capsys):
    assert main(["flash", "--board", "nucleo-f4", "alpha", "--wait", "30"]) == 4
    err = capsys.readouterr().err
    _names_both_and_the_fix(err)
    assert "holds them" not in err  # nobody holds them


def test_hil_flash_on_a_probe_of_an_unhealthy_entry_fails_at_once(gate_project: Path, capsys):
    console_app(gate_project, "alpha")
    _rack(gate_project)
    _mark(gate_project, "f4-a")
    assert main(["flash", "--board", "nucleo-f4", "alpha", "--probe", "hilsim:unh-f4-a",
                 "--wait", "30"]) == 4
    err = capsys.readouterr().err
    assert "f4-a: probe lost twice" in err and "hil rack check f4-a" in err


def test_single_app_hil_test_falls_back_to_plain_qemu(sick_rack: Path, capsys):
    hil = shutil.which("hil") or str(Path(sys.executable).parent / "hil")
    proc = subprocess.run([hil, "test", "--board", "nucleo-f4", "alpha"], check=False,
                          capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "virtual board of the rack" not in proc.stderr
    assert "running in QEMU (netduinoplus2): no hardware present" in proc.stderr
    _names_both_skipped(proc.stderr)
    assert "not a hardware pass" in proc.stdout


def test_hil_run_falls_back_to_plain_qemu(sick_rack: Path):
    hil = shutil.which("hil") or str(Path(sys.executable).parent / "hil")
    proc = subprocess.Popen([hil, "run", "--board", "nucleo-f4", "alpha"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ))
    out, err = proc.communicate(b"\x1d", timeout=300)
    assert b"hello alpha" in out  # it ran, in plain QEMU
    assert proc.returncode == 0, err
    assert b"unhealthy, skipped: f4-a, f4-b (probe lost twice; console dead" in err
    assert b"waiting for" not in err


def test_hil_debug_on_a_probe_of_an_unhealthy_entry_fails_at_once(sick_rack: Path, capsys):
    assert main(["debug", "--probe", "hilsim:unh-f4-a", "--timeout", "5", "--board",
                 "nucleo-f4", "alpha"]) == 4
    err = capsys.readouterr().err
    assert "f4-a: probe lost twice" in err and "hil rack check f4-a" in err


def test_hil_debug_falls_back_to_plain_qemu(sick_rack: Path, capsys):
    assert main(["debug", "--board", "nucleo-f4", "alpha", "--timeout", "1"]) == 0
    err = capsys.readouterr().err
    assert "running in QEMU (netduinoplus2): no hardware present" in err
    _names_both_skipped(err)


@pytest.fixture
def sick_hardware(gate_project: Path) -> Path:
    """A real nucleo-f4 entry that counts as present (a remote probe, a loop:// console;
    nothing is contacted), unhealthy, and an app ``alpha``."""
    console_app(gate_project, "alpha")
    (gate_project / "rack.yaml").write_text(
        "schema: 1\nboards:\n"
        "  - {id: f4-a, board: nucleo-f4, probe: 'remote:127.0.0.1:9', console: 'loop://'}\n")
    _mark(gate_project, "f4-a")
    return gate_project


@pytest.mark.parametrize("argv", [
    pytest.param(["run", "--on", "hardware"], id="run-on-hardware"),
    pytest.param(["debug", "--require-hardware", "--timeout", "5"], id="debug-require-hw"),
    pytest.param(["test", "--require-hardware"], id="test-require-hardware"),
])
def test_commands_that_need_hardware_fail_at_once_on_unhealthy_hardware(
        sick_hardware: Path, capsys, argv):
    assert main([*argv, "--board", "nucleo-f4", "alpha"]) == 4
    err = capsys.readouterr().err
    assert "out of service (unhealthy): f4-a: probe lost twice" in err
    assert "hil rack check f4-a" in err and "hil rack reset f4-a" in err


def test_auto_never_counts_unhealthy_hardware_as_hardware(sick_hardware: Path, capsys):
    assert main(["debug", "--board", "nucleo-f4", "alpha", "--timeout", "1"]) == 0
    err = capsys.readouterr().err
    assert "running in QEMU (netduinoplus2): no hardware present" in err
    assert "unhealthy, skipped: f4-a (probe lost twice)" in err
    assert "running on hardware" not in err


def test_a_wait_ends_when_its_last_candidate_turns_unhealthy(tmp_path: Path):
    import threading
    import time

    path = tmp_path / "leases.sqlite"
    with open_store(path) as store:
        store.acquire(["f4-a"], holder=Holder.current("another job"))
    raised: list[BaseException] = []

    def wait_for_f4a() -> None:
        with open_store(path) as waiter:
            try:
                waiter.acquire(["f4-a"], wait=120.0)
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                raised.append(exc)

    thread = threading.Thread(target=wait_for_f4a)
    thread.start()
    with open_store(path) as store:
        for _ in range(600):  # until the waiter is queued
            if store.queue_length() == 1:
                break
            time.sleep(0.05)
        assert store.queue_length() == 1
        store.mark_unhealthy("f4-a", "probe lost twice")
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert store.queue_length() == 0
    (exc,) = raised
    assert isinstance(exc, BoardsUnhealthy) and "f4-a: probe lost twice" in str(exc)
