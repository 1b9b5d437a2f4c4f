"""Builds: sections land where the board's memory map says, overflows are named, HEX and
BIN match objcopy, the cache restores images without compiling, and builds reproduce."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from hil.boards import load_board
from hil.build import build
from hil.cli import main
from hil.errors import BuildError, ImageError
from hil.image import read_image

ROOT = Path(__file__).parents[2]
BOARDS = ["nucleo-f4", "nucleo-f446re", "lm3s6965evb", "hifive1-revb"]
OBJCOPY = {"arm": "arm-none-eabi-objcopy", "riscv": "riscv64-unknown-elf-objcopy"}


def sections(elf: Path) -> dict[str, tuple[int, int]]:
    with open(elf, "rb") as f:
        return {s.name: (s["sh_addr"], s["sh_size"]) for s in ELFFile(f).iter_sections()
                if s.name}


def symbol(elf: Path, name: str) -> int:
    with open(elf, "rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        return table.get_symbol_by_name(name)[0]["st_value"]


def write_app(directory: Path, source: str, manifest: str = "name: probe\nversion: 1.2.3\n"):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.yaml").write_text(manifest)
    (directory / "main.c").write_text(source)
    return directory


MINIMAL = '#include "hil.h"\nint main(void) { hil_puts("hi\\n"); for (;;) { } }\n'


@pytest.mark.parametrize("board_name", BOARDS)
@pytest.mark.parametrize("toolchain", ["gcc", "clang"])
def test_sections_are_placed_by_the_board_memory_map(tmp_path, board_name, toolchain):
    board = load_board(board_name)
    result = build(board, "blinky", toolchain=toolchain, out=tmp_path / "out")
    secs = sections(result.elf)
    text_start, _ = secs[".text"]
    assert text_start == board.app_start, "vector table / entry must be at the app start"
    flash, ram = board.app_region, board.ram_region
    for name in (".text", ".rodata"):
        start, size = secs[name]
        assert flash.contains(start, size), f"{name} outside {flash.name}"
    for name in (".bss", ".stack"):
        start, size = secs[name]
        assert ram.contains(start, size), f"{name} outside {ram.name}"
    assert symbol(result.elf, "_estack") <= ram.end
    assert symbol(result.elf, "_sdata") == ram.origin
    # the rendered script has no address a template wrote by hand
    script = result.linker_script.read_text()
    assert f"ORIGIN = 0x{board.app_start:08X}" in script
    assert f"ORIGIN = 0x{ram.origin:08X}" in script
    record = json.loads((result.out_dir / "build.json").read_text())
    assert record["board"] == board.name and record["toolchain"]["name"] == toolchain
    assert record["artifacts"]["hex"]["sha256"] == result.hex_sha256


@pytest.mark.parametrize("board_name", BOARDS)
@pytest.mark.parametrize("app", ["blinky", "shell"])
def test_hex_and_bin_match_objcopy(tmp_path, board_name, app):
    board = load_board(board_name)
    result = build(board, app, out=tmp_path / "out")
    objcopy = OBJCOPY[board.arch]
    subprocess.run([objcopy, "-O", "ihex", str(result.elf), str(tmp_path / "oc.hex")],
                   check=True)
    assert result.hex.read_bytes() == (tmp_path / "oc.hex").read_bytes()
    # only sections with bytes: GNU ld gives an empty .data its RAM address as load address
    loaded = [f"-j{name}" for name, (_, size) in sections(result.elf).items()
              if size and name in (".text", ".rodata", ".ARM.exidx", ".data")]
    subprocess.run([objcopy, "-O", "binary", "--gap-fill", "0xff", *loaded, str(result.elf),
                    str(tmp_path / "oc.bin")], check=True)
    assert result.bin.read_bytes() == (tmp_path / "oc.bin").read_bytes()


def test_clang_hex_matches_llvm_objcopy_contents(tmp_path):
    result = build(load_board("lm3s6965evb"), "blinky", toolchain="clang", out=tmp_path / "o")
    subprocess.run(["llvm-objcopy", "-O", "ihex", str(result.elf), str(tmp_path / "l.hex")],
                   check=True)
    ours, theirs = read_image(result.hex), read_image(tmp_path / "l.hex")
    assert ours.todict() == theirs.todict()


def test_flash_overflow_names_region_section_and_bytes(tmp_path):
    app = write_app(tmp_path / "big", '#include "hil.h"\n'
                    "const unsigned char big[300 * 1024] = {1};\n"
                    "int main(void) { hil_putc((char)big[hil_millis() % sizeof big]); "
                    "for (;;) {} }\n")
    board = load_board("lm3s6965evb")
    with pytest.raises(ImageError) as err:
        build(board, app, out=tmp_path / "out")
    text = str(err.value)
    assert "overflows region FLASH" in text and "bytes" in text
    assert "section .rodata" in text or "section .text" in text
    assert not (tmp_path / "out" / "firmware.hex").exists()


@pytest.mark.parametrize("toolchain", ["gcc", "clang"])
def test_ram_overflow_is_reported_with_the_byte_count(tmp_path, toolchain):
    app = write_app(tmp_path / "ram", '#include "hil.h"\n'
                    "static unsigned char buf[130 * 1024];\n"
                    "int main(void) { buf[hil_millis() % sizeof buf] = 1; "
                    "hil_putc((char)buf[3]); for (;;) {} }\n")
    with pytest.raises(ImageError, match=r"overflows region SRAM \(131072 bytes\) by \d+ bytes"):
        build(load_board("nucleo-f4"), app, toolchain=toolchain, out=tmp_path / "out")


def test_data_outside_every_region_is_an_error(tmp_path):
    # An ELF linked elsewhere (a team's own script) with a section no region covers.
    board = load_board("nucleo-f4")
    result = build(board, "blinky", out=tmp_path / "ok")
    (tmp_path / "stray.bin").write_bytes(b"\x07\0\0\0")
    elf = tmp_path / "moved.elf"
    subprocess.run(["arm-none-eabi-objcopy", "--add-section", f".stray={tmp_path / 'stray.bin'}",
                    "--set-section-flags", ".stray=alloc,load,contents,data",
                    "--change-section-address", ".stray=0x60000000",
                    str(result.elf), str(elf)], check=True, capture_output=True)
    from hil.image import check_placement

    with pytest.raises(ImageError, match=r"section \.stray has data at 0x60000000.*outside "
                       r"every memory region of board nucleo-f4"):
        check_placement(board, elf)


def test_failed_build_leaves_no_old_image_behind(tmp_path):
    app = write_app(tmp_path / "app", MINIMAL)
    out = tmp_path / "out"
    board = load_board("nucleo-f4")
    build(board, app, out=out)
    assert (out / "firmware.hex").exists()
    (app / "main.c").write_text("int main(void) { return missing_symbol; }\n")
    with pytest.raises(BuildError, match=r"compiling .*main.c for nucleo-f4 \(gcc .*\) failed"):
        build(board, app, out=out)
    assert not (out / "firmware.hex").exists() and not (out / "build.json").exists()


def test_deleting_build_restores_from_cache_without_compiling(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    board = load_board("hifive1-revb")
    first = build(board, "shell", out=tmp_path / "build" / "shell")
    assert first.compiled > 0
    hex_bytes = first.hex.read_bytes()
    shutil.rmtree(tmp_path / "build")
    # a compiler that cannot run proves nothing is compiled or linked
    monkeypatch.setenv("PATH", "/nonexistent")
    from hil import toolchain

    tc = first.toolchain
    monkeypatch.setattr(toolchain, "for_board", lambda b, n="gcc": tc)
    import hil.build

    monkeypatch.setattr(hil.build, "for_board", lambda b, n="gcc": tc)
    monkeypatch.setattr(hil.build.subprocess, "run", _forbidden)
    second = build(board, "shell", out=tmp_path / "build" / "shell")
    assert second.compiled == 0 and not second.linked
    assert second.hex.read_bytes() == hex_bytes


def _forbidden(args, *a, **k):
    if args and args[0] == "git":
        raise OSError("no git in this test")
    raise AssertionError(f"ran {args[0]} although everything was cached")


def test_changing_one_source_recompiles_only_that_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    app = write_app(tmp_path / "app", MINIMAL)
    (app / "extra.c").write_text("int extra(int x) { return x + 1; }\n")
    board = load_board("nucleo-f4")
    first = build(board, app, out=tmp_path / "out")
    (app / "extra.c").write_text("int extra(int x) { return x + 2; }\n")
    second = build(board, app, out=tmp_path / "out")
    assert second.compiled == 1
    assert second.cached == first.compiled - 1
    (app / "main.c").write_text(MINIMAL + "\n/* comment */\n")
    assert build(board, app, out=tmp_path / "out").compiled == 1


def test_reproducible_across_two_directories(tmp_path, monkeypatch):
    src = ROOT / "firmware_examples"
    results = []
    for name in ("one", "two"):
        monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / name / "cache"))
        copy = tmp_path / name / "firmware_examples"
        shutil.copytree(src, copy)
        results.append(build(load_board("nucleo-f4"), copy / "shell", out=tmp_path / name / "o"))
    a, b = results
    assert a.hex.read_bytes() == b.hex.read_bytes()
    assert a.bin.read_bytes() == b.bin.read_bytes()
    assert str(tmp_path).encode() not in a.bin.read_bytes()


def test_build_json_cli_prints_one_object_per_image(tmp_path, capsys):
    code = main(["build", "--board", "nucleo-f4", "--board", "lm3s6965evb", "blinky",
                 "--toolchain", "gcc", "--toolchain", "clang", "--json"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4
    for obj in lines:
        assert {"board", "app", "toolchain", "elf", "hex", "bin", "hex_sha256"} <= set(obj)
        assert Path(obj["hex"]).exists()


def test_cli_size_table_and_check_reproducible(capsys):
    assert main(["build", "--board", "hifive1-revb", "blinky", "--check-reproducible"]) == 0
    captured = capsys.readouterr()
    assert "hifive1-revb" in captured.out and "DTIM" in captured.out and "%" in captured.out
    assert "reproducible" in captured.err


def test_cli_missing_board_is_a_usage_error(capsys):
    assert main(["build", "shell"]) == 2
    assert "no board given" in capsys.readouterr().err


def test_hil_console_script_runs_as_a_subprocess(tmp_path):
    exe = Path(__file__).parents[2] / ".venv" / "bin" / "hil"
    if not exe.exists():
        pytest.skip("console script not installed in .venv")
    proc = subprocess.run([str(exe), "build", "--board", "lm3s6965evb", "blinky", "--out",
                           str(tmp_path / "o"), "--json"], check=False, capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["board"] == "lm3s6965evb"


def test_two_processes_building_one_output_directory(tmp_path):
    code = ("import sys; from pathlib import Path; from hil.boards import load_board; "
            "from hil.build import build; "
            "build(load_board('nucleo-f4'), 'blinky', out=Path(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out")],
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert read_image(tmp_path / "out" / "firmware.hex").segments()
    assert json.loads((tmp_path / "out" / "build.json").read_text())["board"] == "nucleo-f4"


def test_out_dir_that_holds_other_files_is_refused(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    assert main(["build", "--board", "nucleo-f4", "blinky", "--out", str(tmp_path / "mine")]) \
        == 2
    assert "is not a hil output directory" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    app = write_app(tmp_path / "app", MINIMAL)
    with pytest.raises(Exception, match="contains"):
        build(load_board("nucleo-f4"), app, out=tmp_path)


def test_header_beside_a_source_from_another_directory_is_tracked(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    lib = tmp_path / "mylib"
    lib.mkdir()
    (lib / "mylib.h").write_text("#define LIBV 100\n")
    (lib / "table.inc").write_text("1, 2, 3\n")
    (lib / "lib.c").write_text('#include "mylib.h"\nint lib_value(void) { return LIBV; }\n'
                               "const int table[] = {\n#include \"table.inc\"\n};\n"
                               "int lib_table(int i) { return table[i]; }\n")
    app = write_app(tmp_path / "app", '#include "hil.h"\nint lib_value(void);\n'
                    "int lib_table(int);\n"
                    "int main(void) { hil_put_i32(lib_value() + lib_table(1)); for (;;) {} }\n",
                    'name: dep\nsources: ["*.c", "../mylib/*.c"]\n')
    board = load_board("nucleo-f4")
    first = build(board, app, out=tmp_path / "o").hex.read_bytes()
    (lib / "mylib.h").write_text("#define LIBV 300\n")
    second = build(board, app, out=tmp_path / "o")
    second_hex = second.hex.read_bytes()
    assert second.compiled >= 1 and second_hex != first
    (lib / "table.inc").write_text("1, 7, 3\n")
    third = build(board, app, out=tmp_path / "o")
    assert third.compiled >= 1 and third.hex.read_bytes() != second_hex


def test_failed_build_removes_the_old_provenance_too(tmp_path):
    app = write_app(tmp_path / "app", MINIMAL)
    out = tmp_path / "out"
    board = load_board("nucleo-f4")
    build(board, app, out=out)
    assert (out / "provenance.intoto.json").exists()
    (app / "main.c").write_text('#include "hil.h"\nstatic char big[200 * 1024];\n'
                                "int main(void) { big[hil_millis() % sizeof big] = 1; "
                                "hil_putc(big[5]); for (;;) {} }\n")
    with pytest.raises(ImageError):
        build(board, app, out=out)
    assert not out.exists()
