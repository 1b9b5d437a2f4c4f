"""Firmware built by the team's own CMake or Make build: 'hil export cmake', build: cmake,
build: make, and the Unity verdict of the image in QEMU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from byofsupport import FW, require

from hil.boards import load_board
from hil.cli import main
from hil.image import write_hex
from hil.procs import run
from hil.toolchain import for_board

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the test firmware as a project of its own (no rack: QEMU runs the image)."""
    require("cmake", "ninja", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    root = tmp_path / "proj"
    shutil.copytree(FW, root / "fw")
    (root / "hil.toml").write_text("")
    monkeypatch.chdir(root)
    return root


def test_exported_toolchain_file_alone_builds_a_bootable_cube_project(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "cmake", "--board", "nucleo-f4", "--out", "exp"]) == 0
    toolchain = (project / "exp" / "toolchain.cmake").read_text()
    cc = for_board(load_board("nucleo-f4")).tool("cc")
    assert f'set(CMAKE_C_COMPILER "{cc.path}")' in toolchain
    assert "set(HIL_FLASH_ORIGIN 0x08000000)" in toolchain
    assert (project / "exp" / "hil_board.h").is_file()
    assert (project / "exp" / "firmware.ld").is_file()
    tree = project / "tree"
    for args in (["cmake", "-S", "fw/cube_cmake", "-B", str(tree), "-G", "Ninja",
                  f"-DCMAKE_TOOLCHAIN_FILE={project / 'exp' / 'toolchain.cmake'}"],
                 ["cmake", "--build", str(tree)]):
        done = run(args, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    elf = tree / "fw.elf"
    write_hex(elf, project / "fw.hex")
    capsys.readouterr()
    for image in (elf, project / "fw.hex"):
        assert main(["test", "--board", "nucleo-f4", "--image", str(image), "--harness",
                     "unity", "--junit", str(project / "junit.xml")]) == 0
        junit = (project / "junit.xml").read_text()
        assert 'name="test_data_copied"' in junit and 'name="test_bss_zeroed"' in junit
        assert "<failure" not in junit
    # the CMake build directory itself: hil finds its one executable ELF
    assert main(["test", "--board", "nucleo-f4", "--build-dir", str(tree), "--harness",
                 "unity", "--junit", str(project / "junit.xml")]) == 0
    junit = (project / "junit.xml").read_text()
    assert 'name="test_data_copied"' in junit and "<failure" not in junit


def test_build_cmake_app_passes_unity_and_audit_names_the_compiler(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--board", "nucleo-f4", "fw/cube_app", "--check-reproducible"]) == 0
    out = project / "build" / "nucleo-f4" / "cube-cmake"
    record = json.loads((out / "build.json").read_text())
    assert record["reproducible_checked"] is True
    assert {s["path"] for s in record["sources"]} >= {
        "fw/cube_cmake/main.c", "fw/cube_cmake/startup_cube.c", "fw/common/uart.c"}
    assert (out / "sbom.cdx.json").is_file() and (out / "firmware.bin").is_file()
    assert record["regions"][0]["used"] > 0
    assert main(["test", "--board", "nucleo-f4", "fw/cube_app", "--harness", "unity"]) == 0
    capsys.readouterr()
    assert main(["audit", "image", str(out / "firmware.hex")]) == 0
    text = capsys.readouterr().out
    tc = for_board(load_board("nucleo-f4"))
    assert tc.tool("cc").sha256 in text and tc.version in text


@pytest.mark.parametrize("toolchain", ["gcc", "clang"])
def test_build_make_app_passes_unity(project: Path, toolchain: str) -> None:
    if toolchain == "clang":
        require("clang", "ld.lld")
    assert main(["build", "--board", "nucleo-f4", "--toolchain", toolchain,
                 "fw/cube_make"]) == 0
    name = "cube-make" if toolchain == "gcc" else "cube-make+clang"
    record = json.loads((project / "build" / "nucleo-f4" / name / "build.json").read_text())
    paths = {s["path"] for s in record["sources"]}
    assert {"fw/cube_cmake/main.c", "fw/common/uart.h"} <= paths  # from the -MD output
    assert record["external_build"]["system"] == "make"
    assert main(["test", "--board", "nucleo-f4", "--toolchain", toolchain, "fw/cube_make",
                 "--harness", "unity"]) == 0


def test_failed_cmake_build_shows_output_tail_and_rerun_command(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "fw" / "cube_cmake" / "main.c").write_text("int main(void) { return missing; }\n")
    assert main(["build", "--board", "nucleo-f4", "fw/cube_app"]) == 5
    err = capsys.readouterr().err
    assert "'missing' undeclared" in err
    assert "rerun it with: cd " in err and "cmake --build" in err
    assert not (project / "build" / "nucleo-f4" / "cube-cmake" / "firmware.hex").exists()


def test_project_linker_script_set_after_project_replaces_the_generated_one(
        project: Path) -> None:
    assert main(["export", "cmake", "--board", "nucleo-f4", "--out", "exp"]) == 0
    generated = (project / "exp" / "firmware.ld").read_text()
    assert "__stack_size = 0x1000;" in generated
    src = project / "fw" / "cube_cmake"
    (src / "own.ld").write_text(generated.replace("__stack_size = 0x1000;",
                                                  "__stack_size = 0x2000;"))
    lists = (src / "CMakeLists.txt").read_text()
    (src / "CMakeLists.txt").write_text(
        lists + "set(HIL_LINKER_SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/own.ld)\n")
    tree = project / "tree"
    for args in (["cmake", "-S", str(src), "-B", str(tree), "-G", "Ninja",
                  f"-DCMAKE_TOOLCHAIN_FILE={project / 'exp' / 'toolchain.cmake'}"],
                 ["cmake", "--build", str(tree)]):
        done = run(args, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    symbols = _symbols(tree / "fw.elf")
    assert symbols["_estack"] - symbols["_sstack"] == 0x2000


def _symbols(elf: Path) -> dict[str, int]:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(elf, "rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(table, SymbolTableSection)
        return {s.name: s["st_value"] for s in table.iter_symbols()}


def test_cmake_build_with_several_executables_and_no_target_lists_them(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = project / "fw" / "cube_cmake"
    (src / "CMakeLists.txt").write_text((src / "CMakeLists.txt").read_text() + (
        "add_executable(other.elf startup_cube.c main.c ../common/uart.c)\n"
        "target_include_directories(other.elf PRIVATE ../common)\n"))
    app = project / "fw" / "cube_app" / "app.yaml"
    app.write_text(app.read_text().replace("  target: fw.elf\n", ""))
    assert main(["build", "--board", "nucleo-f4", "fw/cube_app"]) == 5
    err = capsys.readouterr().err
    assert "2 executable ELF files" in err and "fw.elf" in err and "other.elf" in err
