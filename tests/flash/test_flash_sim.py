"""hil flash through pyOCD's real flash path into a simulated probe: what a user checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from intelhex import IntelHex

from hil.cli import main
from hil.errors import ExitCode
from hil.flash.sim.store import SimFlashStore

REPORT_KEYS = {"probe", "chip_id", "erased_sectors", "programmed_bytes", "skipped_sectors",
               "verified", "seconds"}


def flash_json(capsys, *args: str) -> dict:
    code = main(["flash", "--board", "nucleo-f4", "--json", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def assert_flash_holds(name: str, hex_path: Path) -> None:
    """The simulated flash holds exactly the HEX contents (and nothing else is programmed)."""
    ih = IntelHex(str(hex_path))
    store = SimFlashStore.open(name)
    for start, end in ih.segments():
        assert store.read(start, end - start) == ih.tobinstr(start=start, size=end - start)
    programmed = sum(len(blob) for _, blob in store.segments())
    image = sum(end - start for start, end in ih.segments())
    assert programmed <= image + 16 * len(ih.segments())  # only the image (16-byte rounding)


def test_shell_image_full_then_same_then_one_function(shell, rack, capsys):
    first = flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(shell.hex))
    assert REPORT_KEYS <= set(first)
    assert first["verified"] is True
    assert first["probe"] == "hilsim:f4-a" and first["rack_entry"] == "f4-a"
    assert int(first["chip_id"], 16) & 0xFFF == 0x431
    assert first["erased_sectors"] == 1 and first["programmed_bytes"] > 0
    assert_flash_holds("f4-a", shell.hex)

    again = flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(shell.hex))
    assert again["erased_sectors"] == 0
    assert again["programmed_bytes"] == 0
    assert again["verified"] is True

    changed = flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(shell.changed_hex))
    assert changed["erased_sectors"] == 1
    assert changed["verified"] is True
    assert_flash_holds("f4-a", shell.changed_hex)


def test_one_changed_function_rewrites_only_its_sector(images, rack, capsys):
    full = flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(images.base))
    # 200 KiB from 0x08000000: four 16K sectors, the 64K sector and the first 128K sector.
    assert full["erased_sectors"] == 6
    assert full["programmed_bytes"] >= 200 * 1024
    assert_flash_holds("f4-a", images.base)

    same = flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(images.same))
    assert (same["erased_sectors"], same["programmed_bytes"]) == (0, 0)
    assert same["skipped_sectors"] == 6

    one = flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(images.one_function))
    assert one["erased_sectors"] == 1  # sector 2 (0x08008000, 16K) only
    assert one["programmed_bytes"] == 16 * 1024
    assert one["skipped_sectors"] == 5
    assert_flash_holds("f4-a", images.one_function)


def test_flash_persists_for_another_process(images, rack, capsys):
    flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(images.base))
    code = subprocess.run(
        [sys.executable, "-c",
         ("import sys; from hil.flash.sim.store import SimFlashStore; "
          "s = SimFlashStore.open('f4-a'); "
          "sys.stdout.write(s.board_name + ' ' + s.read(0x08000000, 8).hex())")],
        capture_output=True, text=True, check=True)
    assert code.stdout == "nucleo-f4 " + IntelHex(str(images.base)).tobinstr(
        start=0x08000000, size=8).hex()


def test_write_hex_of_simulated_flash_round_trips(images, rack, capsys, tmp_path):
    flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(images.base))
    out = SimFlashStore.open("f4-a").write_hex(tmp_path / "back.hex")
    back, want = IntelHex(str(out)), IntelHex(str(images.base))
    assert back.segments() == want.segments()
    assert back.tobinstr() == want.tobinstr()


def test_plain_progress_lines_with_both_phases_on_a_pipe(images, rack, capsys):
    assert main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-a",
                 "--image", str(images.base)]) == 0
    out, err = capsys.readouterr()
    assert "\r" not in err
    assert "erase: 0%" in err and "erase: 100%" in err
    assert "program: 100%" in err and "verify: 100%" in err
    assert err.index("erase: 100%") < err.index("program: 100%")
    assert "verify passed" in out and "6 sectors erased" in out


def test_no_reset_leaves_core_halted_and_bin_goes_to_app_start(rack, capsys, tmp_path):
    vectors = (0x20020000).to_bytes(4, "little") + (0x08000101).to_bytes(4, "little")
    blob = vectors + (bytes(range(256)) * 8)[8:]  # a stack pointer and reset vector first
    image = tmp_path / "fw.bin"
    image.write_bytes(blob)
    report = flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(image), "--no-reset")
    assert report["reset"] is False and report["verified"] is True
    assert SimFlashStore.open("f4-a").read(0x08000000, len(blob)) == blob


def test_board_learned_from_command_line_without_rack(images, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_RACK", str(tmp_path / "empty.yaml"))
    (tmp_path / "empty.yaml").write_text("schema: 1\nboards: []\n")
    report = flash_json(capsys, "--probe", "hilsim:solo", "--image", str(images.base))
    assert report["rack_entry"] is None
    assert SimFlashStore.open("solo").board_name == "nucleo-f4"


def test_flash_is_recorded_in_the_audit_trail(images, rack, capsys):
    from hil.audit.store import open_store
    from hil.fsutil import sha256_file

    flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(images.base))
    with open_store(None) as store:
        records = [r for r in store.for_image(sha256_file(images.base)) if r.kind == "flash"]
    assert len(records) == 1
    assert records[0].payload["verified"] is True
    assert records[0].payload["probe"] == "hilsim:f4-a"
    assert records[0].payload["rack_id"] == "f4-a"


def test_cli_end_to_end_as_a_subprocess(images, rack, tmp_path):
    env_cmd = [str(Path(sys.executable).parent / "hil"), "flash"]
    proc = subprocess.run(
        [*env_cmd, "--board", "nucleo-f4", "--probe", "hilsim:f4-a", "--image",
         str(images.base), "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verified"] is True and report["erased_sectors"] == 6
    assert "erase" in proc.stderr and "program" in proc.stderr
    assert_flash_holds("f4-a", images.base)
    again = subprocess.run(
        [*env_cmd, "--board", "nucleo-f4", "--probe", "hilsim:f4-a", "--image",
         str(images.base), "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert json.loads(again.stdout)["erased_sectors"] == 0
    assert ExitCode.OK == again.returncode


def test_progress_bar_on_a_tty_has_erase_and_program_phases(images, rack, capsys,
                                                            monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(["flash", "--board", "nucleo-f4", "--probe", "hilsim:f4-a",
                 "--image", str(images.base)]) == 0
    text = tty.getvalue()
    assert "\r" in text and "[" in text
    erase = text.index("flash nucleo-f4 erase [")
    program = text.index("flash nucleo-f4 program [")
    assert erase < program
    assert "100.0%" in text[erase:program]


def test_generation_counts_saves(images, rack, capsys):
    flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(images.base))
    first = SimFlashStore.open("f4-a").generation
    flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(images.one_function))
    assert SimFlashStore.open("f4-a").generation > first


def test_chip_erase_erases_everything_else(images, rack, capsys, tmp_path):
    far = tmp_path / "far.hex"
    ih = IntelHex()
    ih.frombytes(b"\x11" * 64, offset=0x08060000)  # sector 7
    ih.write_hex_file(str(far))
    flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(far))
    report = flash_json(capsys, "--probe", "hilsim:f4-a", "--image", str(images.base),
                        "--erase", "chip")
    assert report["erased_sectors"] == 8 and report["verified"] is True
    assert SimFlashStore.open("f4-a").read(0x08060000, 64) == b"\xff" * 64
    assert_flash_holds("f4-a", images.base)
