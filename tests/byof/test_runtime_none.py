"""Apps with ``runtime: none`` bring their own startup and drivers; hil still renders the
linker script and hil_board.h, and its linker scripts define the vendor symbol names."""

from __future__ import annotations

from pathlib import Path

import pytest
from byofsupport import FW, boot_output, require
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from hil.app import load_app
from hil.boards import load_board
from hil.build import build
from hil.errors import BuildError, ConfigError

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("board_name", ["nucleo-f4", "lm3s6965evb"])
@pytest.mark.parametrize("toolchain", ["gcc", "clang"])
def test_cmsis_startup_app_builds_and_boots(board_name: str, toolchain: str,
                                             tmp_path: Path) -> None:
    board = load_board(board_name)
    require("arm-none-eabi-gcc", board.qemu.binary if board.qemu else "qemu",
            *(["clang", "ld.lld"] if toolchain == "clang" else []))
    result = build(board, FW / "cmsis_app", toolchain=toolchain, out=tmp_path / "out")
    # only the app's own code: none of hil's runtime is linked in
    symbols = _symbols(result.elf)
    assert "hil_runtime_init" not in symbols and "Reset_Handler" in symbols
    assert symbols["vectors"] == board.app_start  # .vectors is kept first
    out = boot_output(board, result.hex, r"cmsis-startup .*\n", tmp_path / "qemu")
    assert f"cmsis-startup on {board_name}: data=ok bss=ok stack=4096" in out
    assert (result.out_dir / "hil_board.h").read_text().count(board_name) == 1
    assert result.record["artifacts"]["hex"]["sha256"]


def _symbols(elf: Path) -> dict[str, int]:
    with open(elf, "rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(table, SymbolTableSection)
        return {s.name: s["st_value"] for s in table.iter_symbols()}


def _write_app(directory: Path, manifest: str, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True)
    (directory / "app.yaml").write_text(manifest)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_own_linker_script_is_used_and_checked_against_the_board(tmp_path: Path) -> None:
    require("arm-none-eabi-gcc")
    board = load_board("nucleo-f4")
    ld = """MEMORY { ROM (rx) : ORIGIN = 0x%08X, LENGTH = 64K
                RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 16K }
ENTRY(Reset_Handler)
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text .text.*) *(.rodata .rodata.*) } > ROM
  .data : { __data_start__ = .; *(.data .data.*) __data_end__ = .; } > RAM AT > ROM
  __etext = LOADADDR(.data);
  .bss (NOLOAD) : { __bss_start__ = .; *(.bss .bss.*) *(COMMON) __bss_end__ = .; } > RAM
  __StackLimit = 0x20003000; __StackTop = 0x20004000;
}
"""
    sources = {p.name: p.read_text() for p in (FW / "cmsis_app").glob("*.c")}
    sources["uart.c"] = (FW / "common" / "uart.c").read_text()
    sources["uart.h"] = (FW / "common" / "uart.h").read_text()
    good = _write_app(tmp_path / "good", "runtime: none\nlinker_script: app.ld\n",
                      {**sources, "app.ld": ld % 0x08000000})
    result = build(board, good, out=tmp_path / "good-out")
    assert result.linker_script.read_text() == ld % 0x08000000
    out = boot_output(board, result.hex, r"cmsis-startup .*\n", tmp_path / "qemu")
    assert "data=ok bss=ok stack=4096" in out

    wrong = _write_app(tmp_path / "wrong", "runtime: none\nlinker_script: app.ld\n",
                       {**sources, "app.ld": ld % 0x00200000})
    with pytest.raises(BuildError, match=r"0x0020"):
        build(board, wrong, out=tmp_path / "wrong-out")
    assert not (tmp_path / "wrong-out" / "firmware.hex").exists()


@pytest.mark.parametrize(("manifest", "key"), [
    pytest.param("runtime: bare\n", "runtime", id="unknown-runtime"),
    pytest.param("linker_script: missing.ld\n", "linker_script", id="missing-script"),
    pytest.param("build: cmake\nruntime: hil\n", "runtime", id="cmake-with-hil-runtime"),
    pytest.param("build: make\n", "make", id="make-without-block"),
    pytest.param("build: make\nmake: {target: all}\n", "make.elf", id="make-without-elf"),
    pytest.param("cmake: {target: fw}\n", "cmake", id="cmake-block-without-build-cmake"),
])
def test_bad_manifest_names_file_and_key(manifest: str, key: str, tmp_path: Path) -> None:
    app = _write_app(tmp_path / "app", manifest, {"main.c": "int main(void) { return 0; }\n",
                                                  "Makefile": "all:\n",
                                                  "CMakeLists.txt": ""})
    with pytest.raises(ConfigError) as info:
        load_app(app)
    text = str(info.value)
    assert "app.yaml" in text and key in text
