"""Board health asks one question, is_infrastructure(): every probe and flash failure on a
leased rack entry counts against it, a clean flash resets the count."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.cli import main
from hil.errors import ExitCode
from hil.rack import lease_store, load_rack

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("fault", "code"), [
    pytest.param("corrupt@0x08000010", ExitCode.VERIFY_FAILED, id="verify-mismatch"),
    pytest.param("erase@0x08000000", ExitCode.FLASH_FAILED, id="erase-failure"),
    pytest.param("device_id=0x413", ExitCode.WRONG_CHIP, id="wrong-chip"),
])
def test_a_flash_failure_on_a_leased_board_counts_against_its_health(
        fault: str, code: int, tmp_path: Path, capsys, monkeypatch):
    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards:\n"
                    "  - {id: f4-x, board: nucleo-f4, probe: 'hilsim:f4-x', emulator: qemu}\n")
    monkeypatch.setenv("HIL_RACK", str(rack))
    monkeypatch.setenv("HIL_SIM_FAULTS", fault)
    assert main(["flash", "--board", "nucleo-f4", "blinky"]) == code, capsys.readouterr().err
    with lease_store(load_rack()) as store:
        assert store.health()["f4-x"].failures == 1
        assert store.leases() == {}
    monkeypatch.delenv("HIL_SIM_FAULTS")
    assert main(["flash", "--board", "nucleo-f4", "blinky"]) == 0, capsys.readouterr().err
    with lease_store(load_rack()) as store:
        assert store.health()["f4-x"].failures == 0
