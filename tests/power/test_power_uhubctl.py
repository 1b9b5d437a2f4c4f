"""The uhubctl power driver: the real uhubctl (Debian's) on a host with no smart hub, and the
command lines it runs, recorded by a stand-in uhubctl first on PATH."""

from __future__ import annotations

import shutil

import pytest
from powersupport import driver, path_with, recorder, write_rack

from hil.errors import PowerError

HUB = """
    driver: uhubctl
    location: "1-1.4"
    port: 2
"""


@pytest.mark.skipif(shutil.which("uhubctl") is None, reason="uhubctl is not installed "
                    "(Debian package uhubctl; make installs it)")
@pytest.mark.parametrize("action", ["on", "off", "cycle"])
def test_real_uhubctl_without_a_hub_names_entry_location_port_and_the_fix(tmp_path, action):
    # This machine has no smart USB hub (no USB at all): uhubctl finds no device at the
    # location and says so; the error must carry that, the entry, the hub and the port.
    power = driver(write_rack(tmp_path, HUB + "    off_time: 0.1\n"))
    with pytest.raises(PowerError) as err:
        getattr(power, action)()
    text = str(err.value)
    assert f"f4-a: power {action} (uhubctl hub 1-1.4 port 2)" in text
    assert "No compatible devices detected" in text  # uhubctl's own words
    assert "run 'uhubctl' with no arguments to list the hubs" in text  # the hint


@pytest.mark.parametrize("action, argv", [
    pytest.param("on", "-l 1-1.4 -p 2 -a on", id="on"),
    pytest.param("off", "-l 1-1.4 -p 2 -a off", id="off"),
    pytest.param("cycle", "-l 1-1.4 -p 2 -a cycle -d 3.5", id="cycle-with-uhubctl-delay"),
])
def test_uhubctl_command_lines(tmp_path, monkeypatch, action, argv):
    log = tmp_path / "argv.log"
    recorder(tmp_path / "bin", "uhubctl", log)
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    power = driver(write_rack(tmp_path, HUB + "    off_time: 3.5\n"))
    getattr(power, action)()
    assert log.read_text().splitlines() == [argv]
    assert power.describe() == "uhubctl 1-1.4 port 2"


def test_permission_problem_gets_the_udev_hint(tmp_path, monkeypatch):
    log = tmp_path / "argv.log"
    recorder(tmp_path / "bin", "uhubctl", log, exit_code=1,
             stderr="There were permission problems while accessing USB.")
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    with pytest.raises(PowerError) as err:
        driver(write_rack(tmp_path, HUB)).off()
    assert "exit status 1" in str(err.value) and "udev rule" in err.value.hint


def test_uhubctl_not_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PowerError, match=r"program 'uhubctl' is not installed"):
        driver(write_rack(tmp_path, HUB)).on()
