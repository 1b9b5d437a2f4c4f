"""Board files: the shipped boards load, and every invalid file is rejected with the file,
the key and a fix, never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from hil.boards import BoardCatalog, load_board, load_board_file
from hil.catalog import BOARDS_DIR
from hil.cli import main
from hil.errors import ConfigError

BASE = yaml.safe_load((BOARDS_DIR / "nucleo-f4.yaml").read_text())


def write_board(directory: Path, data: dict, name: str = "board.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def mutate(change) -> dict:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def test_shipped_boards_load_with_the_vendor_memory_maps():
    f4 = load_board("nucleo-f4")
    assert f4.triple == "thumbv7em-none-eabihf"
    flash = f4.app_region
    assert (flash.origin, flash.length) == (0x08000000, 512 * 1024)
    assert [s.size // 1024 for s in flash.sectors] == [16, 16, 16, 16, 64, 128, 128, 128]
    assert flash.sectors[5].start == 0x08020000
    assert (f4.ram_region.origin, f4.ram_region.length) == (0x20000000, 128 * 1024)
    assert f4.console.base == 0x40004400 and f4.console.qemu_serial == 1
    assert f4.flash.chip_id.value == 0x431
    assert load_board("nucleo-f446re").flash.chip_id.value == 0x421
    assert load_board("nucleo-f411re") is f4 or load_board("nucleo-f411re") == f4  # alias

    hifive = load_board("hifive1-revb")
    assert hifive.app_start == 0x20010000 and hifive.arch == "riscv"
    assert (hifive.ram_region.origin, hifive.ram_region.length) == (0x80000000, 16 * 1024)
    assert hifive.flash.tool == "openocd"

    lm3s = load_board("lm3s6965evb")
    assert (lm3s.app_region.origin, lm3s.app_region.length) == (0, 256 * 1024)
    assert lm3s.console.driver == "pl011" and lm3s.console.base == 0x4000C000


INVALID = [
    pytest.param(lambda d: d.update(colour="red"), "colour: unknown key", id="unknown-key"),
    pytest.param(lambda d: d["target"].update(cpuu="x"), "target.cpuu: unknown key",
                 id="unknown-nested-key"),
    pytest.param(lambda d: d["console"].update(baud="fast"),
                 "console.baud: expected an integer, got a string", id="wrong-type"),
    pytest.param(lambda d: d["memory"][1].update(origin=0x08070000),
                 "overlaps region FLASH", id="overlapping-regions"),
    pytest.param(lambda d: d["memory"][0].update(app_start=0x08080000),
                 "application start 0x08080000 is outside flash region FLASH",
                 id="app-start-outside-flash"),
    pytest.param(lambda d: d["memory"][1].update(origin=0xFFFF0000),
                 "wraps past 4 GiB", id="region-wraps"),
    pytest.param(lambda d: d["memory"][0]["sectors"].pop(),
                 "sectors of region FLASH add up to 131072 bytes", id="sectors-short"),
    pytest.param(lambda d: d["target"].update(triple="thumbv8m-none-eabi"),
                 "target.triple: 'thumbv8m-none-eabi' is not one of", id="unknown-triple"),
    pytest.param(lambda d: d["memory"][0].update(origin="flash"),
                 "memory[0].origin: expected an address", id="bad-address"),
    pytest.param(lambda d: d.pop("console"), "console: is required", id="missing-console"),
    pytest.param(lambda d: d["console"].update(driver="stm32-uart"),
                 "did you mean 'stm32-usart'", id="typo-suggests-fix"),
    pytest.param(lambda d: d.update(schema=2), "unsupported board schema version 2",
                 id="schema-version"),
]


@pytest.mark.parametrize("change, message", INVALID)
def test_invalid_board_is_rejected_with_file_key_and_message(tmp_path, change, message):
    path = write_board(tmp_path, mutate(change))
    with pytest.raises(ConfigError) as err:
        load_board_file(path)
    text = str(err.value)
    assert str(path) in text
    assert message in text


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("schema: 1\nname: x\n  bad: indent\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: invalid YAML at line 3"):
        load_board_file(path)


def test_a_project_board_replaces_the_built_in_one_of_that_name(tmp_path, monkeypatch):
    write_board(tmp_path, mutate(lambda d: d.update(description="our F411")), "copy.yaml")
    monkeypatch.setenv("HIL_BOARDS_PATH", str(tmp_path))
    board = BoardCatalog().get("nucleo-f4")
    assert board.description == "our F411" and board.path == tmp_path / "copy.yaml"
    assert BoardCatalog().get("nucleo-f411re").path == tmp_path / "copy.yaml"  # its alias


def test_duplicate_board_names_in_one_directory(tmp_path, monkeypatch):
    write_board(tmp_path, mutate(lambda d: d.update(aliases=[])), "a.yaml")
    write_board(tmp_path, mutate(lambda d: d.update(aliases=[])), "b.yaml")
    monkeypatch.setenv("HIL_BOARDS_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="board name 'nucleo-f4' is already defined in"):
        BoardCatalog().get("nucleo-f4")


def test_hil_boards_path_adds_a_team_board(tmp_path, monkeypatch):
    write_board(tmp_path, mutate(lambda d: d.update(name="team-f4", aliases=[])))
    monkeypatch.setenv("HIL_BOARDS_PATH", f"{tmp_path}:/nonexistent")
    board = BoardCatalog().get("team-f4")
    assert board.path == tmp_path / "board.yaml"


def test_unknown_board_suggests_the_closest(capsys):
    assert main(["boards", "nucleo-f5"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'nucleo-f5'" in err and "did you mean" in err
    assert "Traceback" not in err


def test_cli_reports_invalid_board_file_without_traceback(tmp_path, monkeypatch, capsys):
    write_board(tmp_path, mutate(lambda d: (d.update(name="bad", aliases=[]),
                                            d["memory"][1].update(origin=0x08000000))))
    monkeypatch.setenv("HIL_BOARDS_PATH", str(tmp_path))
    assert main(["boards"]) == 2
    err = capsys.readouterr().err
    assert "board.yaml: memory[" in err and "overlaps" in err and "hint:" in err
    assert "Traceback" not in err
