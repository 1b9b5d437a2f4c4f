"""The footprint guard: hil size saves a baseline, hil build / hil test / hil size compare
against it, name the symbol that grew, and fail past the threshold."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hil.cli import main
from hil.errors import ExitCode
from hil.size import Limit, parse_threshold

ROOT = Path(__file__).parents[2]
PAD = "static const uint8_t pad[4096] = {1};\n\n"
PAD_USE = "        hil_put_u32(pad[beats % sizeof pad]);\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with a copy of blinky as its one app, built into its own build/."""
    (tmp_path / "hil.toml").write_text('apps = ["apps/*"]\n')
    shutil.copytree(ROOT / "firmware_examples" / "blinky", tmp_path / "apps" / "blinky")
    monkeypatch.delenv("HIL_BUILD_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def grow(project: Path) -> None:
    """Add a 4 KiB constant table that main() reads, so it is linked into flash."""
    main_c = project / "apps" / "blinky" / "main.c"
    text = main_c.read_text()
    text = text.replace("int main(void)", PAD + "int main(void)", 1)
    text = text.replace('        hil_puts("heartbeat ");\n',
                        PAD_USE + '        hil_puts("heartbeat ");\n', 1)
    assert "pad[beats" in text
    main_c.write_text(text)


def save_baseline(project: Path, name: str = "sizes.json") -> dict:
    assert main(["size", "--board", "nucleo-f4", "--save", name]) == ExitCode.OK
    return json.loads((project / name).read_text())


def test_save_writes_regions_and_symbols_of_every_project_app(project):
    data = save_baseline(project)
    (image,) = data["images"]
    assert (image["board"], image["app"], image["toolchain"]) == ("nucleo-f4", "blinky", "gcc")
    build = json.loads((project / "build" / "nucleo-f4" / "blinky" / "build.json").read_text())
    assert image["regions"] == {r["name"]: {"used": r["used"], "length": r["length"]}
                                for r in build["regions"]}
    assert image["symbols"]["main"] > 0
    assert "pad" not in image["symbols"]


def test_growth_of_4k_is_reported_with_the_symbol_and_fails_a_1k_threshold(project, capsys):
    before = save_baseline(project)["images"][0]["regions"]["FLASH"]["used"]
    grow(project)
    capsys.readouterr()
    rc = main(["build", "--board", "nucleo-f4", "--size-baseline", "sizes.json",
               "--size-threshold", "1K"])
    err = capsys.readouterr().err
    assert rc == ExitCode.BUILD_FAILED
    after = json.loads((project / "build" / "nucleo-f4" / "blinky" / "build.json")
                       .read_text())["regions"][0]["used"]
    assert after - before >= 4096
    assert f"FLASH {after} B (+{after - before} B) > 1024 B allowed" in err
    assert "pad: 0 -> 4096 B (+4096 B)" in err
    assert "blinky on nucleo-f4: FLASH grew" in err


def test_growth_within_8k_passes_and_still_prints_the_delta(project, capsys):
    save_baseline(project)
    grow(project)
    capsys.readouterr()
    rc = main(["size", "--board", "nucleo-f4", "--size-baseline", "sizes.json",
               "--size-threshold", "8K"])
    err = capsys.readouterr().err
    assert rc == ExitCode.OK
    assert "pad: 0 -> 4096 B" in err


def test_a_shrink_passes_a_1k_threshold(project, capsys):
    grow(project)
    save_baseline(project)
    shutil.copy(ROOT / "firmware_examples" / "blinky" / "main.c",
                project / "apps" / "blinky" / "main.c")
    capsys.readouterr()
    rc = main(["build", "--board", "nucleo-f4", "--size-baseline", "sizes.json",
               "--size-threshold", "1K"])
    err = capsys.readouterr().err
    assert rc == ExitCode.OK
    assert "FLASH" in err and "(-4" in err  # about 4 KiB less
    assert "pad:" not in err  # only symbols that grew are listed


def test_a_percent_threshold_is_of_the_baseline_use(project, capsys):
    save_baseline(project)
    grow(project)
    # blinky uses about 1.3 KiB of flash: +4 KiB is about +300%
    assert main(["build", "--board", "nucleo-f4", "--size-baseline", "sizes.json",
                 "--size-threshold", "FLASH=100%"]) == ExitCode.BUILD_FAILED
    assert main(["build", "--board", "nucleo-f4", "--size-baseline", "sizes.json",
                 "--size-threshold", "FLASH=1000%,SRAM=0"]) == ExitCode.OK


def test_the_project_file_names_baseline_and_threshold(project, capsys):
    save_baseline(project)
    grow(project)
    (project / "hil.toml").write_text('apps = ["apps/*"]\n[size]\nbaseline = "sizes.json"\n'
                                      'threshold = "1K"\n')
    assert main(["build", "--board", "nucleo-f4"]) == ExitCode.BUILD_FAILED
    assert "pad: 0 -> 4096 B" in capsys.readouterr().err
    # the option wins over the project file
    assert main(["build", "--board", "nucleo-f4", "--size-threshold", "8K"]) == ExitCode.OK


@pytest.mark.parametrize("value, message", [
    pytest.param('"lots"', "'lots' is not a size", id="not-a-size"),
    pytest.param("[1]", "expected bytes or a percent", id="not-a-string"),
    pytest.param('"FLASH="', "'' is not a size", id="region-without-size"),
])
def test_a_bad_project_threshold_names_file_and_key(project, capsys, value, message):
    (project / "hil.toml").write_text(f'apps = ["apps/*"]\n[size]\nthreshold = {value}\n')
    assert main(["build", "--board", "nucleo-f4"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"{project / 'hil.toml'}: size.threshold: " in err and message in err


def test_an_unknown_size_key_is_named(project, capsys):
    (project / "hil.toml").write_text('apps = ["apps/*"]\n[size]\nbaseline_file = "x"\n')
    assert main(["build", "--board", "nucleo-f4"]) == ExitCode.USAGE
    assert "size.baseline_file: unknown key" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["build", "size", "test"])
def test_a_bad_threshold_option_names_the_option(project, capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--board", "nucleo-f4", "--size-threshold", "1Q"])
    assert exc.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "argument --size-threshold: '1Q' is not a size" in err


def test_a_threshold_without_baseline_is_a_usage_error(project, capsys):
    assert main(["build", "--board", "nucleo-f4", "--size-threshold", "1K"]) == ExitCode.USAGE
    assert "--size-threshold needs a baseline" in capsys.readouterr().err


def test_a_missing_or_malformed_baseline_names_the_file(project, capsys):
    assert main(["build", "--board", "nucleo-f4", "--size-baseline", "nope.json"]) == \
        ExitCode.USAGE
    assert "nope.json: no such size baseline" in capsys.readouterr().err
    (project / "bad.json").write_text('{"schema": 1, "images": [{"board": "x"}]}')
    assert main(["build", "--board", "nucleo-f4", "--size-baseline", "bad.json"]) == \
        ExitCode.USAGE
    assert "bad.json: images[0]: malformed image entry" in capsys.readouterr().err


def test_an_image_missing_from_the_baseline_is_said_not_failed(project, capsys):
    save_baseline(project)
    rc = main(["build", "--board", "nucleo-f4", "shell", "--size-baseline", "sizes.json",
               "--size-threshold", "1K"])
    assert rc == ExitCode.OK
    assert "shell on nucleo-f4 (gcc): not in the size baseline" in capsys.readouterr().err


def test_hil_test_passes_its_tests_and_fails_the_gate_on_growth(project, capsys,
                                                               tmp_path, monkeypatch):
    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards: []\n")
    monkeypatch.setenv("HIL_RACK", str(rack))
    save_baseline(project)
    grow(project)
    junit = tmp_path / "r.xml"
    rc = main(["test", "--board", "nucleo-f4", "blinky", "--on", "qemu", "--expect",
               "^hil-blinky", "--junit", str(junit), "--size-baseline", "sizes.json",
               "--size-threshold", "1K"])
    err = capsys.readouterr().err
    assert rc == ExitCode.BUILD_FAILED
    assert 'failures="0"' in junit.read_text()  # the tests ran and passed
    assert "pad: 0 -> 4096 B" in err and "footprint grew past the threshold" in err
    rc = main(["test", "--board", "nucleo-f4", "blinky", "--on", "qemu", "--expect",
               "^hil-blinky", "--size-baseline", "sizes.json", "--size-threshold", "8K"])
    assert rc == ExitCode.OK


@pytest.mark.parametrize("text, expected", [
    pytest.param("1024", {"FLASH": Limit(bytes=1024)}, id="bytes"),
    pytest.param("1K", {"FLASH": Limit(bytes=1024)}, id="kibibytes"),
    pytest.param("1.5KiB", {"FLASH": Limit(bytes=1536)}, id="kib-suffix"),
    pytest.param("2%", {"FLASH": Limit(percent=2.0)}, id="percent"),
    pytest.param("ram=256,2%", {"FLASH": Limit(percent=2.0), "ram": Limit(bytes=256)},
                 id="per-region-and-default"),
])
def test_threshold_forms(text, expected):
    threshold = parse_threshold(text)
    for region, limit in expected.items():
        assert threshold.for_region(region) == limit


@pytest.mark.parametrize("text", ["", "K", "-1K", "1X", "=1K", "1K,,2Q"])
def test_threshold_errors(text):
    with pytest.raises(ValueError):
        parse_threshold(text)


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=hil", "-c", "user.email=hil@example.invalid",
                    *args], cwd=project, check=True, capture_output=True)


def test_a_git_ref_baseline_is_the_stored_build_of_that_commit(project, capsys):
    (project / ".gitignore").write_text("build/\n")
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "base")
    grow(project)  # uncommitted: its builds are recorded dirty, never a baseline
    capsys.readouterr()
    rc = main(["build", "--board", "nucleo-f4", "--size-baseline", "git:HEAD"])
    assert rc == ExitCode.USAGE  # no clean build of HEAD is stored yet
    assert "the audit store has no clean build of commit" in capsys.readouterr().err
    git(project, "checkout", "-q", "--", ".")
    # a separate process, as a CI job that checks out the commit runs it: the clean build
    subprocess.run([sys.executable, "-m", "hil", "build", "--board", "nucleo-f4"],
                   cwd=project, check=True, capture_output=True)
    grow(project)
    capsys.readouterr()
    rc = main(["build", "--board", "nucleo-f4", "--size-baseline", "git:HEAD",
               "--size-threshold", "1K"])
    err = capsys.readouterr().err
    assert rc == ExitCode.BUILD_FAILED, err
    assert "against git:HEAD (its stored build records: regions only)" in err
    assert "blinky on nucleo-f4: FLASH grew +41" in err
    assert main(["build", "--board", "nucleo-f4", "--size-baseline", "git:HEAD",
                 "--size-threshold", "8K"]) == ExitCode.OK
    assert main(["build", "--board", "nucleo-f4", "--size-baseline", "git:no-such-ref"]) == \
        ExitCode.USAGE
    assert "git:no-such-ref: not a commit" in capsys.readouterr().err
