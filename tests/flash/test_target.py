"""pyOCD targets built from board files, checked against pyOCD's own chip definitions."""

from __future__ import annotations

import pytest

from hil.boards import BoardCatalog, load_board
from hil.errors import ConfigError
from hil.flash import target

ARM_BOARDS = [b for b in BoardCatalog().all() if b.arch == "arm"]

# Boards whose chip pyOCD defines itself, or through a sibling with the same flash layout:
# board -> (pyOCD built-in target, why it is the reference).
REFERENCES = {
    "nucleo-f4": "stm32f412xe",  # 512K F4: 4x16K, 64K, 3x128K at 0x08000000 (RM0383 = RM0402)
    "nucleo-f446re": "stm32f412xe",  # same 512K F4 sector layout (RM0390)
}


def _sectors(board):
    return [(s.start, s.size) for r in board.flash_regions() for s in r.sectors]


@pytest.mark.parametrize("board", ARM_BOARDS, ids=lambda b: b.name)
def test_arm_board_memory_map_matches_pyocd_definition(board):
    from pyocd.core.memory_map import MemoryType
    from pyocd.target import TARGET

    reference = REFERENCES.get(board.name) or (target.family_for(board) and \
        target.family_for(board).sibling)
    if not reference:
        pytest.skip(f"pyOCD has no definition of {board.name}'s chip or a sibling")
    ref_map = TARGET[reference].MEMORY_MAP
    # Flash: every sector start and size as pyOCD's own target has them.
    assert _sectors(board) == target.sector_list(ref_map)
    # RAM starts where pyOCD's RAM does (sizes differ between siblings: F411 128K, F412 256K).
    ref_ram = [r for r in ref_map.regions if r.type == MemoryType.RAM]
    assert board.ram_region.origin == ref_ram[0].start
    assert board.ram_region.length <= ref_ram[0].length
    # The map hil hands pyOCD has the same sectors too.
    assert target.sector_list(target.memory_map(board)) == _sectors(board)


def test_a_typo_in_a_sector_size_is_caught(tmp_path):
    from hil.boards import load_board_file

    text = load_board("nucleo-f4").path.read_text()
    bad = tmp_path / "bad.yaml"
    # 16K x4 + 32K + 3x128K + 32K more: sums to 512K, so the board file is valid...
    bad.write_text(text.replace("name: nucleo-f4", "name: bad-f4")
                   .replace("aliases: [nucleo-f411re]", "aliases: []")
                   .replace("- {size: 64K, count: 1}", "- {size: 32K, count: 2}"))
    board = load_board_file(bad)
    # ...but not the chip pyOCD knows.
    assert _sectors(board) != target.sector_list(
        __import__("pyocd.target", fromlist=["TARGET"]).TARGET["stm32f412xe"].MEMORY_MAP)


def test_board_target_uses_pyocd_f4_algorithm_and_board_sectors():
    from pyocd.target import TARGET
    from pyocd.target.builtin import target_STM32F412xx

    board = load_board("nucleo-f4")
    name, options = target.register(board)
    assert name == "hil_nucleo_f4" and options == {}
    cls = TARGET[name]
    flash_regions = [r for r in cls.MEMORY_MAP.regions if r.is_flash]
    assert all(r.algo is target_STM32F412xx.FLASH_ALGO for r in flash_regions)
    assert [(r.start, r.length, r.sector_size) for r in flash_regions] == [
        (0x08000000, 0x10000, 0x4000), (0x08010000, 0x10000, 0x10000),
        (0x08020000, 0x60000, 0x20000)]
    assert flash_regions[0].is_boot_memory


def test_board_without_algorithm_is_a_config_error():
    with pytest.raises(ConfigError, match="no flash algorithm for family 'stellaris'"):
        target.register(load_board("lm3s6965evb"))


def test_builtin_target_name_is_used_when_the_board_names_one(tmp_path):
    from dataclasses import replace

    board = load_board("nucleo-f4")
    named = replace(board, flash=replace(board.flash, pyocd_target="STM32F412xE"))
    assert target.register(named) == ("stm32f412xe", {})
    missing = replace(board, flash=replace(board.flash, pyocd_target="stm32f411re"))
    with pytest.raises(ConfigError, match="no built-in target 'stm32f411re'"):
        target.register(missing)
    pack = replace(board, flash=replace(board.flash, pyocd_pack=str(tmp_path / "x.pack"),
                                        pyocd_target="stm32f411retx"))
    with pytest.raises(ConfigError, match="does not exist"):
        target.register(pack)
    (tmp_path / "x.pack").write_bytes(b"PK")
    assert target.register(pack) == ("stm32f411retx", {"pack": [str(tmp_path / "x.pack")]})
