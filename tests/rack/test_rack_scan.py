"""hil rack scan: probes from pyOCD's real discovery (hil's hilsim plugin) paired with serial
ports by USB serial number, entries proposed for the new ones, and --write keeping the rack
file's text, adding only what keeps it valid."""

from __future__ import annotations

import pytest
from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

from hil.cli import main
from hil.errors import ExitCode
from hil.flash.probes import ProbeInfo
from hil.rack.inventory import Rack, load_rack
from hil.rack.scan import SerialPort, append_entries, entry_lines, scan

RACK = """\
# our bench: keep this comment
schema: 1
boards:
  - id: f4-a            # on the left
    board: nucleo-f4
    probe: hilsim:f4-a
    emulator: qemu
# spare entries go above
"""


def usb_port(device: str, serial: str | None) -> ListPortInfo:
    # No USB serial port can exist on this machine (no USB bus in the sandbox): the ports
    # pyserial would list are made here, at the list_ports boundary, as pyserial makes them.
    port = ListPortInfo(device, skip_link_detection=True)
    port.serial_number = serial
    port.description = "STM32 STLink - ST-Link VCP Data"
    return port


@pytest.fixture
def bench(tmp_path, monkeypatch):
    """A rack with f4-a, a simulated probe 'bench-x' (a nucleo-f446re) not in it, and serial
    ports of which /dev/ttyACM7 carries bench-x's serial number."""
    path = tmp_path / "rack.yaml"
    path.write_text(RACK)
    monkeypatch.setenv("HIL_RACK", str(path))
    monkeypatch.setenv("HIL_SIM_BOARDS", "bench-x=nucleo-f446re")
    monkeypatch.setattr(list_ports, "comports", lambda *a, **k: [
        usb_port("/dev/ttyACM3", "0670FF3632"), usb_port("/dev/ttyACM7", "bench-x"),
        usb_port("/dev/ttyS0", None)])
    return path


def test_scan_lists_probes_and_prints_an_entry_for_the_new_one(bench, capsys):
    assert main(["rack", "scan"]) == 0
    out, err = capsys.readouterr()
    # a port whose serial number is no probe's is named, for the user to assign by hand
    assert "serial ports of no probe: /dev/ttyACM3 (STM32 STLink - ST-Link VCP Data " \
           "0670FF3632)" in err and "ttyS0" not in err
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("hilsim:")}
    assert rows["hilsim:f4-a"].endswith("f4-a")  # already in the rack: its entry
    assert rows["hilsim:bench-x"].split()[-2:] == ["/dev/ttyACM7", "new"]
    entry = out.split("# new rack entries", 1)[1]
    assert "  - id: bench-x\n    board: nucleo-f446re\n    probe: 'hilsim:bench-x'\n" \
           "    console: /dev/ttyACM7\n" in entry
    assert "f4-a" not in entry
    assert bench.read_text() == RACK  # printing writes nothing


def test_write_appends_keeping_the_file_text_and_the_result_parses(bench, capsys):
    assert main(["rack", "scan", "--write"]) == 0
    assert "added 1 entry to" in capsys.readouterr().out
    text = bench.read_text()
    head = RACK.split("# spare entries go above\n")[0]
    assert text.startswith(head) and text.endswith("# spare entries go above\n")
    rack = load_rack(bench)
    assert [e.id for e in rack.entries] == ["f4-a", "bench-x"]
    new = rack.entry("bench-x")
    assert new is not None and new.board == "nucleo-f446re"
    assert new.console == "/dev/ttyACM7" and str(new.probe) == "hilsim:bench-x"
    assert main(["rack", "scan", "--write"]) == 0  # nothing new the second time
    assert "every probe found is in" in capsys.readouterr().out
    assert bench.read_text() == text


@pytest.mark.parametrize("before, kept", [
    pytest.param("schema: 1\nboards: []   # none yet\n", "# none yet", id="empty-flow-list"),
    pytest.param("schema: 1\nboards:\n- {id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a'}\n"
                 "leases: {database: 'sqlite:///leases.db'}\n", "leases:", id="list-not-last"),
    pytest.param("schema: 1\nboards: [{id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a'}]\n",
                 "[{id: f4-a", id="flow-list"),
    pytest.param("# a new rack\n", "# a new rack", id="no-boards-key"),
])
def test_write_fits_the_entries_into_each_layout(tmp_path, monkeypatch, capsys, before, kept):
    path = tmp_path / "rack.yaml"
    path.write_text(before)
    monkeypatch.setenv("HIL_RACK", str(path))  # the simulated probes it knows too
    monkeypatch.setenv("HIL_SIM_BOARDS", "bench-x=nucleo-f446re")
    monkeypatch.setattr(list_ports, "comports", lambda *a, **k: [])
    assert main(["rack", "scan", "--rack", str(path), "--write"]) == 0, \
        capsys.readouterr().err
    assert kept in path.read_text()
    assert "bench-x" in [e.id for e in load_rack(path).entries]


def test_write_that_would_make_the_file_invalid_leaves_it_untouched(tmp_path, monkeypatch,
                                                                    capsys):
    # a flow list with a trailing comma is valid YAML; ", {new}" before its ']' is not
    path = tmp_path / "rack.yaml"
    before = "schema: 1\nboards: [{id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a'},]\n"
    path.write_text(before)
    monkeypatch.setenv("HIL_RACK", str(path))  # the simulated probes it knows too
    monkeypatch.setenv("HIL_SIM_BOARDS", "bench-x=nucleo-f446re")
    monkeypatch.setattr(list_ports, "comports", lambda *a, **k: [])
    assert main(["rack", "scan", "--rack", str(path), "--write"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "would make the rack file invalid" in err and "the file is unchanged" in err
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rack.yaml"]  # no temporary file left


def test_usb_probes_pair_with_ports_by_serial_and_boards_come_from_pyocd():
    # USB probes as pyOCD lists them (serial number as unique id, its board info)
    stlink = ProbeInfo("066DFF485550755187121723", "STMicroelectronics", "STM32 STLink",
                       "NUCLEO-F411RE", "stm32f411retx", None)
    jlink = ProbeInfo("760123456", "SEGGER", "J-Link", None, None, None)
    dap = ProbeInfo("0240000032044e4500", "ARM", "DAPLink CMSIS-DAP", "FRDM-K64F", "k64f",
                    None)
    ports = [SerialPort("/dev/ttyACM0", "066dff485550755187121723", "ST-Link VCP",
                        "/dev/serial/by-id/usb-STMicroelectronics_STM32_STLink_066DFF-if02"),
             SerialPort("/dev/ttyACM1", "000760123456", "J-Link CDC"),  # zero-padded
             SerialPort("/dev/ttyUSB0", "A50285BI", "FT232R")]
    found = {f.probe.unique_id: f for f in scan(Rack(None, ()), [stlink, jlink, dap], ports)}
    st = found[stlink.unique_id].proposal
    assert st == {"id": "nucleo-f4-1723", "board": "nucleo-f4",
                  "probe": "066DFF485550755187121723",
                  "console": "/dev/serial/by-id/usb-STMicroelectronics_STM32_STLink_066DFF-if02"}
    assert found[jlink.unique_id].proposal["console"] == "/dev/ttyACM1"
    unknown = found[dap.unique_id]
    assert unknown.proposal["board"] == "FIXME" and "console" not in unknown.proposal
    lines = "\n".join(entry_lines(unknown))
    assert "board: FIXME  # FIXME: a board name from 'hil boards'" in lines
    assert "pyOCD reports board FRDM-K64F, target k64f, which no hil board matches" in lines


def test_write_comments_out_an_entry_whose_board_is_unknown(tmp_path):
    path = tmp_path / "rack.yaml"
    path.write_text(RACK)
    known = ProbeInfo("066DFF485550755187121723", "STMicroelectronics", "STM32 STLink",
                      "NUCLEO-F411RE", "stm32f411retx", None)
    unknown = ProbeInfo("0240000032044e4500", "ARM", "DAPLink CMSIS-DAP", None, None, None)
    found = scan(load_rack(path), [known, unknown], [])
    written = append_entries(path, found)
    assert [f.probe for f in written] == [known]
    text = path.read_text()
    assert "  # - id: board-4500\n  #   board: FIXME" in text  # there to fill in by hand
    assert [e.id for e in load_rack(path).entries] == ["f4-a", "nucleo-f4-1723"]
