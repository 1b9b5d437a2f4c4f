"""Reading board, rack and app files: bytes that are not UTF-8, files that are not files,
duplicate keys, unsafe names and numbers out of range are ConfigErrors naming the file and
the key (exit 2), never a traceback, a hang or gigabytes of memory."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hil.app import load_app
from hil.boards import BoardCatalog, load_board_file
from hil.cli import main
from hil.errors import ConfigError
from hil.rack.inventory import load_rack
from hil.schema import MAX_CONFIG_BYTES

BOARD_TEXT = (Path(__file__).parents[2] / "boards" / "nucleo-f4.yaml").read_text()
BASE = yaml.safe_load(BOARD_TEXT)


def board_yaml(change=None, **top) -> str:
    data = copy.deepcopy(BASE)
    data.update({"aliases": [], **top})
    if change:
        change(data)
    return yaml.safe_dump(data, sort_keys=False)


def hil_subprocess(*argv: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    """Run hil as users do; a hang fails the test after a generous bound."""
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "hil", *argv], check=False, capture_output=True,
                          text=True, env=env, timeout=120)


# --------------------------------------------------------------------------- encoding


def test_board_file_that_is_not_utf8_names_file_and_offset(tmp_path, monkeypatch, capsys):
    latin1 = board_yaml(name="latin", description="cafe").encode().replace(b"cafe", b"caf\xe9")
    (tmp_path / "latin.yaml").write_bytes(latin1)
    monkeypatch.setenv("HIL_BOARDS_PATH", str(tmp_path))

    assert main(["boards"]) == 2
    err = capsys.readouterr().err
    offset = latin1.index(b"\xe9")
    assert f"latin.yaml: not UTF-8 text: byte 0xE9 at offset {offset}" in err
    assert "save the file as UTF-8" in err
    assert "Traceback" not in err


def test_rack_file_that_is_not_utf8_is_a_config_error(tmp_path):
    rack = tmp_path / "rack.yaml"
    rack.write_bytes(b"schema: 1\nboards:\n  - id: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"rack.yaml: not UTF-8 text: byte 0xFF at offset 26 "
                       r"\(line 3\)"):
        load_rack(rack)


def test_app_manifest_that_is_not_utf8_is_a_config_error(tmp_path):
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "app.yaml").write_bytes(b"name: \x80bad\n")
    with pytest.raises(ConfigError, match=r"app.yaml: not UTF-8 text: byte 0x80 at offset 6"):
        load_app(tmp_path)


# --------------------------------------------------------------------------- not a file


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _directory(path: Path) -> None:
    path.mkdir()


@pytest.mark.parametrize("make, kind", [
    pytest.param(_fifo, "is a FIFO (named pipe), not a regular file", id="fifo"),
    pytest.param(_dev_zero, "is a character device, not a regular file", id="dev-zero-link"),
    pytest.param(_directory, "is a directory, not a regular file", id="directory"),
])
def test_special_file_among_board_files_is_an_error_not_a_hang(tmp_path, make, kind):
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "team.yaml").write_text(board_yaml(name="team-f4"))
    make(boards / "odd.yaml")

    for argv in (["boards"], ["boards", "nucleo-f4"]):
        proc = hil_subprocess(*argv, env_extra={"HIL_BOARDS_PATH": str(boards)})
        assert proc.returncode == 2, proc.stderr
        assert f"odd.yaml: {kind}" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_fifo_as_rack_file_is_an_error_not_a_hang(tmp_path):
    rack = tmp_path / "rack.yaml"
    os.mkfifo(rack)
    proc = hil_subprocess("rack", "status", "--no-probes", env_extra={"HIL_RACK": str(rack)})
    assert proc.returncode == 2, proc.stderr
    assert "rack.yaml: is a FIFO (named pipe), not a regular file" in proc.stderr


def test_huge_board_file_is_refused_by_its_size(tmp_path, monkeypatch):
    path = tmp_path / "huge.yaml"
    path.write_bytes(board_yaml(name="huge").encode() + b"#" * MAX_CONFIG_BYTES + b"\n")
    with pytest.raises(ConfigError, match=r"huge.yaml: file is \d+ bytes, more than the "
                       r"1048576 bytes"):
        load_board_file(path)


# --------------------------------------------------------------------------- duplicate keys


def test_duplicate_top_level_key_names_key_and_both_lines(tmp_path):
    text = board_yaml(name="dup") + "name: dup2\n"
    first = text.splitlines().index("name: dup") + 1
    last = len(text.splitlines())
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_board_file(path)
    message = str(err.value)
    assert f"dup.yaml: invalid YAML at line {last}, column 1: duplicate key 'name' " \
           f"(first given at line {first})" in message
    assert "give each key once" in message


def test_duplicate_nested_key_in_rack_entry_is_an_error(tmp_path):
    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards:\n  - id: a\n    board: nucleo-f4\n"
                    "    probe: hilsim:a\n    probe: hilsim:b\n")
    with pytest.raises(ConfigError, match=r"line 6, column 5: duplicate key 'probe' "
                       r"\(first given at line 5\)"):
        load_rack(rack)


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    from hil.schema import parse_yaml

    text = b"x: &a {k: 1}\ny:\n  <<: *a\n  j: 2\n"
    assert parse_yaml(text, tmp_path / "m.yaml") == {"x": {"k": 1}, "y": {"k": 1, "j": 2}}


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("field, value, key", [
    pytest.param("name", "..", "name", id="name-dot-dot"),
    pytest.param("name", "../outside", "name", id="name-with-slash"),
    pytest.param("name", ".hidden", "name", id="name-leading-dot"),
    pytest.param("name", "Nucleo", "name", id="name-uppercase"),
    pytest.param("name", "a" * 65, "name", id="name-too-long"),
    pytest.param("aliases", ["ok", "a..b"], "aliases[1]", id="alias-dot-dot"),
])
def test_unsafe_board_names_are_rejected(tmp_path, field, value, key):
    path = tmp_path / "b.yaml"
    path.write_text(board_yaml(**{"name": "fine", field: value}))
    with pytest.raises(ConfigError) as err:
        load_board_file(path)
    assert f"b.yaml: {key}: " in str(err.value)
    assert "is not a valid board name" in str(err.value)
    assert "no '..'" in str(err.value)


def test_board_named_dot_dot_cannot_build_outside_the_build_dir(tmp_path, monkeypatch, capsys):
    (tmp_path / "dotdot.yaml").write_text(board_yaml(name=".."))
    monkeypatch.setenv("HIL_BOARDS_PATH", str(tmp_path))
    monkeypatch.setenv("HIL_BUILD_DIR", str(tmp_path / "build"))
    assert main(["build", "--board", "..", "blinky"]) == 2
    assert "name: '..' is not a valid board name" in capsys.readouterr().err
    assert not (tmp_path / "blinky").exists() and not (tmp_path / "build").exists()


def test_unsafe_app_name_is_rejected(tmp_path):
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "app.yaml").write_text("name: ../../escape\n")
    with pytest.raises(ConfigError, match=r"app.yaml: name: '../../escape' is not a valid app "
                       "name"):
        load_app(tmp_path)


def test_app_define_that_is_a_list_is_rejected(tmp_path):
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "app.yaml").write_text("defines: {LINE_MAX: [[[1]]]}\n")
    with pytest.raises(ConfigError, match=r"app.yaml: defines.LINE_MAX: expected a number or "
                       "a string, got a list"):
        load_app(tmp_path)


# --------------------------------------------------------------------------- numbers


def _set(section: str, key: str, value):
    def change(data):
        data[section][key] = value
    return change


@pytest.mark.parametrize("change, message", [
    pytest.param(_set("console", "qemu_serial", 274877906944),
                 "console.qemu_serial: must be at most 15, got 274877906944",
                 id="qemu-serial-2-pow-38"),
    pytest.param(_set("console", "qemu_serial", 30000000),
                 "console.qemu_serial: must be at most 15", id="qemu-serial-30-million"),
    pytest.param(_set("console", "qemu_serial", 16), "console.qemu_serial: must be at most 15",
                 id="qemu-serial-16"),
    pytest.param(_set("console", "baud", 10**30), "console.baud: must be at most",
                 id="baud-huge"),
    pytest.param(_set("target", "clock_hz", 10**11), "target.clock_hz: must be at most",
                 id="clock-huge"),
    pytest.param(_set("flash", "frequency", 10**12), "flash.frequency: must be at most",
                 id="swd-frequency-huge"),
    pytest.param(lambda d: d.update(stack="4096G"), "stack: must be at most 4294967296 bytes",
                 id="stack-4096G"),
    pytest.param(lambda d: d.update(heap="9" * 5000), "heap: expected a size, got a string",
                 id="size-5000-digits"),
    pytest.param(lambda d: d["memory"][0].update(sectors=[{"size": 1, "count": 1 << 19}]),
                 "memory[0].sectors[0].count: must be at most 65536", id="sector-count-huge"),
    pytest.param(lambda d: d["memory"][0].update(length="4G", origin=0,
                                                 sectors=[{"size": 1, "count": 65536}] * 2),
                 "memory[0].sectors: region FLASH has more than 65536 sectors",
                 id="sector-runs-huge"),
])
def test_board_numbers_are_bounded(tmp_path, change, message):
    path = tmp_path / "n.yaml"
    path.write_text(board_yaml(change, name="numbers"))
    with pytest.raises(ConfigError) as err:
        load_board_file(path)
    assert f"n.yaml: {message}" in str(err.value)


def test_qemu_serial_at_its_maximum_loads(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(board_yaml(_set("console", "qemu_serial", 15), name="ok"))
    assert load_board_file(path).console.qemu_serial == 15


def test_integer_with_thousands_of_digits_is_a_config_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "digits.yaml").write_text(board_yaml(name="digits").replace(
        "qemu_serial: 1", "qemu_serial: " + "9" * 5000))
    monkeypatch.setenv("HIL_BOARDS_PATH", str(tmp_path))
    assert main(["boards", "digits"]) == 2
    err = capsys.readouterr().err
    assert "digits.yaml: invalid YAML" in err and "Traceback" not in err


def test_shipped_catalog_still_loads():
    assert {"nucleo-f4", "hifive1-revb", "lm3s6965evb"} <= set(BoardCatalog().names())
