"""Injected faults: each gives its documented error and exit code, and nothing reports success."""

from __future__ import annotations

import json

import pytest

from hil.cli import main
from hil.errors import ExitCode
from hil.flash.sim.faults import Faults, parse_faults
from hil.flash.sim.store import SimFlashStore


def flash(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-a", "--json", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("fault", "code", "message"),
    [
        pytest.param("erase@0x08004000", ExitCode.FLASH_FAILED,
                     "failed at 0x08004000", id="erase-failure-names-sector"),
        pytest.param("program@0x08010010", ExitCode.FLASH_FAILED,
                     "failed at 0x08010000", id="program-failure-names-page"),
        pytest.param("corrupt@0x08008123", ExitCode.VERIFY_FAILED,
                     "first difference at 0x08008123", id="stuck-cell-fails-verify"),
        pytest.param("wrp=1", ExitCode.FLASH_FAILED,
                     "failed at 0x08004000", id="write-protected-sector-refuses-erase"),
        pytest.param("disconnect_after=3000", ExitCode.PROBE_LOST,
                     "probe lost", id="probe-disconnects-mid-flash"),
        pytest.param("device_id=0x413", ExitCode.WRONG_CHIP,
                     "device id 0x413", id="wrong-chip-refused"),
    ],
)
def test_fault_gives_its_error_and_exit_code(fault, code, message, images, rack, capsys,
                                             monkeypatch):
    monkeypatch.setenv("HIL_SIM_FAULTS", fault)
    got, out, err = flash(capsys, "--image", str(images.base))
    assert got == code, err
    assert out == ""  # no report, nothing says "flashed"
    assert "verify passed" not in err and "to nucleo-f4 via" not in err
    assert message in err
    assert "hil: error:" in err


def test_wrong_chip_is_refused_before_any_flash_write(images, rack, capsys, monkeypatch):
    monkeypatch.setenv("HIL_SIM_FAULTS", "device_id=0x413")
    assert flash(capsys, "--image", str(images.base))[0] == ExitCode.WRONG_CHIP
    with pytest.raises(Exception, match="never been flashed"):
        SimFlashStore.open("f4-a")


def test_fault_for_another_probe_does_not_apply(images, rack, capsys, monkeypatch):
    monkeypatch.setenv("HIL_SIM_FAULTS", "f4-b:erase@0x08000000")
    code, out, err = flash(capsys, "--image", str(images.base))
    assert code == 0, err
    assert json.loads(out)["verified"] is True


def test_rack_entry_faults(images, tmp_path, capsys, monkeypatch):
    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards:\n"
                    "  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a',"
                    " sim_faults: 'program@0x08000000'}\n")
    monkeypatch.setenv("HIL_RACK", str(rack))
    code, _, err = flash(capsys, "--image", str(images.base))
    assert code == ExitCode.FLASH_FAILED
    assert "0x08000000" in err


def test_slow_clock_still_flashes_correctly(images, rack, capsys, monkeypatch):
    monkeypatch.setenv("HIL_SIM_FAULTS", "slow=0.002")
    code, out, err = flash(capsys, "--image", str(images.base))
    assert code == 0, err
    assert json.loads(out)["verified"] is True


def test_slow_clock_past_pyocd_timeout_is_a_flash_failure(images, rack):
    import os

    from hil.boards import load_board
    from hil.errors import FlashProgramError
    from hil.flash.pyocd import PyOCDFlasher

    os.environ["HIL_SIM_FAULTS"] = "slow=0.6"
    try:
        flasher = PyOCDFlasher(load_board("nucleo-f4"), "hilsim:f4-a",
                               timeouts={"erase_sector": 0.2, "program": 0.2, "init": 5.0,
                                         "analyzer": 5.0})
        with pytest.raises(FlashProgramError, match="timed out"):
            flasher.flash(images.base)
    finally:
        del os.environ["HIL_SIM_FAULTS"]


def test_partial_program_failure_leaves_flash_not_matching(images, rack, capsys, monkeypatch):
    monkeypatch.setenv("HIL_SIM_FAULTS", "program@0x08010010")
    flash(capsys, "--image", str(images.base))
    monkeypatch.delenv("HIL_SIM_FAULTS")
    # A later good flash repairs it: only what differs is rewritten.
    code, out, _ = flash(capsys, "--image", str(images.base))
    assert code == 0
    assert json.loads(out)["erased_sectors"] >= 1


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("erase@0x08004000,slow", Faults(erase_at=(0x08004000,), slow=0.05),
                     id="erase-and-default-slow"),
        pytest.param("f4-a:device_id=0x413, f4-b:program@0x10", Faults(device_id=0x413),
                     id="prefix-selects-probe"),
        pytest.param("wrp=4, wrp=0,locked", Faults(wrp=(4, 0), locked=True),
                     id="write-protection-and-lock"),
        pytest.param("disconnect_after=10,corrupt@16", Faults(corrupt_at=(16,),
                                                              disconnect_after=10),
                     id="count-and-corrupt"),
    ],
)
def test_parse_faults(spec, expected):
    assert parse_faults(spec, "f4-a") == expected


def test_unknown_fault_is_a_config_error():
    from hil.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown fault 'explode'"):
        parse_faults("explode", "f4-a")


def test_probe_held_by_another_process_is_busy(images, rack, capsys):
    import fcntl

    from hil.flash.sim.store import sim_dir

    sim_dir().mkdir(parents=True, exist_ok=True)
    with open(sim_dir() / "f4-a.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242")
        held.flush()
        code, out, err = flash(capsys, "--image", str(images.base))
    assert code == ExitCode.PROBE_LOST
    assert "busy" in err and "pid 4242" in err
    assert out == ""
    code, out, err = flash(capsys, "--image", str(images.base))  # released: works again
    assert code == 0, err


def test_failed_flash_is_recorded_as_not_ok(images, rack, capsys, monkeypatch):
    from hil.audit.store import open_store
    from hil.fsutil import sha256_file

    monkeypatch.setenv("HIL_SIM_FAULTS", "erase@0x08000000")
    assert flash(capsys, "--image", str(images.base))[0] == ExitCode.FLASH_FAILED
    with open_store(None) as store:
        records = [r for r in store.for_image(sha256_file(images.base)) if r.kind == "flash"]
    assert len(records) == 1
    assert records[0].payload["ok"] is False and records[0].payload["verified"] is False
    assert "0x08000000" in records[0].payload["error"]
