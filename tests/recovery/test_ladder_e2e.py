"""The recovery ladder end to end through ``hil test``: a virtual board whose QEMU is
SIGSTOPped mid-test (a wedged chip) is brought back by a power cycle and the test passes
on it; without power control it is marked unhealthy and the job moves to the other board.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from procscan import QEMU_CHILDREN_SOURCE

from hil.audit.store import open_store
from hil.cli import main
from hil.flash.sim.power import switch_power
from hil.flash.sim.store import sim_dir
from hil.paths import state_dir
from hil.rack.leases import open_store as open_leases
from hil.recovery import STEPS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                 reason="qemu-system-arm absent")]

# The first run (marked by MARK) stops its board's QEMU, then pings: silence.
HANGS_ITS_BOARD_ONCE = """
import os
import signal
from pathlib import Path

MARK = Path({mark!r})


""" + QEMU_CHILDREN_SOURCE + """

def test_ping(dut, hil_executor):
    if not MARK.exists():
        pids = list(_qemu_children())
        assert pids, "no QEMU child found"
        MARK.write_text(f"{{hil_executor.entry.id}} {{pids}}")
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
    assert dut.command("ping", timeout=3) == ["pong"]


def test_after(dut):  # on a board given up on, it fails as its board did
    assert dut.command("add 2 3") == ["5"]
"""


def _app(root: Path, mark: Path) -> None:
    """The shell example (with its library) as the project's one app, with a suite that
    hangs the board once."""
    examples = Path(__file__).resolve().parents[2] / "firmware_examples"
    for name in ("shell", "lib"):
        shutil.copytree(examples / name, root / "fw" / name)
    tests = root / "fw" / "shell" / "tests"
    shutil.rmtree(tests)
    tests.mkdir()
    (tests / "test_hang.py").write_text(HANGS_ITS_BOARD_ONCE.format(mark=str(mark)))
    (root / "hil.toml").write_text('apps = ["fw/shell"]\nrack = "rack.yaml"\n')


def _rack(root: Path, *entries: tuple[str, bool]) -> None:
    text = "schema: 1\nboards:\n"
    for rack_id, power in entries:
        text += (f"  - id: {rack_id}\n    board: nucleo-f4\n    probe: hilsim:rec-{rack_id}\n"
                 "    emulator: qemu\n")
        if power:
            text += "    power: {driver: virtual}\n"
    (root / "rack.yaml").write_text(text)


def _recoveries(rack_id: str) -> list[tuple[str, bool]]:
    with open_store(str(state_dir() / "audit.sqlite")) as store:
        return [(r.payload["step"], r.payload["ok"]) for r in store.since(None, ("recovery",))
                if r.payload["rack_id"] == rack_id][::-1]


def _health(rack_id: str):
    with open_leases(state_dir() / "leases.sqlite") as store:
        return store.health().get(rack_id), store.health_log(rack_id)


def _report_cell(path: Path) -> dict[str, str]:
    """The one matrix cell of an HTML run report: its attributes and its text."""
    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.cells: list[dict[str, str]] = []
            self.inside = False

        def handle_starttag(self, tag, attrs):
            if tag == "td" and "cell" in (dict(attrs).get("class") or "").split():
                self.cells.append({k: v or "" for k, v in attrs} | {"text": ""})
                self.inside = True

        def handle_endtag(self, tag):
            self.inside = self.inside and tag != "td"

        def handle_data(self, data):
            if self.inside:
                self.cells[-1]["text"] += data

    parser = Cells()
    parser.feed(path.read_text(encoding="utf-8"))
    [cell] = parser.cells
    return cell


def test_a_wedged_virtual_board_is_recovered_by_a_power_cycle(project, tmp_path, capsys):
    mark = tmp_path / "hung"
    _app(project, mark)
    _rack(project, ("f4-p", True))
    junit, report = tmp_path / "verdict.xml", tmp_path / "report.html"
    rc = main(["test", "-b", "nucleo-f4", "-j", "1", "--timeout", "3", "--junit", str(junit),
               "--report", str(report)])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err  # a recovered pass is a pass for the gate
    assert mark.exists()  # the board was hung once
    # ... but never reads as a clean one: the matrix cell, the run's verdict, the report
    matrix = captured.out.split("test plan's verdict", 1)[1]
    assert "passed on a virtual board, recovered by power-cycle (f4-p)" in matrix
    runs = captured.out.split("test plan's verdict", 1)[0]
    assert "recovered by power-cycle (f4-p)" in runs
    cell = _report_cell(report)
    assert cell["data-verdict"] == "passed-virtual"
    assert cell["data-recovered"] == "recovered by power-cycle (f4-p)"
    assert "passed on a virtual board, recovered by power-cycle (f4-p)" in cell["text"]
    ping, after = ET.parse(junit).getroot().iter("testcase")
    for case in (ping, after):
        assert case.find("failure") is None and case.find("error") is None
    assert "recovered by power-cycle" in ping.findtext("system-out", "")
    assert _recoveries("f4-p") == [("reconnect-console", False), ("swd-reset", False),
                                   ("connect-under-reset", False), ("power-cycle", True)]
    health, log = _health("f4-p")
    assert health is None or health.healthy
    assert [(e.kind, e.step, e.ok) for e in log] == [
        ("recovery", "reconnect-console", False), ("recovery", "swd-reset", False),
        ("recovery", "connect-under-reset", False), ("recovery", "power-cycle", True)]
    transcripts = list((state_dir() / "runs").rglob("console.log"))
    assert any("recovered by power-cycle" in t.read_text() for t in transcripts)
    assert main(["audit", "board", "f4-p"]) == 0  # what a user asks afterwards
    shown = capsys.readouterr().out.split("recovery ladder steps:", 1)[1]
    rows = [line.split() for line in shown.splitlines()]
    steps = [row[1:3] for row in rows if len(row) > 2 and row[1] in STEPS]
    assert steps == [["power-cycle", "recovered"], ["connect-under-reset", "failed:"],
                     ["swd-reset", "failed:"], ["reconnect-console", "failed:"]]  # newest first

    # the single-app form says it too, on a board also left switched off: its start is
    # power-cycled, then its hang
    mark.unlink()
    switch_power(sim_dir(), "rec-f4-p", False)
    report = tmp_path / "single.html"
    rc = main(["test", "-b", "nucleo-f4", "fw/shell", "--timeout", "3", "--report", str(report)])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    assert mark.exists()  # hung again
    [row] = [line for line in captured.out.splitlines() if line.startswith("nucleo-f4 ")]
    words = "recovered by power-cycle at start (f4-p), power-cycle (f4-p)"
    assert row.endswith(f"not a hardware pass, {words}")
    assert _report_cell(report)["data-recovered"] == words


def test_a_wedged_board_without_power_control_is_taken_out_and_the_job_moves(
        project, tmp_path, capsys):
    mark = tmp_path / "hung"
    _app(project, mark)
    _rack(project, ("f4-a", False), ("f4-b", False))
    junit = tmp_path / "verdict.xml"
    rc = main(["test", "-b", "nucleo-f4", "-j", "1", "--timeout", "3", "--junit", str(junit)])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    hung = mark.read_text().split()[0]
    other = {"f4-a": "f4-b", "f4-b": "f4-a"}[hung]
    assert f"passed after 1 infrastructure retry ({hung} -> {other})" in captured.out
    first, second = ET.parse(junit).getroot().findall("testsuite")
    given_up = [(c.get("name"), next(iter(c)).get("message", "")) for c in first.iter("testcase")]
    assert [name for name, _ in given_up] == ["test_ping", "test_after"]
    assert all(f"{hung}: recovery failed:" in message for _, message in given_up)
    assert all(c.find("failure") is None and c.find("error") is None
               for c in second.iter("testcase"))
    assert _recoveries(hung) == [("reconnect-console", False), ("swd-reset", False),
                                 ("connect-under-reset", False), ("reflash", False)]
    health, log = _health(hung)
    assert health is not None and not health.healthy
    assert health.unhealthy_reason.startswith("recovery failed: ")
    assert log[-1].kind == "unhealthy" and log[-1].detail == health.unhealthy_reason
    assert _recoveries(other) == []
