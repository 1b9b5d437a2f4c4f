"""The CLI imports only the subcommand it runs; global options' values are not commands."""

from __future__ import annotations

import re
import subprocess
import sys

from hil.cli import main


def test_a_global_option_value_named_like_a_command_is_not_the_command(tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hil.toml").write_text("")
    assert main(["--state-dir", "test", "-C", str(tmp_path), "config"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^state_dir\s+{re.escape(str(tmp_path / 'test'))}\s", out, re.M)


def test_top_level_help_still_lists_every_command(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for name in ("audit", "build", "flash", "rack", "size", "test"):
        assert f"    {name} " in out


def test_running_one_command_loads_no_other_commands_libraries(tmp_path):
    code = ("import sys; from hil.cli import main; main(['config']); "
            "print(sorted(m for m in sys.modules if m.startswith(('hil.cli.', 'pyocd', "
            "'hil.flash', 'hil.audit', 'hil.rack'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['hil.cli.config']"
