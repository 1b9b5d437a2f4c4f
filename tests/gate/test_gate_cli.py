"""hil test without APP: the plan, the matrix, retries and the gate's exit code, in QEMU."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gatesupport import console_app, unity_failing_app
from junit_rules import assert_valid
from procscan import QEMU_CHILDREN_SOURCE

from hil.audit.store import open_store
from hil.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ["blinky", "selftest", "shell"]
BOARDS = ["hifive1-revb", "lm3s6965evb", "nucleo-f4", "nucleo-f446re"]


def dry_run(capsys, *argv: str) -> list[dict]:
    assert main(["test", "--dry-run", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)["cells"]


def matrix(out: str) -> dict[str, dict[str, str]]:
    """The verdict matrix printed after 'app x board': app -> board -> cell text."""
    lines = out.split("(app x board):\n", 1)[1].splitlines()
    header, rule = lines[0], lines[1]
    starts = [i for i, ch in enumerate(rule) if ch == "-" and (i == 0 or rule[i - 1] == " ")]
    cols = [header[s:].split()[0] for s in starts]
    rows = {}
    for line in lines[2:]:
        if not line or line.startswith(("(", "hil:")):
            break
        cells = [line[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = dict(zip(cols[1:], cells[1:], strict=True))
    return rows


def test_dry_run_in_hils_repository_lists_every_example_on_every_board(
        capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("HIL_PROJECT_ROOT", raising=False)
    cells = dry_run(capsys)
    assert sorted(c["id"] for c in cells) == \
        sorted(f"{a}@{b}" for a in EXAMPLES for b in BOARDS)
    assert all(c["run"] and c["runs_on"] for c in cells)
    assert {c["harness"] for c in cells} == {"console", "unity", "pytest"}
    shards = [[c["id"] for c in dry_run(capsys, "--shard", f"{i}/3")] for i in (1, 2, 3)]
    flat = [cid for part in shards for cid in part]
    assert sorted(flat) == sorted(c["id"] for c in cells) and len(flat) == len(set(flat))
    assert all(shards)  # 12 cells over 3 shards: none is empty
    assert shards == [[c["id"] for c in dry_run(capsys, "--shard", f"{i}/3")]
                      for i in (1, 2, 3)]


@pytest.mark.slow
def test_hil_test_in_hils_repository_runs_every_example_on_every_board(
        capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("HIL_PROJECT_ROOT", raising=False)
    monkeypatch.setenv("HIL_BUILD_DIR", str(tmp_path / "build"))
    rc = main(["test", "--on", "qemu", "-j", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert matrix(out) == {app: dict.fromkeys(BOARDS, "passed in QEMU only")
                           for app in EXAMPLES}


def test_the_plan_runs_two_apps_on_two_boards_and_prints_the_matrix(gate_project, capsys):
    console_app(gate_project, "alpha")
    console_app(gate_project, "beta", "tags: [smoke]\n")
    junit = gate_project / "verdict.xml"
    rc = main(["test", "--on", "qemu", "-b", "nucleo-f4", "-b", "lm3s6965evb",
               "--junit", str(junit)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert matrix(out) == {
        "alpha": {"lm3s6965evb": "passed in QEMU only", "nucleo-f4": "passed in QEMU only"},
        "beta": {"lm3s6965evb": "passed in QEMU only", "nucleo-f4": "passed in QEMU only"}}
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert sorted(s.get("name") for s in suites) == [
        "lm3s6965evb/alpha", "lm3s6965evb/beta", "nucleo-f4/alpha", "nucleo-f4/beta"]
    # the tag filter leaves one app; the matrix shows only it
    assert main(["test", "--on", "qemu", "-b", "nucleo-f4", "--tag", "smoke"]) == 0
    assert matrix(capsys.readouterr().out) == {"beta": {"nucleo-f4": "passed in QEMU only"}}


def _two_virtual_boards(root: Path, faulty: bool = True) -> None:
    faults = "    sim_faults: disconnect_after=20\n" if faulty else ""
    (root / "rack.yaml").write_text(
        "schema: 1\nboards:\n"
        "  - id: f4-a\n    board: nucleo-f4\n    probe: hilsim:gate-f4-a\n"
        f"    emulator: qemu\n{faults}"
        "  - id: f4-b\n    board: nucleo-f4\n    probe: hilsim:gate-f4-b\n"
        "    emulator: qemu\n")


PASSING_TEST = """
def test_booted(dut):
    assert dut is not None
"""


@pytest.mark.parametrize("harness", ["console", "pytest"])
def test_an_infrastructure_failure_is_retried_on_the_other_virtual_board(
        gate_project, capsys, harness):
    d = console_app(gate_project, "alpha")
    if harness == "pytest":
        (d / "app.yaml").write_text("name: alpha\n")
        (d / "tests").mkdir()
        (d / "tests" / "test_alpha.py").write_text(PASSING_TEST)
    _two_virtual_boards(gate_project)
    junit = gate_project / "verdict.xml"
    rc = main(["test", "-b", "nucleo-f4", "-j", "1", "--junit", str(junit)])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    cell = matrix(captured.out)["alpha"]["nucleo-f4"]
    assert cell == "passed after 1 infrastructure retry (f4-a -> f4-b), on a virtual board"
    assert "infrastructure failure" in captured.err
    suites = ET.parse(junit).getroot().findall("testsuite")
    props = [{p.get("name"): p.get("value") for p in s.iter("property")} for s in suites]
    assert [(p.get("hil.rack_id"), p.get("hil.attempt")) for p in props] == \
        [("f4-a", "1"), ("f4-b", "2")]


KILLS_ITS_CONSOLE_ONCE = """
import os
import signal
from pathlib import Path

MARK = Path({mark!r})


""" + QEMU_CHILDREN_SOURCE + """

def test_console_stays(dut):  # the first run kills its board's emulator mid-test
    if not MARK.exists():
        MARK.write_text("killed once")
        for pid in _qemu_children():
            os.kill(pid, signal.SIGKILL)
        dut.expect("never printed", timeout=20)
"""


def test_a_console_killed_mid_run_is_retried_on_the_other_virtual_board(gate_project, capsys,
                                                                        tmp_path):
    d = console_app(gate_project, "alpha")
    (d / "app.yaml").write_text("name: alpha\n")
    (d / "tests").mkdir()
    (d / "tests" / "test_alpha.py").write_text(
        KILLS_ITS_CONSOLE_ONCE.format(mark=str(tmp_path / "mark")))
    _two_virtual_boards(gate_project, faulty=False)
    rc = main(["test", "-b", "nucleo-f4", "-j", "1"])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    assert (tmp_path / "mark").exists()  # the emulator was killed in the first run
    cell = matrix(captured.out)["alpha"]["nucleo-f4"]
    assert cell in ("passed after 1 infrastructure retry (f4-a -> f4-b), on a virtual board",
                    "passed after 1 infrastructure retry (f4-b -> f4-a), on a virtual board")


def test_with_no_infrastructure_retries_the_failure_decides(gate_project, capsys):
    console_app(gate_project, "alpha")
    _two_virtual_boards(gate_project)
    rc = main(["test", "-b", "nucleo-f4", "--infra-retries", "0"])
    out = capsys.readouterr().out
    assert rc == 11  # the probe was lost while flashing
    assert matrix(out)["alpha"]["nucleo-f4"] == "infrastructure error"


def test_an_assertion_failure_is_not_retried(gate_project, capsys):
    unity_failing_app(gate_project, "sums")
    _two_virtual_boards(gate_project, faulty=False)
    junit = gate_project / "verdict.xml"
    rc = main(["test", "-b", "nucleo-f4", "--junit", str(junit)])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert matrix(out)["sums"]["nucleo-f4"] == "failed"
    assert len(ET.parse(junit).getroot().findall("testsuite")) == 1  # one attempt


def test_a_fixture_no_board_has_is_not_run_and_never_a_pass(gate_project, capsys):
    console_app(gate_project, "alpha")
    console_app(gate_project, "bus", "requires: [can]\n")
    rc = main(["test", "--on", "qemu", "-b", "nucleo-f4"])
    out = capsys.readouterr().out
    assert rc == 8, out
    assert matrix(out) == {"alpha": {"nucleo-f4": "passed in QEMU only"},
                           "bus": {"nucleo-f4": "not run: no board with fixture can"}}
    cells = {c["id"]: c for c in dry_run(capsys, "--on", "qemu", "-b", "nucleo-f4")}
    assert cells["bus@nucleo-f4"]["reason"] == "no board with fixture can"
    assert not cells["bus@nucleo-f4"]["run"]


FLAKY_TEST = """
from pathlib import Path

MARK = Path({mark!r})


def test_reply_once_lost(dut):  # the board booted to READY; the first run fails anyway
    if not MARK.exists():
        MARK.write_text("failed once")
        raise AssertionError("the reply was lost")
"""


@pytest.mark.parametrize(("allow", "code"), [
    pytest.param("true", 0, id="allowed"), pytest.param("false", 7, id="not-allowed")])
def test_fail_then_pass_is_flaky_and_the_policy_decides(gate_project, capsys, tmp_path,
                                                        allow, code):
    d = console_app(gate_project, "flaky")
    (d / "app.yaml").write_text("name: flaky\n")  # the pytest suite is its test
    (d / "tests").mkdir()
    (d / "tests" / "test_flaky.py").write_text(FLAKY_TEST.format(mark=str(tmp_path / "mark")))
    with open(gate_project / "hil.toml", "a") as fh:
        fh.write(f"\n[gate]\nallow_flaky = {allow}\n")
    junit_file, report = tmp_path / "verdict.xml", tmp_path / "run.html"
    rc = main(["test", "--on", "qemu", "-b", "nucleo-f4", "--retry-failed", "2",
               "--junit", str(junit_file), "--report", str(report)])
    out = capsys.readouterr().out
    assert rc == code, out
    assert matrix(out)["flaky"]["nucleo-f4"] == "flaky: failed 1 of 2 runs (qemu -> qemu)"
    # the JUnit file keeps the failed attempt as Surefire's flakyFailure, naming its board
    case = next(c for c in ET.parse(junit_file).getroot().iter("testcase")
                if c.get("name") == "test_reply_once_lost")
    assert case.find("failure") is None
    flaky = case.find("flakyFailure")
    assert flaky is not None and "attempt 1 on nucleo-f4" in flaky.get("message", "")
    assert_valid(junit_file)
    assert "flaky" in report.read_text()


def test_the_audit_store_names_the_flaky_test_and_where(gate_project, capsys, tmp_path):
    d = console_app(gate_project, "flaky")
    (d / "app.yaml").write_text("name: flaky\n")
    (d / "tests").mkdir()
    (d / "tests" / "test_flaky.py").write_text(FLAKY_TEST.format(mark=str(tmp_path / "mark")))
    assert main(["test", "--on", "qemu", "-b", "nucleo-f4", "--retry-failed", "2"]) == 0
    capsys.readouterr()
    assert main(["audit", "flaky", "--json"]) == 0
    tests = {(t["app"], t["case"]): t for t in json.loads(capsys.readouterr().out)["tests"]}
    test = tests["flaky", "apps.flaky.tests.test_flaky::test_reply_once_lost"]
    assert test["boards"] == [{"board": "nucleo-f4 (qemu)", "runs": 2, "failures": 1,
                               "flaky": 1}]
    assert test["diagnosis"].startswith("flaky on nucleo-f4 (qemu), the only board it ran on")
    with open_store() as store:  # each attempt's record: its number, why, one cell run
        runs = [r.payload for r in store.since(None, ("test",)) if r.payload.get("app") == "flaky"]
    assert sorted((p["attempt"], p.get("retry"), p["outcome"]) for p in runs) == [
        (1, None, "failed"), (2, "rerun", "passed")]
    assert len({p["cell_run"] for p in runs}) == 1


@pytest.mark.parametrize(("toml", "key"), [
    pytest.param("[gate]\nallow_flaky = 1\n", "gate.allow_flaky", id="flaky-not-bool"),
    pytest.param("[gate]\nrequire_hardware = 'nucleo-f4'\n", "gate.require_hardware",
                 id="boards-not-a-list"),
    pytest.param("[gate]\nrequire_hw = []\n", "gate.require_hw", id="unknown-key"),
])
def test_bad_gate_policy_names_file_and_key(gate_project, capsys, toml, key):
    (gate_project / "hil.toml").write_text(toml)
    assert main(["test", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "hil.toml" in err and key in err


def test_gate_require_hardware_is_not_run_without_hardware(gate_project, capsys):
    console_app(gate_project, "alpha")
    with open(gate_project / "hil.toml", "a") as fh:
        fh.write('\n[gate]\nrequire_hardware = ["nucleo-f4"]\n')
    assert main(["test", "-b", "nucleo-f4", "-b", "lm3s6965evb"]) == 4
    assert matrix(capsys.readouterr().out)["alpha"] == {
        "lm3s6965evb": "passed in QEMU only",
        "nucleo-f4": "not run: hardware required ([gate] require_hardware) and no hardware"}


def _mark_unhealthy(root: Path, rack_id: str, reason: str) -> None:
    from hil.rack import lease_store
    from hil.rack.inventory import load_rack

    with lease_store(load_rack(root / "rack.yaml")) as store:
        store.mark_unhealthy(rack_id, reason)


def test_the_plan_skips_unhealthy_boards_and_says_where_it_runs_instead(gate_project,
                                                                        capsys):
    console_app(gate_project, "alpha")
    _two_virtual_boards(gate_project, faulty=False)
    _mark_unhealthy(gate_project, "f4-a", "probe lost twice")
    (cell,) = [c for c in dry_run(capsys, "-b", "nucleo-f4") if c["run"]]
    assert cell["entries"] == ["f4-b"]
    assert cell["unhealthy"] == [{"rack_id": "f4-a", "reason": "probe lost twice"}]
    assert cell["runs_on"] == "virtual board f4-b (unhealthy, skipped: f4-a)"
    junit = gate_project / "verdict.xml"
    assert main(["test", "-b", "nucleo-f4", "--junit", str(junit)]) == 0
    captured = capsys.readouterr()
    assert "skipping unhealthy f4-a (probe lost twice" in captured.err
    assert matrix(captured.out)["alpha"]["nucleo-f4"] == "passed on a virtual board"
    (suite,) = ET.parse(junit).getroot().findall("testsuite")
    assert {p.get("name"): p.get("value") for p in suite.iter("property")}[
        "hil.rack_id"] == "f4-b"
    # both out of service: the cell allows plain QEMU and runs there
    _mark_unhealthy(gate_project, "f4-b", "console dead")
    assert main(["test", "-b", "nucleo-f4"]) == 0
    assert matrix(capsys.readouterr().out)["alpha"]["nucleo-f4"] == "passed in QEMU only"


def test_a_fixture_only_an_unhealthy_board_has_is_not_run(gate_project, capsys):
    console_app(gate_project, "bus", "requires: [can]\n")
    (gate_project / "rack.yaml").write_text(
        "schema: 1\nboards:\n"
        "  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:gate-f4-a', emulator: qemu, "
        "fixtures: [can]}\n")
    _mark_unhealthy(gate_project, "f4-a", "probe lost twice")
    assert main(["test", "-b", "nucleo-f4"]) == 8
    assert matrix(capsys.readouterr().out)["bus"]["nucleo-f4"] == \
        "not run: every board with fixture can is unhealthy (f4-a: probe lost twice)"


def test_the_junit_files_of_all_shards_name_every_cell_once(gate_project, capsys, tmp_path,
                                                           monkeypatch):
    console_app(gate_project, "alpha")
    console_app(gate_project, "bus", "requires: [can]\n")
    names, codes = [], []
    for i in (1, 2, 3):  # each CI job starts from the same (here: empty) audit store
        monkeypatch.setenv("HIL_STATE_DIR", str(tmp_path / f"state-{i}"))
        junit = tmp_path / f"shard-{i}.xml"
        codes.append(main(["test", "--on", "qemu", "-b", "nucleo-f4", "-b", "lm3s6965evb",
                           "--shard", f"{i}/3", "--junit", str(junit)]))
        assert_valid(junit)
        suites = ET.parse(junit).getroot().findall("testsuite")
        assert suites, f"shard {i} reports nothing"
        names += [s.get("name") for s in suites]
        for s in suites:
            if s.get("name").endswith("/bus"):
                (case,) = s.iter("testcase")
                assert case.find("error").get("message") == \
                    "not run: no board with fixture can"
    capsys.readouterr()
    assert sorted(names) == ["lm3s6965evb/alpha", "lm3s6965evb/bus", "nucleo-f4/alpha",
                             "nucleo-f4/bus"]
    assert sorted(codes) == [0, 8, 8]  # a shard with a not-run cell fails, as the gate does
