"""A simulated probe served by a real ``pyocd server`` on loopback, flashed via ``remote:``."""

from __future__ import annotations

import json

from pyocdserver import pyocd_server

from hil.cli import main
from hil.flash.sim.store import SimFlashStore


def test_flash_through_pyocd_server_on_loopback(images, rack, tmp_path, capsys):
    with pyocd_server("hilsim:f4-a", tmp_path / "server.log") as port:
        probe = f"remote:127.0.0.1:{port}"
        code = main(["flash", "--board", "nucleo-f4", "--probe", probe,
                     "--image", str(images.base), "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        first = json.loads(out)
        assert first["verified"] is True and first["erased_sectors"] == 6
        assert int(first["chip_id"], 16) & 0xFFF == 0x431

        code = main(["flash", "--board", "nucleo-f4", "--probe", probe,
                     "--image", str(images.one_function), "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert json.loads(out)["erased_sectors"] == 1
    # The server process wrote the simulated flash; this process reads it.
    store = SimFlashStore.open("f4-a")
    from intelhex import IntelHex

    want = IntelHex(str(images.one_function))
    for start, end in want.segments():
        assert store.read(start, end - start) == want.tobinstr(start=start, size=end - start)


def test_server_process_learns_board_from_environment(images, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty.yaml"
    empty.write_text("schema: 1\nboards: []\n")
    monkeypatch.setenv("HIL_RACK", str(empty))
    monkeypatch.setenv("HIL_SIM_BOARDS", "served=nucleo-f446re")
    with pyocd_server("hilsim:served", tmp_path / "server.log") as port:
        code = main(["flash", "--board", "nucleo-f446re", "--probe",
                     f"remote:127.0.0.1:{port}", "--image", str(images.base), "--json"])
        _, err = capsys.readouterr()
        assert code == 0, err
    assert SimFlashStore.open("served").board_name == "nucleo-f446re"
