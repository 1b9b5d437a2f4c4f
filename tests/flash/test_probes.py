"""Choosing the probe (never guessing), hil probes, and failing fast when there is none."""

from __future__ import annotations

import json
import time

import pytest

from hil.cli import main
from hil.errors import ExitCode


def test_image_outside_flash_is_refused_before_touching_the_probe(images, rack, capsys):
    # The rack's lm3s6965evb entry names an ST-LINK that is not connected.
    started = time.monotonic()
    code = main(["flash", "--board", "lm3s6965evb", "--image", str(images.base)])
    elapsed = time.monotonic() - started
    _, err = capsys.readouterr()
    # The image does not fit lm3s6965evb's flash: that is found before any probe is touched.
    assert code == ExitCode.BUILD_FAILED, err
    assert "not inside a flash region" in err
    assert elapsed < 10


def test_no_probe_for_board_names_probe_looked_for_and_probes_found(images, tmp_path, rack,
                                                                     capsys, monkeypatch):
    real = tmp_path / "real.yaml"
    real.write_text(rack.read_text().replace(
        "{id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a', emulator: qemu}",
        "{id: bench-1, board: nucleo-f4, probe: 'stlink:066DFF485550755187121723'}"))
    monkeypatch.setenv("HIL_RACK", str(real))
    started = time.monotonic()
    code = main(["flash", "--board", "nucleo-f4", "--image", str(images.base)])
    elapsed = time.monotonic() - started
    _, err = capsys.readouterr()
    assert code == ExitCode.NO_PROBE, err
    assert "stlink:066DFF485550755187121723" in err  # the probe it looked for
    assert "hilsim:f446-a (nucleo-f446re)" in err  # the probes it found
    assert elapsed < 10


def test_no_rack_and_no_probe(images, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty.yaml"
    empty.write_text("schema: 1\nboards: []\n")
    monkeypatch.setenv("HIL_RACK", str(empty))
    started = time.monotonic()
    code = main(["flash", "--board", "nucleo-f4", "--image", str(images.base)])
    _, err = capsys.readouterr()
    assert code == ExitCode.NO_PROBE
    assert "no probe for board nucleo-f4" in err
    assert "connected probes: none" in err
    assert time.monotonic() - started < 10


def test_explicit_probe_that_does_not_exist(images, rack, capsys):
    code = main(["flash", "--board", "nucleo-f4", "--probe", "stlink:DEADBEEF",
                 "--image", str(images.base)])
    _, err = capsys.readouterr()
    assert code == ExitCode.NO_PROBE
    assert "probe stlink:DEADBEEF for board nucleo-f4 not found" in err
    assert "hilsim:f4-a" in err


def test_board_rack_entry_picks_probe(images, rack, capsys):
    code = main(["flash", "--board", "nucleo-f446re", "--image", str(images.base), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["probe"] == "hilsim:f446-a" and report["rack_entry"] == "f446-a"
    assert int(report["chip_id"], 16) & 0xFFF == 0x421


def test_two_rack_entries_for_a_board_lease_a_free_one(images, capsys):
    # The shipped rack.yaml has two virtual nucleo-f4 boards: hil flash leases a free one
    # instead of guessing, and waits (here: not at all) when both are taken.
    from hil.rack import lease_store, load_rack

    assert main(["flash", "--board", "nucleo-f4", "--image", str(images.base), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["rack_entry"] in ("f4-a", "f4-b")
    with lease_store(load_rack()) as store:
        held = store.acquire([first["rack_entry"]], ttl=60)
        assert main(["flash", "--board", "nucleo-f4", "--image", str(images.base),
                     "--json"]) == 0
        other = json.loads(capsys.readouterr().out)
        assert other["rack_entry"] != first["rack_entry"]
        second = store.acquire(["f4-a", "f4-b"], ttl=60)
        code = main(["flash", "--board", "nucleo-f4", "--image", str(images.base),
                     "--wait", "0"])
        _, err = capsys.readouterr()
        assert code == ExitCode.LEASE_TIMEOUT
        assert "no free board among f4-a, f4-b" in err
        store.release(held.token)
        store.release(second.token)


def test_wrong_board_for_a_rack_probe_is_refused(images, rack, capsys):
    code = main(["flash", "--board", "nucleo-f446re", "--probe", "hilsim:f4-a",
                 "--image", str(images.base)])
    _, err = capsys.readouterr()
    assert code == ExitCode.WRONG_CHIP
    assert "0x431" in err and "0x421" in err


def test_pyocd_server_down_is_no_probe(images, rack, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["flash", "--board", "nucleo-f4", "--probe", f"remote:127.0.0.1:{port}",
                 "--image", str(images.base)])
    _, err = capsys.readouterr()
    assert code == ExitCode.NO_PROBE
    assert f"127.0.0.1:{port} is not reachable" in err


def test_hil_probes_lists_simulated_probes_with_rack_entries(rack, capsys):
    assert main(["probes"]) == 0
    out, _ = capsys.readouterr()
    assert "UNIQUE ID" in out and "RACK ENTRY" in out
    line = next(line for line in out.splitlines() if line.startswith("hilsim:f4-a"))
    assert "nucleo-f4" in line and line.rstrip().endswith("f4-a")
    assert main(["probes", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr()[0].splitlines()]
    by_id = {r["unique_id"]: r for r in rows}
    assert by_id["hilsim:f446-a"] == {
        "unique_id": "hilsim:f446-a", "vendor": "hil",
        "product": "simulated SWD probe (nucleo-f446re)", "board": "nucleo-f446re",
        "target": "hil_nucleo_f446re", "rack_entry": "f446-a"}


def test_bad_rack_file_is_a_config_error(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "rack.yaml"
    bad.write_text("schema: 1\nboards:\n  - {id: x, board: nucleo-f5, probe: 'hilsim:x'}\n")
    monkeypatch.setenv("HIL_RACK", str(bad))
    assert main(["probes"]) == ExitCode.USAGE
    err = capsys.readouterr()[1]
    assert "boards[0].board" in err and "nucleo-f5" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("  - {id: a, board: nucleo-f4, probe: 'hilsim:a'}\n"
                     "  - {id: a, board: nucleo-f4, probe: 'hilsim:b'}\n",
                     "duplicate rack entry id 'a'", id="duplicate-id"),
        pytest.param("  - {id: a, board: nucleo-f4, probe: 'hilsim:a'}\n"
                     "  - {id: b, board: nucleo-f4, probe: 'hilsim:a'}\n",
                     "already used by rack entry 'a'", id="shared-probe"),
        pytest.param("  - {id: a, board: nucleo-f4, probe: 'hilsim:a', emulatr: qemu}\n",
                     "unknown key", id="typo-key"),
    ],
)
def test_rack_validation(text, message, tmp_path):
    from hil.errors import ConfigError
    from hil.rack.inventory import load_rack

    path = tmp_path / "rack.yaml"
    path.write_text("schema: 1\nboards:\n" + text)
    with pytest.raises(ConfigError, match=message):
        load_rack(path)


def test_shipped_rack_has_the_virtual_boards():
    from hil.rack.inventory import default_rack_path, load_rack

    rack = load_rack(default_rack_path())
    virtual = {(e.id, e.board, str(e.probe)) for e in rack.entries if e.is_virtual}
    assert ("f4-a", "nucleo-f4", "hilsim:f4-a") in virtual
    assert ("f4-b", "nucleo-f4", "hilsim:f4-b") in virtual
    assert any(e.board == "hifive1-revb" for e in rack.entries if e.is_virtual)
