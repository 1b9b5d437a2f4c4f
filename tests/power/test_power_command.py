"""The command power driver with real small scripts: argv without a shell, placeholders,
a failing command's stderr in the error, a hung command bounded by its timeout."""

from __future__ import annotations

import pytest
from powersupport import driver, script, write_rack

from hil.errors import PowerError


@pytest.fixture
def relay(tmp_path):
    """A relay script that records each call's arguments (one line per call)."""
    log = tmp_path / "relay.log"
    script(tmp_path / "relay.sh", f'printf "%s|" "$@" >> "{log}"; echo >> "{log}"\n')
    return log


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def test_on_off_run_their_commands_with_placeholders_and_no_shell(tmp_path, relay):
    # a relative program is found next to the rack file; quoting is split like a shell
    # does, but ';' is an argument, not a command separator
    path = write_rack(tmp_path, """
        driver: command
        on: "./relay.sh on '{id} of {board}' ;"
        off: ./relay.sh off {id}
    """)
    power = driver(path)
    power.on()
    power.off()
    assert calls(relay) == ["on|f4-a of nucleo-f4|;|", "off|f4-a|"]


def test_cycle_without_a_cycle_command_is_off_then_on(tmp_path, relay):
    path = write_rack(tmp_path, """
        driver: command
        on: ./relay.sh on
        off: ./relay.sh off
        off_time: 0
    """)
    power = driver(path)
    power.cycle()
    assert calls(relay) == ["off|", "on|"]
    # what `hil rack power` prints names the command it is about to run
    assert power.describe("off").endswith("relay.sh off")
    assert power.describe("on").endswith("relay.sh on")
    assert "relay.sh off, then ./relay.sh on" in power.describe("cycle")


def test_cycle_command_is_used_when_given(tmp_path, relay):
    path = write_rack(tmp_path, """
        driver: command
        on: ./relay.sh on
        off: ./relay.sh off
        cycle: ./relay.sh pulse {id}
    """)
    power = driver(path)
    power.cycle()
    assert calls(relay) == ["pulse|f4-a|"]
    assert "relay.sh pulse f4-a" in power.describe()


def test_failing_command_raises_power_error_with_its_stderr_tail(tmp_path):
    script(tmp_path / "relay.sh", """\
        echo "opening /dev/ttyRELAY" >&2
        echo "relay board: channel 9 does not exist" >&2
        exit 3
    """)
    path = write_rack(tmp_path, """
        driver: command
        on: ./relay.sh 9 on
        off: ./relay.sh 9 off
    """)
    with pytest.raises(PowerError) as err:
        driver(path).off()
    text = str(err.value)
    assert "f4-a: power off" in text and "exited with status 3" in text
    assert "channel 9 does not exist" in text


def test_hung_command_is_stopped_at_its_timeout(tmp_path):
    marker = tmp_path / "finished"
    script(tmp_path / "hang.sh", f'sleep 60\ntouch "{marker}"\n')
    path = write_rack(tmp_path, """
        driver: command
        on: ./hang.sh
        off: ./hang.sh
        timeout: 0.5
    """)
    with pytest.raises(PowerError, match=r"did not finish within 0.5 s"):
        driver(path).on()
    assert not marker.exists()


def test_missing_program_is_a_power_error_naming_it(tmp_path):
    path = write_rack(tmp_path, """
        driver: command
        on: no-such-relay-tool on
        off: no-such-relay-tool off
    """)
    with pytest.raises(PowerError, match=r"f4-a: power on: program 'no-such-relay-tool' is "
                       r"not installed"):
        driver(path).on()
