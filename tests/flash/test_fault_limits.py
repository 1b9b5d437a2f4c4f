"""Numbers in a fault spec (HIL_SIM_FAULTS, a rack entry's sim_faults) are finite and in
range, or a usage error naming the item and the range, before any probe is touched."""

from __future__ import annotations

import pytest

from hil.cli import main
from hil.errors import ConfigError, ExitCode
from hil.flash.sim.faults import parse_faults
from hil.rack import load_rack

BAD = [
    pytest.param("slow=nan", "the delay of 'slow' must be 0..600 seconds", id="slow-nan"),
    pytest.param("slow=-1", "the delay of 'slow' must be 0..600 seconds", id="slow-negative"),
    pytest.param("slow=inf", "the delay of 'slow' must be 0..600 seconds", id="slow-inf"),
    pytest.param("slow=1e300", "the delay of 'slow' must be 0..600 seconds", id="slow-huge"),
    pytest.param("disconnect_after=-3", "'disconnect_after' must be 0..4294967295",
                 id="disconnect-negative"),
    pytest.param("disconnect_after=1e300", "'disconnect_after' must be 0..4294967295",
                 id="disconnect-huge"),
    pytest.param("disconnect_after=2.5", "not a whole number", id="disconnect-fraction"),
    pytest.param("erase@0x108000000", "an address must be 0..4294967295",
                 id="address-beyond-32-bits"),
    pytest.param("corrupt@-16", "an address must be 0..4294967295", id="address-negative"),
    pytest.param("wrp=12", "a sector number must be 0..11", id="wrp-beyond-option-bytes"),
    pytest.param("wrp=-1", "a sector number must be 0..11", id="wrp-negative"),
    pytest.param("device_id=0x1ffffffff", "a device id must be 0..4294967295",
                 id="device-id-beyond-32-bits"),
]


@pytest.mark.parametrize("spec, message", BAD)
def test_fault_numbers_out_of_range_name_the_item(spec, message):
    with pytest.raises(ConfigError) as err:
        parse_faults(spec, "f4-a")
    text = str(err.value)
    assert text.startswith(f"HIL_SIM_FAULTS: fault '{spec}'") and message in text


def test_fault_numbers_in_range_still_parse():
    faults = parse_faults("slow=600,disconnect_after=0,corrupt@0xffffffff,device_id=0", "f4-a")
    assert (faults.slow, faults.disconnect_after, faults.corrupt_at, faults.device_id) == \
        (600.0, 0, (0xFFFFFFFF,), 0)


@pytest.mark.parametrize("spec", ["slow=nan", "f4-a:disconnect_after=-3"])
def test_hil_flash_refuses_a_bad_fault_number_before_the_probe(spec, monkeypatch, capsys,
                                                               _isolated_state, tmp_path):
    monkeypatch.setenv("HIL_SIM_FAULTS", spec)
    image = tmp_path / "x.bin"
    image.write_bytes(b"\x00" * 64)
    code = main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-a", "--image",
                 str(image)])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE, err
    assert f"HIL_SIM_FAULTS: fault '{spec.split(':')[-1]}'" in err and "Traceback" not in err
    assert not (_isolated_state / "simflash").exists()  # the probe was never opened


def test_rack_sim_faults_numbers_are_checked(tmp_path):
    path = tmp_path / "rack.yaml"
    path.write_text("schema: 1\nboards:\n  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a',"
                    " sim_faults: 'slow=nan'}\n")
    with pytest.raises(ConfigError) as err:
        load_rack(path)
    assert str(err.value).startswith(f"{path}: boards[0].sim_faults: fault 'slow=nan'")
