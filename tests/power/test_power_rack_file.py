"""power: keys in rack.yaml: every driver checks its keys when the rack file is read (the file
and key named, with the fix), and a site's own driver comes from the hil.power entry points of
an installed distribution."""

from __future__ import annotations

import sys
import textwrap

import pytest
from powersupport import driver, write_rack

from hil.cli import main
from hil.errors import ConfigError
from hil.rack.inventory import load_rack

UHUBCTL = "driver: uhubctl\nlocation: '1-1.4'\nport: 2\n"
PDU = "driver: pdudaemon\nserver: pdu-host\npdu: lab-pdu\nport: 2\n"
COMMAND = "driver: command\non: ./relay.sh on\noff: ./relay.sh off\n"

INVALID = [
    pytest.param(UHUBCTL + "colour: red", "boards[0].power.colour: unknown key",
                 id="uhubctl-unknown-key"),
    pytest.param(UHUBCTL.replace("port: 2", "port: two"),
                 "boards[0].power.port: expected an integer", id="uhubctl-port-not-a-number"),
    pytest.param(UHUBCTL.replace("port: 2", "port: 0"),
                 "boards[0].power.port: must be at least 1", id="uhubctl-port-zero"),
    pytest.param("driver: uhubctl\nport: 2", "boards[0].power.location: is required",
                 id="uhubctl-no-location"),
    pytest.param(UHUBCTL.replace("'1-1.4'", "usb1"),
                 "boards[0].power.location: 'usb1' is not a USB hub location",
                 id="uhubctl-bad-location"),
    pytest.param(UHUBCTL + "off_time: -1", "boards[0].power.off_time: must be between 0",
                 id="uhubctl-negative-off-time"),
    pytest.param(PDU.replace("pdu: lab-pdu\n", ""), "boards[0].power.pdu: is required",
                 id="pdudaemon-no-pdu"),
    pytest.param(PDU.replace("pdu-host", "https://pdu-host"),
                 "boards[0].power.server: 'https://pdu-host': pdudaemon speaks plain http",
                 id="pdudaemon-https"),
    pytest.param(PDU.replace("pdu-host", "'pdu-host:99999'"),
                 "boards[0].power.server: 'pdu-host:99999' is not host[:port]",
                 id="pdudaemon-bad-port"),
    pytest.param(PDU + "delay: 1.5", "boards[0].power.delay: expected an integer",
                 id="pdudaemon-fractional-delay"),
    pytest.param(COMMAND.replace("./relay.sh on", "\"./relay.sh 'on\""),
                 "boards[0].power.on: cannot split", id="command-unclosed-quote"),
    pytest.param(COMMAND.replace("./relay.sh off", "./relay.sh {rack} off"),
                 "boards[0].power.off: unknown placeholder {rack}", id="command-placeholder"),
    pytest.param(COMMAND + "timeout: soon",
                 "boards[0].power.timeout: expected a number of seconds", id="command-timeout"),
    pytest.param(COMMAND.replace("off: ./relay.sh off\n", ""),
                 "boards[0].power.off: is required", id="command-no-off"),
    pytest.param("driver: relay9\nchannel: 1", "boards[0].power.driver: unknown power driver "
                 "'relay9'", id="unknown-driver"),
]


@pytest.mark.parametrize("power, message", INVALID)
def test_bad_power_keys_name_the_rack_file_and_key(tmp_path, power, message):
    path = write_rack(tmp_path, power)
    with pytest.raises(ConfigError) as err:
        load_rack(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_bad_power_key_is_a_usage_error_of_the_cli_not_a_traceback(tmp_path, capsys):
    path = write_rack(tmp_path, UHUBCTL + "colour: red")
    assert main(["rack", "--rack", str(path), "status", "--no-probes"]) == 2
    err = capsys.readouterr().err
    assert "boards[0].power.colour: unknown key" in err and "Traceback" not in err


@pytest.fixture
def site_relay(tmp_path, monkeypatch):
    """An installed distribution 'site-relay' registering power driver 'relay' (a relay board
    that writes its channel states to the file named by its 'state' key)."""
    site = tmp_path / "site"
    (site / "site_relay-1.0.dist-info").mkdir(parents=True)
    (site / "site_relay-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: site-relay\nVersion: 1.0\n")
    (site / "site_relay-1.0.dist-info" / "entry_points.txt").write_text(
        "[hil.power]\nrelay = site_relay:RelayDriver\n")
    (site / "site_relay.py").write_text(textwrap.dedent('''\
        from pathlib import Path

        from hil.errors import PowerError
        from hil.power import PowerDriver


        class RelayDriver(PowerDriver):
            name = "relay"
            off_time = 0.0

            def __init__(self, state, channel):
                self.state, self.channel = state, channel

            @classmethod
            def from_options(cls, spec, entry):
                r = spec.reader()
                state = Path(r.str("state"))
                channel = r.int("channel", minimum=1, maximum=8)
                r.done()
                return cls(state, channel)

            def _set(self, value):
                if not self.state.parent.is_dir():
                    raise PowerError(f"relay board {self.state.parent} is not connected")
                with self.state.open("a") as f:
                    f.write(f"channel {self.channel} {value}\\n")

            def on(self):
                self._set("on")

            def off(self):
                self._set("off")

            def describe(self):
                return f"relay channel {self.channel}"
    '''))
    monkeypatch.syspath_prepend(str(site))
    yield tmp_path / "relay.state"
    sys.modules.pop("site_relay", None)


def test_site_driver_from_the_entry_point_group(tmp_path, site_relay):
    path = write_rack(tmp_path, f"driver: relay\nstate: '{site_relay}'\nchannel: 3")
    power = driver(path)
    assert type(power).__module__ == "site_relay" and power.describe() == "relay channel 3"
    power.cycle()
    assert site_relay.read_text().splitlines() == ["channel 3 off", "channel 3 on"]


def test_site_driver_checks_its_keys_through_the_reader(tmp_path, site_relay):
    path = write_rack(tmp_path, f"driver: relay\nstate: '{site_relay}'\nchannel: 9")
    with pytest.raises(ConfigError, match=r"boards\[0\]\.power\.channel: must be at most 8"):
        load_rack(path)


def readme_power_examples() -> list[str]:
    """The power: blocks of the README's "Power control" section."""
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Power control", 1)[1].split("\n### ", 1)[0]
    yaml_block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    blocks = yaml_block.split("\npower:")
    return [textwrap.dedent("\n".join(b.splitlines()[1:])) for b in blocks]


def test_readme_power_examples_are_valid(tmp_path):
    examples = readme_power_examples()
    assert [e.splitlines()[0] for e in examples] == ["driver: uhubctl", "driver: pdudaemon",
                                                     "driver: command"]
    for example in examples:
        load_rack(write_rack(tmp_path, example))  # raises on any bad key
