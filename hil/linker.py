"""Render a board's linker script from the templates in linker/.

Every address comes from the board model; the templates hold layout only. The MEMORY
block is generated, so a board's memory map is written once, in its board file.
"""

from __future__ import annotations

import string
from pathlib import Path

from hil import __version__
from hil.boards import Board
from hil.catalog import LINKER_DIR
from hil.errors import ConfigError

TEMPLATE_DIR = LINKER_DIR
TEMPLATES = {"arm": "cortex-m.ld.in", "riscv": "riscv.ld.in"}


def memory_block(board: Board) -> str:
    """The MEMORY lines: every region; the code region starts at the application start."""
    lines = []
    for region in board.regions:
        origin = region.origin
        length = region.length
        if region is board.app_region:
            origin = board.app_start
            length = region.end - origin
        lines.append(
            f"    {region.name} ({region.access}) : ORIGIN = 0x{origin:08X}, "
            f"LENGTH = 0x{length:X}"
        )
    return "\n".join(lines)


def extra_ram_sections(board: Board) -> str:
    """Sections for the RAM regions besides the main one, STM32Cube style: region CCMRAM
    gets section .ccmram, loaded from the code region, with _siccmram, _sccmram and
    _eccmram for the startup code to copy it. Empty when the board has one RAM region."""
    blocks = []
    for region in board.regions:
        if region.kind != "ram" or region is board.ram_region:
            continue
        name = region.name.lower()
        blocks.append(
            f"    .{name} :\n    {{\n        . = ALIGN(4);\n        _s{name} = .;\n"
            f"        *(.{name} .{name}.*)\n        . = ALIGN(4);\n        _e{name} = .;\n"
            f"    }} > {region.name} AT > {board.app_region.name}\n"
            f"    _si{name} = LOADADDR(.{name});")
    return "\n\n".join(blocks)


def render(board: Board, *, stack_size: int | None = None, heap_size: int | None = None,
           template_dir: Path | None = None) -> str:
    """Return the linker script text for ``board`` (stack/heap default to the board's)."""
    template_path = (template_dir or TEMPLATE_DIR) / TEMPLATES[board.arch]
    try:
        template = string.Template(template_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read linker template: {exc.strerror}",
                          path=template_path) from exc
    board_file = board.path.name if board.path else board.name
    values = {
        "board": board.name,
        "description": board.description,
        "board_file": board_file,
        "hil_version": __version__,
        "memory": memory_block(board),
        "extra_ram_sections": extra_ram_sections(board),
        "code": board.app_region.name,
        "ram": board.ram_region.name,
        "stack_size": f"0x{(stack_size if stack_size is not None else board.stack_size):X}",
        "heap_size": f"0x{(heap_size if heap_size is not None else board.heap_size):X}",
    }
    try:
        return template.substitute(values)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"template uses an unknown placeholder {exc}", path=template_path,
                          hint=f"known placeholders: {', '.join(sorted(values))}") from exc
