"""hil export cmake: a CMake toolchain file, linker script and hil_board.h for a board."""

from __future__ import annotations

import argparse
from pathlib import Path

from hil.boards import BoardCatalog
from hil.cmake_export import export
from hil.toolchain import TOOLCHAINS, for_board

NAME = "export"
HELP = "export a board for your own build system (CMake toolchain file)"
DESCRIPTION = """\
Write what a team's own build needs to build for a board with the toolchain hil resolved:
DIR/toolchain.cmake (the exact compilers, by absolute path; CMAKE_SYSTEM_NAME Generic; the
board's CPU/FPU/ABI flags; -ffunction-sections -fdata-sections; links executables with
-T DIR/firmware.ld -nostartfiles --gc-sections unless the project sets HIL_LINKER_SCRIPT;
board facts as HIL_BOARD, HIL_FLASH_ORIGIN, HIL_RAM_ORIGIN, ... variables), DIR/firmware.ld
(the board's linker script; it defines the STM32Cube and CMSIS GCC startup symbols) and
DIR/hil_board.h (on the include path).

examples:
  hil export cmake --board nucleo-f4 --out build/export
  cmake -S fw -B build/fw -G Ninja -DCMAKE_TOOLCHAIN_FILE=build/export/toolchain.cmake
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=("cmake",), help="what to export: cmake")
    p.add_argument("--board", "-b", required=True, help="board name or alias")
    p.add_argument("--toolchain", "-t", choices=TOOLCHAINS, default="gcc",
                   help="gcc (default) or clang")
    p.add_argument("--out", type=Path, required=True, help="directory to write into")


def run(args: argparse.Namespace) -> int:
    board = BoardCatalog().get(args.board)
    exported = export(board, for_board(board, args.toolchain), args.out)
    print(exported.toolchain_file)
    return 0
