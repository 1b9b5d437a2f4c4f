"""A start (flash and boot) that fails on a board with power control is power-cycled and
started again: a virtual board left switched off is switched on by the ladder and runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hil.boards import load_board
from hil.errors import RecoveryFailed
from hil.executors import choose_executor, make_executor
from hil.flash.sim.power import read_power_state, switch_power
from hil.flash.sim.store import sim_dir
from hil.image import Image
from hil.rack import lease_store, load_rack

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                 reason="qemu-system-arm absent")]


def _rack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, power: str) -> None:
    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards:\n  - {id: s-1, board: nucleo-f4, "
                    f"probe: 'hilsim:start-s-1', emulator: qemu{power}}}\n")
    monkeypatch.setenv("HIL_RACK", str(rack))


def test_a_board_left_switched_off_is_power_cycled_and_runs(tmp_path, monkeypatch, shell_hex):
    _rack(tmp_path, monkeypatch, ", power: {driver: virtual}")
    switch_power(sim_dir(), "start-s-1", False)
    board = load_board("nucleo-f4")
    image = Image.from_path(shell_hex, work_dir=tmp_path / "img")
    with make_executor(board, choose_executor(board), work_dir=tmp_path / "run") as executor:
        console = executor.start(image)
        console.wait_ready(20)
        assert console.command("ping") == ["pong"]
    assert read_power_state(sim_dir(), "start-s-1").on
    with lease_store(load_rack()) as store:
        log = [(e.kind, e.step, e.ok) for e in store.health_log("s-1")]
        assert log == [("recovery", "power-cycle", True)]
        assert store.health()["s-1"].healthy and store.leases() == {}


def test_without_power_control_a_failed_start_only_counts_against_the_board(
        tmp_path, monkeypatch, shell_hex):
    _rack(tmp_path, monkeypatch, "")
    switch_power(sim_dir(), "start-s-1", False)  # as if switched off by hand
    board = load_board("nucleo-f4")
    image = Image.from_path(shell_hex, work_dir=tmp_path / "img")
    with pytest.raises(Exception, match="powered off") as err, \
            make_executor(board, choose_executor(board), work_dir=tmp_path / "run") as ex:
        ex.start(image)
    assert not isinstance(err.value, RecoveryFailed)
    with lease_store(load_rack()) as store:
        assert store.health()["s-1"].failures == 1 and store.health()["s-1"].healthy
        assert store.health_log("s-1") == [] and store.leases() == {}
