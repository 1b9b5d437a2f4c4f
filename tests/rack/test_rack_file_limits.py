"""Rack entries name files (simulated flash, console links): their probe names and ids
follow a safe pattern, and a remote probe names a real port."""

from __future__ import annotations

import pytest

from hil.cli import main
from hil.errors import ConfigError, ExitCode
from hil.rack import load_rack

BAD = [
    pytest.param("{id: a, board: nucleo-f4, probe: 'hilsim:../x'}", "boards[0].probe",
                 "'../x' is not a valid simulated probe name", id="sim-name-traversal"),
    pytest.param("{id: a, board: nucleo-f4, probe: 'hilsim:'}", "boards[0].probe",
                 "'' is not a valid simulated probe name", id="sim-name-empty"),
    pytest.param("{id: a, board: nucleo-f4, probe: 'HILSIM:/etc/x'}", "boards[0].probe",
                 "'/etc/x' is not a valid simulated probe name", id="sim-name-absolute"),
    pytest.param("{id: a, board: nucleo-f4, probe: \"hilsim:f4\\n\"}", "boards[0].probe",
                 "is not a valid simulated probe name", id="sim-name-newline"),
    pytest.param("{id: '..', board: nucleo-f4, probe: 'hilsim:a'}", "boards[0].id",
                 "'..' is not a valid rack entry id", id="id-dot-dot"),
    pytest.param("{id: a, board: nucleo-f4, probe: 'remote:host:0'}", "boards[0].probe",
                 "a TCP port must be 1..65535", id="remote-port-zero"),
    pytest.param("{id: a, board: nucleo-f4, probe: 'remote:host:99999'}", "boards[0].probe",
                 "a TCP port must be 1..65535", id="remote-port-huge"),
    pytest.param("{id: a, board: nucleo-f4, probe: 'remote:host'}", "boards[0].probe",
                 "'host' is not a number", id="remote-no-port"),
    pytest.param("{id: a, board: nucleo-f4, probe: 'remote::5555'}", "boards[0].probe",
                 "names no host", id="remote-no-host"),
    pytest.param("{id: a, board: nucleo-f4, probe: 'hilsim:a', "
                 "sim_faults: 'disconnect_after=-3'}", "boards[0].sim_faults",
                 "'disconnect_after' must be 0..4294967295", id="sim-faults-negative-count"),
]


@pytest.mark.parametrize("entry, key, message", BAD)
def test_unsafe_rack_entry_is_refused_with_the_pattern(tmp_path, entry, key, message):
    path = tmp_path / "rack.yaml"
    path.write_text(f"schema: 1\nboards:\n  - {entry}\n")
    with pytest.raises(ConfigError) as err:
        load_rack(path)
    assert str(err.value).startswith(f"{path}: {key}: ") and message in str(err.value)


def test_traversing_sim_probe_is_a_usage_error_in_rack_status(tmp_path, monkeypatch, capsys):
    path = tmp_path / "rack.yaml"
    path.write_text("schema: 1\nboards:\n  - {id: a, board: nucleo-f4, probe: 'hilsim:../x'}\n")
    monkeypatch.setenv("HIL_RACK", str(path))
    assert main(["rack", "status"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "boards[0].probe: '../x' is not a valid simulated probe name" in err
    assert "a letter or digit, then letters, digits, '.', '_' and '-'" in err


def test_good_remote_and_sim_probes_still_load(tmp_path):
    path = tmp_path / "rack.yaml"
    path.write_text("schema: 1\nboards:\n"
                    "  - {id: f4.a_1, board: nucleo-f4, probe: 'hilsim:f4.a_1'}\n"
                    "  - {id: r, board: nucleo-f4, probe: 'remote:[::1]:5555', "
                    "console: 'rfc2217://localhost:7001', emulator: qemu}\n")
    rack = load_rack(path)
    assert [str(e.probe) for e in rack.entries] == ["hilsim:f4.a_1", "remote:[::1]:5555"]


@pytest.mark.parametrize("probe", ["hilsim:../x", "hilsim:/tmp/x", "HILSIM:.hidden"])
def test_unsafe_sim_probe_on_the_command_line_is_a_usage_error(tmp_path, capsys, probe,
                                                               _isolated_state):
    from intelhex import IntelHex

    image = IntelHex()
    image.frombytes(b"\x00" * 16, offset=0x08000000)
    image.write_hex_file(str(tmp_path / "fw.hex"))
    code = main(["flash", "--board", "nucleo-f4", "--probe", probe, "--image",
                 str(tmp_path / "fw.hex")])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE, err
    assert f"--probe {probe}: " in err and "is not a valid simulated probe name" in err
    assert not (_isolated_state / "simflash").exists()
