"""The ladder's probe steps on a board driven like hardware (``HardwareExecutor``): SWD reset
and connect-under-reset go through pyOCD's real code to the simulated probe, whose chip
publishes each reset; an unpowered target makes them fail with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.boards import load_board
from hil.errors import ProbeLostError
from hil.executors.hardware import HardwareExecutor
from hil.flash.sim.power import switch_power
from hil.flash.sim.runstate import read_run_state
from hil.flash.sim.store import sim_dir
from hil.image import Image
from hil.rack.inventory import load_rack

RACK = """\
schema: 1
boards:
  - id: hw-1
    board: nucleo-f4
    probe: hilsim:steps-hw-1
    console: "loop://"
"""


@pytest.fixture
def executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shell_hex: Path):
    path = tmp_path / "rack.yaml"
    path.write_text(RACK)
    monkeypatch.setenv("HIL_RACK", str(path))
    entry = load_rack().entry("hw-1")
    with HardwareExecutor(load_board("nucleo-f4"), entry, work_dir=tmp_path / "run") as ex:
        ex.start(Image.from_path(shell_hex, work_dir=tmp_path / "img"))
        yield ex


def _resets() -> int:
    return read_run_state(sim_dir(), "steps-hw-1").resets


@pytest.mark.parametrize("step", ["swd_reset", "connect_under_reset"])
def test_a_probe_step_resets_the_core_and_leaves_it_running(executor, step):
    before = _resets()
    getattr(executor, step)(10.0)
    state = read_run_state(sim_dir(), "steps-hw-1")
    assert state.resets > before and state.running


def test_reflash_writes_the_image_again_and_resets(executor):
    before = _resets()
    executor.reflash(30.0)
    assert _resets() > before


@pytest.mark.parametrize("step", ["swd_reset", "connect_under_reset"])
def test_an_unpowered_target_fails_the_step_with_the_reason(executor, step):
    switch_power(sim_dir(), "steps-hw-1", False)
    before = _resets()
    with pytest.raises(ProbeLostError, match=r"hw-1 is powered off .*hil rack power hw-1 on"):
        getattr(executor, step)(10.0)
    assert _resets() == before
