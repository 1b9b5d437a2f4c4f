"""Where hil writes: a build, cache or state directory that is a file, a full build
directory and a --junit path that is a directory are named with the fix, before the work is
lost, never as a bare "Not a directory" or a complaint about the wrong file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from hil.cli import main
from hil.errors import ExitCode


@pytest.mark.parametrize("env, code", [
    pytest.param("HIL_BUILD_DIR", ExitCode.USAGE, id="build-dir"),
    pytest.param("HIL_CACHE_DIR", ExitCode.USAGE, id="cache-dir"),
    pytest.param("HIL_STATE_DIR", ExitCode.AUDIT_FAILED, id="state-dir"),
])
def test_directory_that_is_a_file_is_named_with_its_setting(tmp_path, monkeypatch, capsys,
                                                            env, code):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory\n")
    monkeypatch.setenv("HIL_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv(env, str(blocker))
    assert main(["build", "--board", "nucleo-f4", "blinky"]) == code
    err = capsys.readouterr().err
    assert f"{blocker} is a file, not a directory" in err
    assert "move that file away" in err and env in err
    assert "Traceback" not in err


def test_junit_path_that_is_a_directory_is_refused_before_the_run(tmp_path, capsys):
    from hil.paths import state_dir

    code = main(["test", "--board", "nucleo-f4", "--on", "qemu", "--junit", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE, err
    assert f"--junit {tmp_path}: is a directory; the JUnit verdict is a file" in err
    assert f"--junit {tmp_path / 'report.xml'}" in err
    assert "building" not in err and not (state_dir() / "runs").exists()


def test_junit_path_below_a_file_is_refused_before_the_run(tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    code = main(["test", "--board", "nucleo-f4", "--junit", str(blocker / "report.xml")])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert f"{blocker} is a file, not a directory" in err


def _can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"],
                          capture_output=True, check=False, timeout=30).returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="needs root and mount namespaces (unshare -m) "
                    "to mount a small full tmpfs")
def test_full_build_dir_is_blamed_not_the_cache(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    cache = tmp_path / "cache"
    script = (f"set -e; mount -t tmpfs -o size=64k none {build}; "
              f"dd if=/dev/zero of={build}/fill bs=4k 2>/dev/null || true; "
              f'"{sys.executable}" -m hil build --board nucleo-f4 blinky; echo "rc=$?"')
    env = {**os.environ, "HIL_BUILD_DIR": str(build), "HIL_CACHE_DIR": str(cache),
           "HIL_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script.replace("set -e; ", "")],
                          capture_output=True, text=True, check=False, env=env, timeout=300)
    assert "rc=2" in proc.stdout, proc.stderr
    assert f"hil: error: {build}/nucleo-f4/" in proc.stderr
    assert "no space left on the device" in proc.stderr
    assert "set HIL_BUILD_DIR to another directory" in proc.stderr
    assert str(cache) not in proc.stderr
