"""What the audit trail says after a flash, through pyOCD's real flash path on a simulated
probe: "runs now" moves only after a write that verified; a failure before the chip was
touched leaves it; a failure after writing began marks the board "unknown, needs re-flash";
the record names the bytes written, tied to a build only by an artifact's hash."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from intelhex import IntelHex

from hil import audit
from hil.cli import main
from hil.errors import ExitCode

F4_FLASH = 0x08000000


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def rack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Simulated nucleo-f4 boards f4-b and f4-c, an f4 entry whose probe is a nucleo-f446re
    (fails validation of the chip), and a real ST-LINK entry that is not connected."""
    path = tmp_path / "rack.yaml"
    path.write_text(
        "schema: 1\n"
        "boards:\n"
        "  - {id: f4-b, board: nucleo-f4, probe: 'hilsim:f4-b', emulator: qemu}\n"
        "  - {id: f4-c, board: nucleo-f4, probe: 'hilsim:f4-c', emulator: qemu}\n"
        "  - {id: f446-x, board: nucleo-f446re, probe: 'hilsim:f446-x'}\n"
        "  - {id: f4-usb, board: nucleo-f4, probe: 'stlink:066DFF000000000000000042'}\n")
    monkeypatch.setenv("HIL_RACK", str(path))
    return path


def _built(out: Path, app: str, hex_image: Path) -> dict:
    """Record a build of ``app`` whose HEX is ``hex_image`` and whose BIN holds the same
    bytes, as hil build does; returns the record's key and artifact paths."""
    from auditdata import make_build_record

    out.mkdir(parents=True)
    ih = IntelHex(str(hex_image))
    (out / "firmware.hex").write_bytes(hex_image.read_bytes())
    (out / "firmware.bin").write_bytes(ih.tobinstr(start=ih.minaddr(), end=ih.maxaddr()))
    record = make_build_record(app=app, salt=app)
    for role in ("hex", "bin"):
        record["artifacts"][role] = {"path": f"firmware.{role}",
                                     "sha256": sha256(out / f"firmware.{role}")}
    stored = audit.on_build(out, record)
    return {"sha": stored.image_sha256, "seq": stored.seq, "hex": out / "firmware.hex",
            "bin": out / "firmware.bin"}


@pytest.fixture
def builds(images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict]:
    """blinky (the synthetic base image) and shell (base with sector 2 changed), recorded
    as builds in this test's audit store."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "audit"))
    return {"blinky": _built(tmp_path / "build" / "blinky", "blinky", images.base),
            "shell": _built(tmp_path / "build" / "shell", "shell", images.one_function)}


def flash(capsys, image: Path, *, probe: str = "hilsim:f4-b", board: str = "nucleo-f4",
          faults: str | None = None) -> tuple[int, str]:
    saved = os.environ.pop("HIL_SIM_FAULTS", None)
    if faults:
        os.environ["HIL_SIM_FAULTS"] = faults
    try:
        code = main(["flash", "--board", board, "--probe", probe, "--image", str(image)])
    finally:
        os.environ.pop("HIL_SIM_FAULTS", None)
        if saved is not None:
            os.environ["HIL_SIM_FAULTS"] = saved
    return code, capsys.readouterr().err


def board_json(capsys, rack_id: str) -> dict:
    capsys.readouterr()
    assert main(["audit", "board", rack_id, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def board_text(capsys, rack_id: str) -> str:
    capsys.readouterr()
    assert main(["audit", "board", rack_id]) == 0
    return capsys.readouterr().out


def runs_line(text: str) -> str:
    return next(line for line in text.splitlines() if "runs now:" in line)


def running_on(capsys, image: Path) -> list[str]:
    capsys.readouterr()
    assert main(["audit", "image", str(image), "--json"]) == 0
    return [r["location"] for r in json.loads(capsys.readouterr().out)["running_on"]]


def test_wrong_chip_on_a_fresh_board_runs_nothing(builds, rack, capsys):
    """The issue's reproduction: device_id=0x413 exits 12, nothing written, and the board
    must not be said to run blinky."""
    blinky = builds["blinky"]
    code, err = flash(capsys, blinky["hex"], faults="device_id=0x413")
    assert code == ExitCode.WRONG_CHIP, err
    data = board_json(capsys, "f4-b")
    assert data["running_now"] is None
    assert [(f["image_sha256"], f["state"], f["ok"]) for f in data["flashes"]] == [
        (blinky["sha"], "untouched", False)]
    line = runs_line(board_text(capsys, "f4-b"))
    assert blinky["sha"] not in line and "unknown" in line
    assert running_on(capsys, blinky["hex"]) == []


@pytest.mark.parametrize("attempt", [
    pytest.param("wrong-chip", id="wrong-chip-id"),
    pytest.param("random-hex", id="image-refused-before-the-probe"),
    pytest.param("directory", id="image-is-a-directory"),
])
def test_failure_before_the_chip_leaves_what_runs(attempt, builds, rack, capsys, tmp_path):
    blinky, shell = builds["blinky"], builds["shell"]
    assert flash(capsys, blinky["hex"])[0] == 0
    if attempt == "wrong-chip":
        code, err = flash(capsys, shell["hex"], faults="device_id=0x413")
        assert code == ExitCode.WRONG_CHIP, err
    elif attempt == "random-hex":
        junk = tmp_path / "random.hex"
        junk.write_bytes(os.urandom(1 << 20))
        code, err = flash(capsys, junk)
        assert code in (ExitCode.USAGE, ExitCode.BUILD_FAILED), err
    else:
        code, err = flash(capsys, tmp_path)
        assert code != 0, err
    data = board_json(capsys, "f4-b")
    now = data["running_now"]
    assert now["image_sha256"] == blinky["sha"]
    assert (now["state"], now["verified"]) == ("runs", True)
    if attempt == "wrong-chip":  # a directory, or an image refused before the lease and
        # the probe (hil.foreign checks it first): nothing was attempted, no record
        assert data["flashes"][0]["state"] == "untouched"  # newest first
    assert blinky["sha"] in runs_line(board_text(capsys, "f4-b"))
    assert running_on(capsys, blinky["hex"]) == ["f4-b"]
    assert main(["audit", "verify"]) == 0


def test_rack_entry_of_another_chip_creates_no_location(builds, rack, capsys):
    code, err = flash(capsys, builds["blinky"]["hex"], probe="hilsim:f446-x")
    assert code == ExitCode.WRONG_CHIP, err
    data = board_json(capsys, "f446-x")
    assert data["running_now"] is None
    assert [f["state"] for f in data["flashes"]] == ["untouched"]
    assert main(["audit", "verify"]) == 0
    capsys.readouterr()
    assert main(["audit", "report", "--html", str(Path(rack).with_name("r.html"))]) == 0
    assert 'data-location="f446-x"' not in Path(rack).with_name("r.html").read_text()


def test_probe_not_found_creates_no_location(builds, rack, capsys):
    code, err = flash(capsys, builds["blinky"]["hex"], probe="stlink:066DFF000000000000000042")
    assert code == ExitCode.NO_PROBE, err
    data = board_json(capsys, "f4-usb")
    assert data["running_now"] is None
    assert [f["state"] for f in data["flashes"]] == ["untouched"]


def test_erase_fault_after_a_good_flash_marks_the_board_unknown(builds, rack, capsys,
                                                                tmp_path):
    blinky, shell = builds["blinky"], builds["shell"]
    assert flash(capsys, blinky["hex"])[0] == 0
    # shell differs from blinky in sector 2 (0x08008000): that erase fails
    code, err = flash(capsys, shell["hex"], faults="erase@0x08008000")
    assert code == ExitCode.FLASH_FAILED, err
    now = board_json(capsys, "f4-b")["running_now"]
    assert now["image_sha256"] is None and now["verified"] is False
    assert now["state"] == "unknown" and now["needs_reflash"] is True
    assert now["attempted_image_sha256"] == shell["sha"]
    assert "0x08008000" in now["error"]
    line = runs_line(board_text(capsys, "f4-b"))
    assert "unknown, needs re-flash" in line
    assert running_on(capsys, blinky["hex"]) == []
    assert running_on(capsys, shell["hex"]) == []
    capsys.readouterr()
    assert main(["audit", "toolchain", "gcc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["running_now"] == []
    report = tmp_path / "report.html"
    assert main(["audit", "report", "--html", str(report)]) == 0
    row = next(r for r in report.read_text().split("<tr") if 'data-location="f4-b"' in r)
    assert 'data-state="unknown"' in row and "needs re-flash" in row
    assert main(["audit", "verify"]) == 0
    # a good re-flash makes it known again
    assert flash(capsys, blinky["hex"])[0] == 0
    now = board_json(capsys, "f4-b")["running_now"]
    assert (now["state"], now["image_sha256"]) == ("runs", blinky["sha"])


def test_other_positions_are_not_affected(builds, rack, capsys):
    blinky, shell = builds["blinky"], builds["shell"]
    assert flash(capsys, blinky["hex"], probe="hilsim:f4-c")[0] == 0
    assert flash(capsys, shell["hex"], faults="erase@0x08000000")[0] == ExitCode.FLASH_FAILED
    assert board_json(capsys, "f4-c")["running_now"]["image_sha256"] == blinky["sha"]
    assert running_on(capsys, blinky["hex"]) == ["f4-c"]


def test_bin_with_a_stale_hex_beside_it_audits_the_bin(builds, rack, capsys, tmp_path):
    """x.bin of blinky flashed, x.hex of shell next to it: the record is blinky's."""
    blinky, shell = builds["blinky"], builds["shell"]
    work = tmp_path / "work"
    work.mkdir()
    (work / "x.bin").write_bytes(blinky["bin"].read_bytes())
    (work / "x.hex").write_bytes(shell["hex"].read_bytes())
    code, err = flash(capsys, work / "x.bin")
    assert code == 0, err
    data = board_json(capsys, "f4-b")
    assert data["running_now"]["image_sha256"] == blinky["sha"]
    assert data["running_now"]["build"]["app"] == "blinky"
    written = data["flashes"][0]["image"]
    assert written["sha256"] == sha256(work / "x.bin")
    assert (written["build_seq"], written["artifact"]) == (blinky["seq"], "bin")
    # the same bytes at the same address as blinky's HEX, not shell's
    from hil.flash import content_sha256

    assert written["content_sha256"] == content_sha256(IntelHex(str(blinky["hex"])))
    assert written["content_sha256"] != content_sha256(IntelHex(str(shell["hex"])))
    capsys.readouterr()
    assert main(["audit", "image", str(shell["hex"]), "--json"]) == 0
    shell_view = json.loads(capsys.readouterr().out)
    assert shell_view["flashes"] == [] and shell_view["running_on"] == []
    assert running_on(capsys, work / "x.bin") == ["f4-b"]


def test_image_of_no_build_is_recorded_by_its_own_hash(builds, rack, capsys, tmp_path):
    """A file whose hash is no build's artifact is never tied to a build by its name: it is
    recorded as an external build of its own, by its own hash."""
    blinky = builds["blinky"]
    other = tmp_path / "firmware.bin"  # same name as the build's, different bytes
    data = bytearray(blinky["bin"].read_bytes())
    data[0x100] ^= 0xFF
    other.write_bytes(bytes(data))
    assert flash(capsys, other)[0] == 0
    now = board_json(capsys, "f4-b")
    build = now["running_now"]["build"]
    assert build["external"] and build["app"] != "blinky"
    assert build["artifacts"]["bin"]["sha256"] == sha256(other)
    assert now["flashes"][0]["image"]["sha256"] == sha256(other)
    assert now["flashes"][0]["image"]["build_seq"] == build["seq"]


def test_virtual_board_flash_failure_is_recorded(builds, rack, capsys, tmp_path,
                                                 monkeypatch):
    """The executor that flashes before tests records a failed flash too."""
    from hil.boards import load_board
    from hil.errors import FlashProgramError
    from hil.executors.virtual import VirtualBoardExecutor
    from hil.image import Image
    from hil.rack.inventory import load_rack

    blinky, shell = builds["blinky"], builds["shell"]
    assert flash(capsys, blinky["hex"])[0] == 0
    monkeypatch.setenv("HIL_SIM_FAULTS", "program@0x08008400")
    executor = VirtualBoardExecutor(load_board("nucleo-f4"), load_rack(rack).entry("f4-b"),
                                    work_dir=tmp_path / "run")
    with pytest.raises(FlashProgramError):
        executor.start(Image(hex=shell["hex"], sha256=shell["sha"]))
    monkeypatch.delenv("HIL_SIM_FAULTS")
    now = board_json(capsys, "f4-b")["running_now"]
    assert now["image_sha256"] is None
    assert (now["state"], now["attempted_image_sha256"]) == ("unknown", shell["sha"])


def test_hardware_executor_flash_failure_is_recorded(builds, rack, capsys, tmp_path,
                                                     monkeypatch):
    """A rack board flashed before tests (console on a pyserial loop:// URL here)."""
    from hil.boards import load_board
    from hil.errors import FlashProgramError
    from hil.executors.hardware import HardwareExecutor
    from hil.image import Image
    from hil.rack.inventory import RackEntry

    blinky, shell = builds["blinky"], builds["shell"]
    assert flash(capsys, blinky["hex"])[0] == 0
    entry = RackEntry(id="f4-b", board="nucleo-f4", probe="hilsim:f4-b", console="loop://")
    monkeypatch.setenv("HIL_SIM_FAULTS", "erase@0x08008000")
    executor = HardwareExecutor(load_board("nucleo-f4"), entry, work_dir=tmp_path / "hw")
    with pytest.raises(FlashProgramError):
        executor.start(Image(hex=shell["hex"], sha256=shell["sha"]))
    monkeypatch.delenv("HIL_SIM_FAULTS")
    now = board_json(capsys, "f4-b")["running_now"]
    assert now["image_sha256"] is None
    assert (now["state"], now["attempted_image_sha256"]) == ("unknown", shell["sha"])


def test_interrupt_mid_write_marks_the_board_unknown(builds, rack, capsys):
    """Ctrl-C (or a cancelling signal turned into KeyboardInterrupt) while pyOCD writes."""
    from hil.boards import load_board
    from hil.flash import flash_and_record, make_flasher

    blinky, shell = builds["blinky"], builds["shell"]
    assert flash(capsys, blinky["hex"])[0] == 0

    def interrupt(phase: str, fraction: float) -> None:
        if fraction > 0:
            raise KeyboardInterrupt

    flasher = make_flasher(load_board("nucleo-f4"), "hilsim:f4-b", rack_entry="f4-b")
    with pytest.raises(KeyboardInterrupt):
        flash_and_record(flasher, shell["hex"], progress=interrupt)
    now = board_json(capsys, "f4-b")["running_now"]
    assert now["image_sha256"] is None
    assert (now["state"], now["error"]) == ("unknown", "interrupted while flashing")


@pytest.mark.parametrize(("log", "state"), [
    pytest.param("Error: No J-Link device found\n", "untouched", id="no-probe-untouched"),
    pytest.param("** Programming Started **\nError: fespi: timed out waiting for flash at "
                 "address 0x20011000\n** Programming Failed **\n", "unknown",
                 id="program-failure-unknown"),
])
def test_openocd_failure_state_follows_its_log(log, state, tmp_path, capsys):
    """OpenOCD (hifive1-revb) writes only after "Programming Started": a stand-in binary
    that prints OpenOCD 0.12's log for each case."""
    from hil.boards import load_board
    from hil.errors import FlashError
    from hil.flash import flash_and_record
    from hil.flash.openocd import OpenOCDFlasher

    fake = tmp_path / "openocd"
    (tmp_path / "openocd.log").write_text(log)
    fake.write_text(f"#!/bin/sh\ncat '{tmp_path / 'openocd.log'}' >&2\nexit 1\n")
    fake.chmod(0o755)
    image = tmp_path / "fw.hex"
    ih = IntelHex()
    ih.frombytes(bytes(range(256)) * 4, offset=0x20010000)
    ih.write_hex_file(str(image))
    flasher = OpenOCDFlasher(load_board("hifive1-revb"), "jlink", binary=str(fake),
                             rack_entry="hifive-1")
    with pytest.raises(FlashError):
        flash_and_record(flasher, image)
    capsys.readouterr()
    assert main(["audit", "board", "hifive-1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [f["state"] for f in data["flashes"]] == [state]
    assert (data["running_now"] or {}).get("state") == (None if state == "untouched" else state)
