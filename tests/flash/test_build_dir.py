"""Prebuilt firmware from outside hil: Zephyr, PlatformIO and CMake/Make build directories
(made here from a real ELF hil built, as those tools lay them out) run with ``hil test
--build-dir`` in QEMU and flash with ``hil flash --build-dir``; every foreign image is checked
against the board before any QEMU or probe, and recorded as an external build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from intelhex import IntelHex

from hil.cli import main
from hil.errors import ConfigError, ExitCode
from hil.foreign import resolve_build_dir
from hil.paths import state_dir

COMPILER = "GCC: (15:12.2.rel1-1) 12.2.1 20221205"
F4_APP_START = 0x08000000


@dataclass(frozen=True)
class Foreign:
    elf: Path  # the selftest ELF for nucleo-f4 (prints Unity output), with a .comment
    hex: Path
    bin: Path


@pytest.fixture(scope="session")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Foreign:
    """hil's selftest for nucleo-f4, built with no audit record (so the store of each test
    has never seen it: it is as foreign as a Zephyr build) and given the ``.comment`` a
    vendor GCC writes."""
    from hil.app import load_app
    from hil.boards import load_board
    from hil.build import BuildRequest, build_many
    from hil.errors import HilError

    out = tmp_path_factory.mktemp("selftest")
    saved = os.environ.get("HIL_CACHE_DIR")
    os.environ["HIL_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        result = build_many([BuildRequest(load_board("nucleo-f4"), load_app("selftest"),
                                          out_dir=out / "build")], audit=False)[0]
    except HilError as exc:  # no cross toolchain on this machine
        pytest.skip(f"cannot build the selftest example: {exc}")
    finally:
        if saved is None:
            os.environ.pop("HIL_CACHE_DIR", None)
        else:
            os.environ["HIL_CACHE_DIR"] = saved
    comment = out / "comment.txt"
    comment.write_bytes(COMPILER.encode() + b"\0")
    elf = out / "firmware.elf"
    subprocess.run(["arm-none-eabi-objcopy", "--add-section", f".comment={comment}",
                    "--set-section-flags", ".comment=contents,readonly",
                    str(result.elf), str(elf)], check=True)
    return Foreign(elf, Path(result.hex), Path(result.bin))


def zephyr_dir(root: Path, elf: Path) -> Path:
    (root / "zephyr").mkdir(parents=True)
    shutil.copyfile(elf, root / "zephyr" / "zephyr.elf")
    shutil.copyfile(elf, root / "zephyr" / "zephyr_pre0.elf")  # Zephyr leaves these too
    (root / "CMakeCache.txt").write_text("CMAKE_PROJECT_NAME:STATIC=app\n")
    return root


def platformio_dir(root: Path, elf: Path, envs: tuple[str, ...] = ("nucleo_f411re",)) -> Path:
    for env in envs:
        (root / ".pio" / "build" / env).mkdir(parents=True)
        shutil.copyfile(elf, root / ".pio" / "build" / env / "firmware.elf")
    (root / "platformio.ini").write_text("[env:nucleo_f411re]\nplatform = ststm32\n")
    return root


def cmake_dir(root: Path, elf: Path, extra: tuple[str, ...] = ()) -> Path:
    """A CMake build tree: the firmware, an object file, and CMake's compiler probe (an
    executable ELF under CMakeFiles/ that is never the firmware)."""
    (root / "CMakeFiles" / "3.25.1" / "CompilerIdC").mkdir(parents=True)
    (root / "CMakeFiles" / "fw.elf.dir").mkdir(parents=True)
    (root / "CMakeCache.txt").write_text("CMAKE_PROJECT_NAME:STATIC=fw\n")
    shutil.copyfile(elf, root / "fw.elf")
    shutil.copyfile(elf, root / "CMakeFiles" / "3.25.1" / "CompilerIdC" / "a.out")
    obj = bytearray(elf.read_bytes()[:64])
    obj[16:18] = (1).to_bytes(2, "little")  # ET_REL: an object file, not an executable
    (root / "CMakeFiles" / "fw.elf.dir" / "main.c.obj").write_bytes(bytes(obj))
    (root / "libutil.a").write_bytes(b"!<arch>\n")
    for name in extra:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(elf, root / name)
    return root


LAYOUTS = {"zephyr": zephyr_dir, "platformio": platformio_dir, "cmake": cmake_dir}


@pytest.mark.parametrize("kind", [pytest.param(k, id=k) for k in LAYOUTS])
def test_build_dir_passes_its_unity_output_in_qemu(foreign, tmp_path, kind, capsys):
    build_dir = LAYOUTS[kind](tmp_path / "app", foreign.elf)
    before = sorted(p.relative_to(build_dir) for p in build_dir.rglob("*"))
    junit = tmp_path / "report.xml"
    code = main(["test", "--board", "nucleo-f4", "--build-dir", str(build_dir), "--on", "qemu",
                 "--harness", "unity", "--junit", str(junit)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "PASS   test_crc32_check_value" in out
    assert "PASSED in QEMU" in out
    assert 'name="test_crc32_check_value"' in junit.read_text()
    # provenance next to the run's copy, marked external; the user's directory untouched
    statements = list(state_dir().glob("runs/*/nucleo-f4/image/provenance.intoto.json"))
    assert len(statements) == 1
    stmt = json.loads(statements[0].read_text())
    params = stmt["predicate"]["buildDefinition"]
    assert params["buildType"] == "urn:hil:build-type:external:v1"
    assert params["externalParameters"]["external"]["source"]["kind"] == kind
    assert params["externalParameters"]["external"]["compiler"] == COMPILER
    digests = {s["annotations"]["role"]: s["digest"]["sha256"] for s in stmt["subject"]}
    assert digests["elf"] == _sha256(foreign.elf)
    assert sorted(p.relative_to(build_dir) for p in build_dir.rglob("*")) == before


def test_audit_image_answers_for_a_foreign_image(foreign, tmp_path, capsys):
    build_dir = zephyr_dir(tmp_path / "zapp", foreign.elf)
    assert main(["test", "--board", "nucleo-f4", "--build-dir", str(build_dir), "--on", "qemu",
                 "--harness", "unity"]) == 0
    capsys.readouterr()
    assert main(["audit", "image", str(build_dir / "zephyr" / "zephyr.elf")]) == 0
    out = capsys.readouterr().out
    assert f"external build: zephyr {build_dir.resolve()}" in out
    assert f"compiler (from the ELF's .comment): {COMPILER}" in out
    assert "tests on qemu:" in out and "nucleo-f4  15" in out  # 15 passed, 1 ignored


def test_a_second_run_adds_no_second_build_record(foreign, tmp_path, capsys):
    build_dir = cmake_dir(tmp_path / "c", foreign.elf)
    for _ in range(2):
        assert main(["test", "--board", "nucleo-f4", "--build-dir", str(build_dir),
                     "--on", "qemu", "--harness", "unity"]) == 0
    capsys.readouterr()
    assert main(["audit", "image", str(foreign.elf), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["builds"]) == 1
    assert len(data["tests"]["qemu"]) == 2


def test_bin_image_runs_at_the_application_start(foreign, tmp_path, capsys):
    image = shutil.copyfile(foreign.bin, tmp_path / "fw.bin")
    code = main(["test", "--board", "nucleo-f4", "--image", str(image), "--on", "qemu",
                 "--harness", "unity"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "PASS   test_parse_hex_u32" in out


@pytest.mark.parametrize("kind", [pytest.param(k, id=k) for k in LAYOUTS])
def test_build_dir_flashes_through_the_simulated_probe(foreign, tmp_path, kind, capsys):
    build_dir = LAYOUTS[kind](tmp_path / "app", foreign.elf)
    code = main(["flash", "--board", "nucleo-f4", "--build-dir", str(build_dir),
                 "--probe", f"hilsim:{kind}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "verify passed" in out
    flash = (state_dir() / "simflash" / f"{kind}.bin").read_bytes()
    expected = foreign.bin.read_bytes()
    assert flash[:len(expected)] == expected
    assert main(["audit", "image", str(foreign.elf), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["builds"][0]["external"] and data["builds"][0]["source"]["kind"] == kind
    assert data["flashes"][0]["verified"]


def test_platformio_env_directory_is_taken_as_it_is(foreign, tmp_path):
    root = platformio_dir(tmp_path / "p", foreign.elf, envs=("f411", "f446"))
    found = resolve_build_dir(root / ".pio" / "build" / "f446")
    assert found.path == root / ".pio" / "build" / "f446" / "firmware.elf"
    assert found.kind == "platformio"


@pytest.mark.parametrize("layout, listed", [
    pytest.param(lambda root, elf: platformio_dir(root, elf, envs=("f411", "f446")),
                 ["2 environments (f411, f446)", ".pio/build/f411"], id="platformio-two-envs"),
    pytest.param(lambda root, elf: cmake_dir(root, elf, extra=("tests/unit_fw.elf",)),
                 ["2 executable ELF files", "  fw.elf", "  tests/unit_fw.elf"],
                 id="cmake-two-executables"),
    pytest.param(lambda root, elf: root.mkdir() or root, ["no executable ELF file"],
                 id="empty"),
])
def test_ambiguous_or_empty_build_dir_lists_what_it_found(foreign, tmp_path, layout, listed,
                                                          capsys):
    root = layout(tmp_path / "b", foreign.elf)
    with pytest.raises(ConfigError) as info:
        resolve_build_dir(root)
    text = str(info.value)
    for item in listed:
        assert item in text
    code = main(["test", "--board", "nucleo-f4", "--build-dir", str(root), "--on", "qemu",
                 "--harness", "unity"])
    assert code == ExitCode.USAGE
    assert listed[0] in capsys.readouterr().err


def test_missing_build_dir_names_it(tmp_path, capsys):
    code = main(["flash", "--board", "nucleo-f4", "--build-dir", str(tmp_path / "nope"),
                 "--probe", "hilsim:n"])
    assert code == ExitCode.USAGE
    assert f"{tmp_path / 'nope'}" in capsys.readouterr().err


# ---------------------------------------------------------------- refused before QEMU or probe

def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _phdr(data: bytes, index: int) -> int:
    """File offset of program header ``index`` of a 32-bit little-endian ELF."""
    phoff = int.from_bytes(data[28:32], "little")
    phentsize = int.from_bytes(data[42:44], "little")
    return phoff + index * phentsize


def moved_segment(elf: Path, target: Path, paddr: int) -> Path:
    """The ELF with its first segment's load address (p_paddr) changed."""
    data = bytearray(elf.read_bytes())
    at = _phdr(data, 0) + 12
    data[at:at + 4] = paddr.to_bytes(4, "little")
    target.write_bytes(bytes(data))
    return target


def patched_vectors(elf: Path, target: Path, sp: int | None = None,
                    reset: int | None = None) -> Path:
    """The ELF with word 0 (initial SP) or word 1 (reset vector) of its vector table
    changed, at the file offset where the first segment holds the application start."""
    data = bytearray(elf.read_bytes())
    ph = _phdr(data, 0)
    offset = int.from_bytes(data[ph + 4:ph + 8], "little")
    paddr = int.from_bytes(data[ph + 12:ph + 16], "little")
    at = offset + F4_APP_START - paddr
    if sp is not None:
        data[at:at + 4] = sp.to_bytes(4, "little")
    if reset is not None:
        data[at + 4:at + 8] = reset.to_bytes(4, "little")
    target.write_bytes(bytes(data))
    return target


@pytest.fixture
def no_qemu(tmp_path, monkeypatch):
    """A PATH without QEMU: a run that got as far as starting it would fail otherwise."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def _refused_by_test_and_flash(image_args: list[str], expected: list[str], capsys,
                               board: str = "nucleo-f4") -> None:
    code = main(["test", "--board", board, *image_args, "--on", "qemu", "--harness", "unity"])
    err = capsys.readouterr().err
    assert code == ExitCode.BUILD_FAILED, err
    for text in expected:
        assert text in err
    assert not list(state_dir().glob("runs/*/*/transcripts")), "a console was opened"
    assert not list(state_dir().glob("runs/*/*/image/*.hex")), "the image was taken in"
    code = main(["flash", "--board", board, *image_args, "--probe", "hilsim:refused"])
    err = capsys.readouterr().err
    assert code == ExitCode.BUILD_FAILED, err
    assert expected[0] in err
    assert not (state_dir() / "simflash" / "refused.bin").exists(), "the probe was touched"


def test_arm_build_dir_for_a_riscv_board(foreign, tmp_path, no_qemu, capsys):
    build_dir = zephyr_dir(tmp_path / "z", foreign.elf)
    _refused_by_test_and_flash(["--build-dir", str(build_dir)],
                               ["zephyr.elf is an Arm ELF for a RISC-V board",
                                "board hifive1-revb"], capsys, board="hifive1-revb")


@pytest.mark.parametrize("paddr, expected", [
    pytest.param(0x10000000, ["segment 0 (.text, .rodata) of bad.elf loads",
                              "at 0x10000000..", "outside the flash of board nucleo-f4"],
                 id="outside-every-region"),
    pytest.param(0x20000000, ["segment 0 (.text, .rodata) of bad.elf loads",
                              "at 0x20000000..", "in ram region SRAM of board nucleo-f4, "
                              "not in its flash"], id="text-loaded-into-ram"),
    pytest.param(0x0807FF00, ["segment 0 (.text, .rodata) of bad.elf loads",
                              "at 0x0807FF00..", "outside the flash of board nucleo-f4"],
                 id="runs-past-the-end-of-flash"),
])
def test_segment_outside_flash(foreign, tmp_path, no_qemu, capsys, paddr, expected):
    bad = moved_segment(foreign.elf, tmp_path / "bad.elf", paddr)
    _refused_by_test_and_flash(["--image", str(bad)], expected, capsys)


@pytest.mark.parametrize("sp, reset, expected", [
    pytest.param(0x08001000, None, "initial stack pointer 0x08001000 (vector table word 0 "
                 "at 0x08000000) is not in the RAM of board nucleo-f4", id="sp-in-flash"),
    pytest.param(0x30000000, None, "initial stack pointer 0x30000000", id="sp-nowhere"),
    pytest.param(None, 0x08000374, "reset vector 0x08000374 (vector table word 1 at "
                 "0x08000004) has the Thumb bit clear; board nucleo-f4", id="reset-not-thumb"),
    pytest.param(None, 0x20000101, "reset vector 0x20000101 (vector table word 1 at "
                 "0x08000004) is not in the flash of board nucleo-f4", id="reset-in-ram"),
])
def test_bad_vector_table_in_elf(foreign, tmp_path, no_qemu, capsys, sp, reset, expected):
    bad = patched_vectors(foreign.elf, tmp_path / "bad.elf", sp=sp, reset=reset)
    _refused_by_test_and_flash(["--image", str(bad)], [expected], capsys)


def test_bad_vector_table_in_hex_and_bin(foreign, tmp_path, no_qemu, capsys):
    ih = IntelHex(str(foreign.hex))
    ih.puts(F4_APP_START, (0x08001000).to_bytes(4, "little"))
    bad_hex = tmp_path / "bad.hex"
    ih.write_hex_file(str(bad_hex))
    _refused_by_test_and_flash(["--image", str(bad_hex)],
                               ["bad.hex: initial stack pointer 0x08001000"], capsys)
    data = bytearray(foreign.bin.read_bytes())
    data[4:8] = (0x20000101).to_bytes(4, "little")
    bad_bin = tmp_path / "bad.bin"
    bad_bin.write_bytes(bytes(data))
    _refused_by_test_and_flash(["--image", str(bad_bin)],
                               ["bad.bin: reset vector 0x20000101"], capsys)


def test_image_without_a_vector_table_does_not_boot_but_flashes(foreign, tmp_path, no_qemu,
                                                                 capsys):
    """A partial image (data for a later sector) cannot boot: hil test and hil run refuse
    it; hil flash writes it, there being no vector table to check."""
    block = IntelHex()
    block.frombytes(b"\x5a" * 256, offset=F4_APP_START + 0x4000)
    late = tmp_path / "late.hex"
    block.write_hex_file(str(late))
    for command in (["test", "--harness", "unity", "--on", "qemu"], ["run", "--on", "qemu"]):
        code = main([*command, "--board", "nucleo-f4", "--image", str(late)])
        err = capsys.readouterr().err
        assert code == ExitCode.BUILD_FAILED, err
        assert "late.hex has no vector table at the application start 0x08000000 of board " \
               "nucleo-f4" in err
    assert not list(state_dir().glob("runs/*/*/image/*.hex")), "the image was taken in"
    code = main(["flash", "--board", "nucleo-f4", "--image", str(late), "--probe",
                 "hilsim:late"])
    assert code == 0, capsys.readouterr().err
    flash = (state_dir() / "simflash" / "late.bin").read_bytes()
    assert flash[0x4000:0x4100] == b"\x5a" * 256


def test_image_and_build_dir_together_is_a_usage_error(foreign, tmp_path, capsys):
    code = main(["run", "--board", "nucleo-f4", "--image", str(foreign.elf),
                 "--build-dir", str(tmp_path)])
    assert code == ExitCode.USAGE
    assert "either --image or --build-dir" in capsys.readouterr().err


def test_hil_run_takes_a_build_dir(foreign, tmp_path):
    """End to end as a user runs it: the Zephyr build's firmware boots and its console
    reaches the terminal; Ctrl-] ends the session."""
    build_dir = zephyr_dir(tmp_path / "z", foreign.elf)
    hil = shutil.which("hil") or str(Path(sys.executable).parent / "hil")
    proc = subprocess.run([hil, "run", "--board", "nucleo-f4", "--on", "qemu", "--build-dir",
                           str(build_dir)], input=b"\x1d", capture_output=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert b"hil-selftest nucleo-f4" in proc.stdout
    statements = list(state_dir().glob("runs/*-run/image/provenance.intoto.json"))
    assert len(statements) == 1
