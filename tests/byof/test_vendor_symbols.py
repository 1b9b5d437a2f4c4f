"""The generated linker scripts define the symbols vendor startup files expect."""

from __future__ import annotations

from pathlib import Path

import yaml

from hil.boards import load_board, load_board_file
from hil.catalog import BOARDS_DIR
from hil.linker import render

CUBE = ("_estack", "_sidata", "_sdata", "_edata", "_sbss", "_ebss")
CMSIS = ("__StackTop", "__StackLimit", "__data_start__", "__data_end__", "__bss_start__",
         "__bss_end__", "__etext")


def test_cortex_m_script_defines_cube_and_cmsis_names_and_keeps_both_vector_sections() -> None:
    script = render(load_board("nucleo-f4"))
    for name in (*CUBE, *CMSIS):
        assert f"{name} = " in script, name
    text = script[script.index(".text :"):]
    first = text[:text.index("*(.text")]
    assert "KEEP(*(.isr_vector))" in first and "KEEP(*(.vectors))" in first
    assert "ccmram" not in script  # the F411 has no CCM RAM


def test_a_second_ram_region_gets_a_cube_style_section(tmp_path: Path) -> None:
    data = yaml.safe_load((BOARDS_DIR / "nucleo-f4.yaml").read_text())
    data["name"] = "f4-ccm"
    data.pop("aliases")
    data["memory"].append({"name": "CCMRAM", "kind": "ram", "origin": 0x10000000,
                           "length": "64K"})
    path = tmp_path / "f4-ccm.yaml"
    path.write_text(yaml.safe_dump(data))
    script = render(load_board_file(path))
    section = script[script.index(".ccmram :"):]
    assert "_sccmram = ." in section and "_eccmram = ." in section
    assert "} > CCMRAM AT > FLASH" in section
    assert "_siccmram = LOADADDR(.ccmram);" in section


def test_riscv_script_defines_cmsis_names_too() -> None:
    script = render(load_board("hifive1-revb"))
    for name in CMSIS:
        assert f"{name} = " in script, name
