"""Export a board for a team's own build: a CMake toolchain file, the rendered linker script
and ``hil_board.h``, pinning the exact compilers hil resolved and fingerprinted."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hil.app import App
from hil.boards import Board
from hil.build import board_header, linker_script_text
from hil.fsutil import atomic_write
from hil.linker import render
from hil.toolchain import Toolchain

TOOLCHAIN_FILE = "toolchain.cmake"
LINKER_SCRIPT = "firmware.ld"
HEADER = "hil_board.h"
SECTION_FLAGS = ("-ffunction-sections", "-fdata-sections")


@dataclass(frozen=True)
class Exported:
    """What ``export`` wrote, and the flags a Make build gets the same way."""

    dir: Path
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    libs: tuple[str, ...]

    @property
    def toolchain_file(self) -> Path:
        return self.dir / TOOLCHAIN_FILE

    @property
    def linker_script(self) -> Path:
        return self.dir / LINKER_SCRIPT


def target_flags(tc: Toolchain) -> list[str]:
    """The CPU/FPU/ABI flags without clang's --target (CMake sets that itself)."""
    return [f for f in tc.cpu_flags if not f.startswith("--target=")]


def link_flags(tc: Toolchain) -> list[str]:
    flags = [*target_flags(tc), "-nostartfiles", "-nodefaultlibs", "-Wl,--gc-sections",
             "-Wl,--build-id=none"]
    if tc.name == "clang":
        flags += [f for f in tc.cpu_flags if f.startswith("--target=")]
        flags.append("-fuse-ld=lld")
    return flags


def _cmake_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _cxx(tc: Toolchain) -> str | None:
    """The C++ driver beside the C driver (arm-none-eabi-g++, clang++), if installed."""
    cc = Path(tc.cc)
    name = cc.name.replace("gcc", "g++") if tc.name == "gcc" else "clang++"
    found = shutil.which(name, path=str(cc.parent))
    return os.path.realpath(found) if found else None


def export(board: Board, tc: Toolchain, out: Path, *, app: App | None = None,
           extra_cflags: tuple[str, ...] = (), extra_ldflags: tuple[str, ...] = ()) -> Exported:
    """Write ``out/toolchain.cmake``, ``out/firmware.ld`` and ``out/hil_board.h``."""
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    script = linker_script_text(board, app) if app else render(board)
    atomic_write(out / LINKER_SCRIPT, script.encode())
    atomic_write(out / HEADER, board_header(board, app, tc).encode())
    cflags = (*target_flags(tc), *SECTION_FLAGS, f"-I{out}", *extra_cflags)
    ldflags = (*link_flags(tc), *extra_ldflags)
    libs = tuple(tc.link_libs)
    atomic_write(out / TOOLCHAIN_FILE, toolchain_file(board, tc, out, cflags, ldflags,
                                                      libs).encode())
    return Exported(out, cflags, ldflags, libs)


def toolchain_file(board: Board, tc: Toolchain, out: Path, cflags: tuple[str, ...],
                   ldflags: tuple[str, ...], libs: tuple[str, ...]) -> str:
    """The text of the CMake toolchain file."""
    flash, ram = board.app_region, board.ram_region
    clang_target = next((f.split("=", 1)[1] for f in tc.cpu_flags
                         if f.startswith("--target=")), None)
    cxx = _cxx(tc)
    lines = [
        f"# CMake toolchain file for {board.name} ({board.description}), written by",
        "# 'hil export cmake'. Do not edit: export again. The compilers are the ones hil",
        f"# resolved and fingerprinted (toolchain id {tc.id}).",
        "# Set HIL_LINKER_SCRIPT (with -D or in the top CMakeLists.txt) to link executables",
        "# with your own script instead of the generated one.",
        "set(CMAKE_SYSTEM_NAME Generic)",
        f"set(CMAKE_SYSTEM_PROCESSOR {'arm' if board.arch == 'arm' else 'riscv32'})",
        f"set(CMAKE_C_COMPILER {_cmake_str(tc.tool('cc').path)})",
        f"set(CMAKE_ASM_COMPILER {_cmake_str(tc.tool('cc').path)})",
        *([f"set(CMAKE_CXX_COMPILER {_cmake_str(cxx)})"] if cxx else []),
        *([f"set(CMAKE_{lang}_COMPILER_TARGET {clang_target})" for lang in ("C", "CXX", "ASM")]
          if clang_target else []),
        f"set(CMAKE_OBJCOPY {_cmake_str(tc.tool('objcopy').path)})",
        "set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
        "",
        "# board facts",
        f"set(HIL_BOARD {board.name})",
        f"set(HIL_ARCH {board.arch})",
        f"set(HIL_CPU {board.cpu})",
        f"set(HIL_CPU_CLOCK_HZ {board.cpu_clock_hz})",
        f"set(HIL_APP_START 0x{board.app_start:08X})",
        f"set(HIL_FLASH_ORIGIN 0x{flash.origin:08X})",
        f"set(HIL_FLASH_LENGTH 0x{flash.length:X})",
        f"set(HIL_RAM_ORIGIN 0x{ram.origin:08X})",
        f"set(HIL_RAM_LENGTH 0x{ram.length:X})",
        f"set(HIL_TOOLCHAIN {tc.name})",
        f"set(HIL_TOOLCHAIN_VERSION {tc.version})",
        f"set(HIL_TOOLCHAIN_ID {tc.id})",
        f"set(HIL_BOARD_INCLUDE_DIR {_cmake_str(str(out))})",
        f"set(HIL_GENERATED_LINKER_SCRIPT {_cmake_str(str(out / LINKER_SCRIPT))})",
        "",
        f"set(CMAKE_C_FLAGS_INIT {_cmake_str(' '.join(cflags))})",
        f"set(CMAKE_CXX_FLAGS_INIT {_cmake_str(' '.join(cflags))})",
        f"set(CMAKE_ASM_FLAGS_INIT {_cmake_str(' '.join(cflags))})",
        f"set(CMAKE_EXE_LINKER_FLAGS_INIT {_cmake_str(' '.join(ldflags))})",
        f"set(CMAKE_C_STANDARD_LIBRARIES {_cmake_str(' '.join(libs))})",
        f"set(CMAKE_CXX_STANDARD_LIBRARIES {_cmake_str(' '.join(libs))})",
        "",
        "# -T goes on every executable at the end of the top directory, so a project may set",
        "# HIL_LINKER_SCRIPT after project().",
        "function(_hil_executables dir out)",
        "  get_property(found DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)",
        "  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)",
        "  foreach(sub IN LISTS subdirs)",
        "    _hil_executables(${sub} more)",
        "    list(APPEND found ${more})",
        "  endforeach()",
        "  set(${out} ${found} PARENT_SCOPE)",
        "endfunction()",
        "function(_hil_apply_linker_script)",
        "  if(HIL_LINKER_SCRIPT)",
        "    get_filename_component(script ${HIL_LINKER_SCRIPT} ABSOLUTE)",
        "  else()",
        "    set(script ${HIL_GENERATED_LINKER_SCRIPT})",
        "  endif()",
        "  _hil_executables(${CMAKE_SOURCE_DIR} targets)",
        "  foreach(target IN LISTS targets)",
        "    get_property(type TARGET ${target} PROPERTY TYPE)",
        "    if(type STREQUAL \"EXECUTABLE\")",
        "      set_property(TARGET ${target} APPEND PROPERTY LINK_OPTIONS \"-T${script}\")",
        "      set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS \"${script}\")",
        "    endif()",
        "  endforeach()",
        "endfunction()",
        "get_property(_hil_deferred GLOBAL PROPERTY HIL_LINKER_SCRIPT_DEFERRED)",
        "if(NOT _hil_deferred AND NOT CMAKE_PROJECT_NAME STREQUAL \"CMAKE_TRY_COMPILE\")",
        "  set_property(GLOBAL PROPERTY HIL_LINKER_SCRIPT_DEFERRED TRUE)",
        "  cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _hil_apply_linker_script)",
        "endif()",
        "",
    ]
    return "\n".join(lines)
