"""Harnesses come from the ``hil.harness`` entry points: hil's own and a team's."""

from __future__ import annotations

import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from hsupport import firmware_app, junit_cases, status

from hil import harnesses
from hil.app import load_app
from hil.boards import load_board
from hil.build import build
from hil.cli import main
from hil.errors import ConfigError, ExitCode, UsageError
from hil.settings import read_project_file

LINECOUNT = '''\
"""A team's own harness: one case per 'START - ' line, done at 'PROJECT EXECUTION'."""

from hil.harnesses.base import TestCase


class StartCounter:
    name = "startcount"

    def __init__(self, config):
        self.config = config
        self.run_timeout = 30.0
        self.done = False

    def feed(self, line):
        if line.startswith("PROJECT EXECUTION"):
            self.done = True
        if line.startswith("START - "):
            return [TestCase("saw " + line[8:], "team." + self.config.app, "passed")]
        return []

    def finish(self, stop):
        return []
'''


@pytest.fixture
def team_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A distribution on sys.path (not installed) registering ``startcount``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "team_harness.py").write_text(LINECOUNT)
    info = site / "team_harness-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: team-harness\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [hil.harness]
        startcount = team_harness:StartCounter
        """))
    monkeypatch.syspath_prepend(str(site))
    return "startcount"


def test_hil_registers_its_own_harnesses_through_the_group():
    installed = {ep.name: ep.value for ep in metadata.entry_points(group=harnesses.GROUP)}
    assert installed == harnesses.BUILTIN
    assert harnesses.names() == ("pytest", "console", "unity", "ztest")


def test_unknown_harness_names_the_known_ones():
    with pytest.raises(UsageError, match="unknown harness 'nope'") as info:
        harnesses.factory("nope")
    assert "pytest, console, unity, ztest" in str(info.value)


@pytest.mark.slow
def test_a_team_harness_is_picked_up_by_harness_name(team_harness, tmp_path: Path):
    assert team_harness in harnesses.names()
    app = firmware_app("ztest", tmp_path / "zt", "defines: {ZT_VARIANT: 1}\n")
    elf = build(load_board("nucleo-f4"), app, out=tmp_path / "out").elf
    junit = tmp_path / "team.xml"
    rc = main(["test", "--board", "nucleo-f4", "--on", "qemu", "--image", str(elf),
               "--harness", team_harness, "--junit", str(junit)])
    assert rc == ExitCode.OK
    cases = junit_cases(junit)
    assert sorted(name for _, name in cases) == \
        ["saw test_add", "saw test_later", "saw test_len", "saw test_sum"]
    assert {k[0] for k in cases} == {"team.firmware"}
    assert all(status(c) == "passed" for c in cases.values())


def test_project_file_default_harness_may_be_a_team_harness(team_harness, tmp_path: Path):
    project = tmp_path / "hil.toml"
    project.write_text(f'[test]\nharness = "{team_harness}"\n')
    assert read_project_file(project, tmp_path)["test_harness"] == team_harness
    project.write_text('[test]\nharness = "zephyr"\n')
    with pytest.raises(ConfigError, match=r"test\.harness") as info:
        read_project_file(project, tmp_path)
    assert "ztest" in str(info.value) and str(project) in str(info.value)


def _app(tmp_path: Path, yaml: str) -> Path:
    d = tmp_path / "a"
    d.mkdir(parents=True)
    (d / "main.c").write_text("int main(void) { return 0; }\n")
    (d / "app.yaml").write_text("name: a\n" + textwrap.dedent(yaml))
    return d


def test_app_yaml_names_its_harness_and_patterns(tmp_path: Path):
    app = load_app(_app(tmp_path, """\
        harness: console
        expect: ["^boot", 'ready \\d+']
        ordered: true
        """))
    assert (app.harness, app.expect, app.ordered) == ("console", ("^boot", r"ready \d+"), True)
    assert load_app(_app(tmp_path / "z", "harness: ztest\n")).harness == "ztest"


@pytest.mark.parametrize(("yaml", "key", "words"), [
    pytest.param("harness: zephyr\n", "harness", "'zephyr' is not one of pytest, console",
                 id="unknown-harness"),
    pytest.param("harness: unity\nexpect: [x]\n", "expect", "goes with 'harness: console'",
                 id="expect-without-console"),
    pytest.param("ordered: true\n", "ordered", "goes with 'harness: console'",
                 id="ordered-without-console"),
    pytest.param("harness: console\nexpect: [ok, '(']\n", "expect[1]",
                 "'(' is not a regular expression", id="bad-regex"),
    pytest.param("harness: console\nexpect: ok\n", "expect", "expected a list",
                 id="expect-not-a-list"),
    pytest.param("harness: console\nexpect: [ok]\nordered: yes please\n", "ordered",
                 "expected true or false", id="ordered-not-a-bool"),
])
def test_bad_harness_keys_name_file_and_key(tmp_path: Path, yaml, key, words):
    directory = _app(tmp_path, yaml)
    with pytest.raises(ConfigError) as info:
        load_app(directory)
    text = str(info.value)
    assert str(directory / "app.yaml") in text and key in text and words in text
