"""``hil audit image|toolchain|board``: the auditor's questions, tables and --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from auditdata import make_build_record

from hil import audit
from hil.cli import main
from hil.errors import ExitCode


@pytest.fixture
def rack(state: Path, tmp_path: Path) -> dict[str, dict]:
    """A gcc and a clang build of shell, a gcc build of blinky; flashes and tests."""
    builds = {}
    for key, app, tc, version, sub in (
        ("gcc", "shell", "gcc", "12.2.0", "shell"),
        ("clang", "shell", "clang", "14.0.6", "shell+clang"),
        ("blinky", "blinky", "gcc", "12.2.0", "blinky"),
    ):
        out = tmp_path / "build" / "nucleo-f4" / sub
        record = make_build_record(out, app=app, toolchain=tc, version=version)
        stored = audit.on_build(out, record)
        builds[key] = {"out": out, "record": record, "sha": stored.image_sha256}
    g, c, b = builds["gcc"]["sha"], builds["clang"]["sha"], builds["blinky"]["sha"]
    audit.record_flash(image_sha256=g, board="nucleo-f4", rack_id="rack1-a", probe="P1",
                       chip_id=0x413, verified=True, erased=2, programmed=4096, user="alice")
    audit.record_test(image_sha256=g, board="nucleo-f4", rack_id="rack1-a",
                      executor="hardware", passed=7, failed=1, skipped=0,
                      junit="out/hw.xml", toolchain="gcc")
    audit.record_test(image_sha256=g, board="nucleo-f4", rack_id=None, executor="qemu",
                      passed=8, failed=0, skipped=1, junit="out/qemu.xml", toolchain="gcc")
    audit.record_flash(image_sha256=c, board="nucleo-f4", rack_id="rack1-b", probe="P2",
                       chip_id=0x413, verified=True, user="bob")
    audit.record_flash(image_sha256=b, board="nucleo-f4", rack_id="rack1-a", probe="P1",
                       chip_id=0x413, verified=True, user="carol")
    return builds


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_image_names_the_exact_compiler(rack: dict, capsys: pytest.CaptureFixture[str]):
    gcc = rack["gcc"]
    hex_file = gcc["out"] / "firmware.hex"
    assert main(["audit", "image", str(hex_file)]) == 0
    out = capsys.readouterr().out
    tools = gcc["record"]["toolchain"]["tools"]
    for role in ("cc", "cc1", "as", "ld", "objcopy"):
        assert tools[role]["sha256"] in out
        assert tools[role]["version"] in out
    assert "gcc 12.2.0" in out
    assert "reproducible checked: no" in out
    assert "rack1-a" in out and "alice" in out
    hw, qemu = out.index("tests on hardware:"), out.index("tests on qemu:")
    assert "out/hw.xml" in out[hw:qemu] and "out/qemu.xml" in out[qemu:]


def test_image_json_tells_hardware_and_qemu_apart(rack: dict,
                                                  capsys: pytest.CaptureFixture[str]):
    data = _json(["audit", "image", rack["gcc"]["sha"]], capsys)
    assert [t["passed"] for t in data["tests"]["hardware"]] == [7]
    assert [t["passed"] for t in data["tests"]["qemu"]] == [8]
    assert data["builds"][0]["toolchain"]["compiler"]["cc1"]["sha256"] == \
        rack["gcc"]["record"]["toolchain"]["tools"]["cc1"]["sha256"]
    assert data["builds"][0]["git"]["commit"] == "a" * 40
    assert data["running_on"] == []  # rack1-a was reflashed with blinky


def test_image_by_elf_or_clang_output(rack: dict, capsys: pytest.CaptureFixture[str]):
    data = _json(["audit", "image", str(rack["clang"]["out"] / "firmware.elf")], capsys)
    assert data["image_sha256"] == rack["clang"]["sha"]
    assert data["builds"][0]["toolchain"]["name"] == "clang"
    assert [r["location"] for r in data["running_on"]] == ["rack1-b"]


def test_reproducible_checked_is_shown(state: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "repro"
    record = make_build_record(out, salt="repro")
    record["reproducible_checked"] = True
    audit.on_build(out, record)
    assert main(["audit", "image", str(out / "firmware.hex")]) == 0
    assert "reproducible checked: yes" in capsys.readouterr().out


def test_unknown_image_is_a_usage_error(rack: dict, capsys: pytest.CaptureFixture[str]):
    assert main(["audit", "image", "f" * 64]) == ExitCode.USAGE
    assert "not in the audit store" in capsys.readouterr().err
    assert main(["audit", "image", "nonsense"]) == ExitCode.USAGE


def test_toolchain_by_name_lists_images_and_where_they_run(
        rack: dict, capsys: pytest.CaptureFixture[str]):
    data = _json(["audit", "toolchain", "gcc"], capsys)
    assert {i["image_sha256"] for i in data["images"]} == {rack["gcc"]["sha"],
                                                          rack["blinky"]["sha"]}
    assert [(r["location"], r["app"]) for r in data["running_now"]] == [("rack1-a", "blinky")]
    data = _json(["audit", "toolchain", "clang@14.0.6"], capsys)
    assert [i["image_sha256"] for i in data["images"]] == [rack["clang"]["sha"]]
    assert [r["location"] for r in data["running_now"]] == ["rack1-b"]


def test_toolchain_by_compromised_tool_hash(rack: dict, capsys: pytest.CaptureFixture[str]):
    assembler = rack["gcc"]["record"]["toolchain"]["tools"]["as"]["sha256"]
    data = _json(["audit", "toolchain", assembler], capsys)
    assert data["query"]["matched_as"] == ["tool:as"]
    assert data["builds_total"] == 2
    assert main(["audit", "toolchain", assembler]) == 0
    out = capsys.readouterr().out
    assert rack["blinky"]["sha"] in out and "rack1-a" in out


def test_unknown_toolchain(rack: dict, capsys: pytest.CaptureFixture[str]):
    assert main(["audit", "toolchain", "icc"]) == ExitCode.USAGE
    assert "no build" in capsys.readouterr().err


def test_board_history(rack: dict, capsys: pytest.CaptureFixture[str]):
    data = _json(["audit", "board", "rack1-a"], capsys)
    assert data["running_now"]["image_sha256"] == rack["blinky"]["sha"]
    assert data["running_now"]["user"] == "carol"
    assert data["running_now"]["build"]["app"] == "blinky"
    assert [f["user"] for f in data["flashes"]] == ["carol", "alice"]
    assert [t["executor"] for t in data["tests"]] == ["hardware"]
    assert main(["audit", "board", "rack1-a"]) == 0
    out = capsys.readouterr().out
    assert "runs now:" in out and rack["blinky"]["sha"] in out and "alice" in out


def test_unknown_board(rack: dict, capsys: pytest.CaptureFixture[str]):
    assert main(["audit", "board", "rack9"]) == ExitCode.USAGE


def test_cli_end_to_end_subprocess(rack: dict, state: Path):
    hex_file = rack["gcc"]["out"] / "firmware.hex"
    hil = str(Path(sys.executable).with_name("hil"))
    r = subprocess.run([hil, "audit", "image", str(hex_file)], check=False,
                       capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert rack["gcc"]["record"]["toolchain"]["tools"]["cc"]["sha256"] in r.stdout
    r = subprocess.run([hil, "audit", "verify"],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_report_bad_since_is_a_usage_error(rack: dict, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]):
    assert main(["audit", "report", "--since", "last tuesday", "--html",
                 str(tmp_path / "r.html")]) == ExitCode.USAGE
    assert "not a date" in capsys.readouterr().err


def test_report_is_self_contained(rack: dict, tmp_path: Path):
    """Without a browser: the file references nothing outside itself and names every image."""
    import re

    path = tmp_path / "r.html"
    assert main(["audit", "report", "--html", str(path)]) == 0
    text = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<script" not in text
    for build in rack.values():
        assert f'data-sha256="{build["sha"]}"' in text
