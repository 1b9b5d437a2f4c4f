"""The pytest child of ``hil test``: installed pytest plugins are not loaded into it (each
costs start-up time on every run), except hil's own, pytest-xdist with -n and those the
project names in ``[test] pytest_plugins``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.cli import main
from hil.errors import ExitCode

pytestmark = pytest.mark.slow

SUITE = """\
def test_plugins(request):
    pm = request.config.pluginmanager
    loaded = {name for name, _ in pm.list_name_plugin()}
    assert "hil.pytest_plugin" in loaded
    assert ("pytest_timeout" in loaded) == {timeout}, sorted(loaded)
    assert not pm.has_plugin("hypothesispytest"), "installed, not named: not loaded"
    assert not pm.has_plugin("anyio"), "installed, not named: not loaded"
    assert pm.has_plugin("xdist.plugin") == {xdist}
"""


def _project(tmp_path: Path, plugins: str | None, timeout: bool, xdist: bool) -> Path:
    project = tmp_path / "project"
    (project / "suite").mkdir(parents=True)
    (project / "hil.toml").write_text(
        "apps = []\n" + (f"[test]\npytest_plugins = {plugins}\n" if plugins else ""))
    (project / "suite" / "test_plugins.py").write_text(
        SUITE.replace("{timeout}", str(timeout)).replace("{xdist}", str(xdist)))
    return project


@pytest.mark.parametrize(("plugins", "workers"), [
    pytest.param(None, [], id="only-hil"),
    pytest.param('["pytest_timeout"]', [], id="named-in-project-file"),
    pytest.param(None, ["-n", "2"], id="xdist-with-n"),
])
def test_only_named_plugins_are_loaded(tmp_path: Path, plugins, workers, capsys,
                                       monkeypatch: pytest.MonkeyPatch):
    project = _project(tmp_path, plugins, timeout=plugins is not None, xdist=bool(workers))
    monkeypatch.chdir(project)
    rc = main(["test", "--on", "qemu", "--board", "nucleo-f4", "shell",
               "--suite", str(project / "suite"), *workers])
    out, err = capsys.readouterr()
    assert rc == ExitCode.OK, out + err


def test_a_bad_plugin_list_names_the_file_and_key(tmp_path: Path, capsys,
                                                 monkeypatch: pytest.MonkeyPatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "hil.toml").write_text('[test]\npytest_plugins = "pytest_timeout"\n')
    monkeypatch.chdir(project)
    assert main(["test", "--board", "nucleo-f4", "shell"]) == \
        ExitCode.USAGE
    err = capsys.readouterr().err
    assert "hil.toml" in err and "test.pytest_plugins" in err
    assert 'pytest_plugins = ["pytest_timeout"]' in err
