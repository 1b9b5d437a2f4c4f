"""The rack as users drive it: rack.yaml validation, `hil rack`, virtual boards under
`hil test -n 2`, and boards that keep failing turning unhealthy."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import junit_rules
import pytest

from hil.cli import main
from hil.errors import ConfigError, ExitCode
from hil.rack import lease_store, load_rack
from hil.rack.inventory import parse_rack

ROOT = Path(__file__).parents[2]


def rack_file(tmp_path: Path, body: str, name: str = "rack.yaml") -> Path:
    path = tmp_path / name
    path.write_text("schema: 1\nboards:\n" + body)
    return path


INVALID = [
    pytest.param("  - {id: a, board: nucleo-f4, probe: hilsim:a, colour: red}\n",
                 "boards[0].colour: unknown key", id="unknown-key"),
    pytest.param("  - {id: a, board: nucleo-f4, probe: hilsim:a}\n"
                 "  - {id: a, board: nucleo-f4, probe: hilsim:b}\n",
                 "boards[1].id: duplicate rack entry id 'a'", id="duplicate-id"),
    pytest.param("  - {id: a, board: nucleo-f4, probe: hilsim:a}\n"
                 "  - {id: b, board: nucleo-f4, probe: hilsim:a}\n",
                 "probe hilsim:a is already used by rack entry 'a'", id="probe-twice"),
    pytest.param("  - {id: a, board: nucleo-f5, probe: hilsim:a}\n",
                 "boards[0].board: unknown board 'nucleo-f5'", id="unknown-board"),
    pytest.param("  - {id: a, board: nucleo-f4, probe: hilsim:a, emulator: renode}\n",
                 "boards[0].emulator: 'renode' is not one of qemu", id="unknown-emulator"),
    pytest.param("  - {id: a, board: nucleo-f4, probe: hilsim:a, tags: lab}\n",
                 "boards[0].tags: expected a list", id="tags-not-a-list"),
]


@pytest.mark.parametrize("body, message", INVALID)
def test_invalid_rack_file_names_file_key_and_fix(tmp_path, body, message):
    path = rack_file(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_rack(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_lease_database_url_is_validated(tmp_path):
    path = tmp_path / "rack.yaml"
    path.write_text("schema: 1\nleases: {database: mysql://db/hil}\nboards: []\n")
    with pytest.raises(ConfigError, match=r"leases.database: 'mysql://db/hil' is not a lease "
                       r"database URL"):
        load_rack(path)


def test_shipped_rack_has_two_virtual_f4_and_a_virtual_hifive():
    rack = load_rack(ROOT / "rack.yaml")
    virtual = [(e.board, e.probe.kind) for e in rack.entries if e.is_virtual]
    assert virtual.count(("nucleo-f4", "hilsim")) >= 2
    assert ("hifive1-revb", "hilsim") in virtual


def test_rack_cli_lease_status_release_reset(capsys):
    assert main(["rack", "lease", "--board", "nucleo-f4", "--json"]) == 0
    lease = json.loads(capsys.readouterr().out)
    assert lease["board"] in ("f4-a", "f4-b") and len(lease["lease"]) == 32
    assert main(["rack", "status", "--json", "--no-probes"]) == 0
    status = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
    held = status[lease["board"]]["lease"]
    assert held["pid"] == 0 and held["until"] > held["since"]  # TTL-bound, no pid
    assert main(["rack", "lease", "--board", "nucleo-f4", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["board"] != lease["board"]
    assert main(["rack", "lease", "--board", "nucleo-f4", "--wait", "0.2"]) == \
        ExitCode.LEASE_TIMEOUT
    assert "no free board among f4-a, f4-b" in capsys.readouterr().err
    assert main(["rack", "release", "not-a-token"]) == ExitCode.INFRASTRUCTURE
    assert main(["rack", "release", lease["lease"]]) == 0
    assert main(["rack", "release", second["lease"]]) == 0
    with lease_store(load_rack()) as store:
        for _ in range(3):
            store.report_failure("f4-a", "console lost")
    capsys.readouterr()
    assert main(["rack", "status", "--no-probes"]) == 0
    assert "UNHEALTHY: 3 infrastructure failures in a row; last: console lost" in \
        capsys.readouterr().out
    assert main(["rack", "reset", "f4-a"]) == 0
    assert main(["rack", "reset", "nope"]) == ExitCode.USAGE


def test_hil_test_runs_on_two_virtual_boards_at_once(tmp_path, capsys):
    junit = tmp_path / "verdict.xml"
    report = tmp_path / "report.html"
    code = main(["test", "--board", "nucleo-f4", "shell", "-n", "2", "--junit", str(junit),
                 "--report", str(report)])
    out = capsys.readouterr()
    assert code == 0, out.out[-5000:] + out.err[-3000:]
    assert "virtual board" in out.err and "not a hardware pass" in out.out
    junit_rules.assert_valid(junit)
    # one testsuite per rack entry: each case is in the suite of the one entry that ran it
    placed = {}
    for ts in ET.parse(junit).iter("testsuite"):
        props = {p.get("name"): p.get("value") for p in ts.iter("property")}
        assert props["hil.executor"] == "qemu"
        assert props["hil.probe"] == f"hilsim:{props['hil.rack_id']}"
        assert ts.get("name") == f"nucleo-f4/shell@{props['hil.rack_id']}"
        for case in ts.iter("testcase"):
            placed[(case.get("classname"), case.get("name"))] = props["hil.rack_id"]
    assert set(placed.values()) == {"f4-a", "f4-b"}
    assert len(placed) == int(ET.parse(junit).getroot().get("tests"))
    html = report.read_text()  # the run report says where it passed: virtual boards
    assert 'data-board="nucleo-f4" data-verdict="passed-virtual"' in html
    assert "passed on a virtual board" in html
    with lease_store(load_rack()) as store:
        assert store.leases() == {}  # every lease given back
        acquired = [row for row in store.lease_log() if row[3] == "acquire"]
        assert {row[1] for row in acquired} == {"f4-a", "f4-b"}
    # the audit store has one test record per rack entry: each entry's history shows
    # exactly the cases that ran on it (never a merged "f4-a,f4-b")
    for entry in ("f4-a", "f4-b"):
        capsys.readouterr()
        assert main(["audit", "board", entry, "--json"]) == 0
        (test,) = json.loads(capsys.readouterr().out)["tests"]
        ran_here = sorted(f"{c}::{n}" for (c, n), where in placed.items() if where == entry)
        assert test["rack_id"] == entry and test["passed"] == len(ran_here)
        assert sorted(case[0] for case in test["cases"]) == ran_here
        assert {case[2] for case in test["cases"]} == {entry}


def test_a_board_that_keeps_failing_is_marked_unhealthy_and_skipped(tmp_path, capsys,
                                                                   monkeypatch):
    rack = rack_file(tmp_path, "  - {id: bad, board: nucleo-f4, probe: hilsim:bad, "
                     "emulator: qemu, sim_faults: 'disconnect_after=40'}\n"
                     "  - {id: good, board: nucleo-f4, probe: hilsim:good, emulator: qemu}\n")
    monkeypatch.setenv("HIL_RACK", str(rack))
    from hil.boards import load_board
    from hil.build import build
    from hil.executors import choose_executor, make_executor
    from hil.image import Image

    board = load_board("nucleo-f4")
    image = Image.from_build(build(board, "shell", out=tmp_path / "img"))
    with lease_store(parse_rack(__import__("yaml").safe_load(rack.read_text()), rack)) as s:
        blocker = s.acquire(["good"], ttl=120)  # only the failing board is free
        for attempt in range(3):
            executor = make_executor(board, choose_executor(board),
                                     work_dir=tmp_path / f"{attempt}")
            with pytest.raises(Exception) as err, executor:
                executor.start(image)
            assert "probe" in str(err.value).lower() or "lost" in str(err.value).lower()
        health = s.health()["bad"]
        assert not health.healthy and "3 infrastructure failures" in health.unhealthy_reason
        s.release(blocker.token)
        executor = make_executor(board, choose_executor(board), work_dir=tmp_path / "ok")
        with executor:
            console = executor.start(image)
            assert executor.entry.id == "good"
            console.wait_ready()
            assert console.command("ping") == ["pong"]
        assert s.leases() == {}


def test_a_lease_taken_in_a_subshell_outlives_it(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    script = (f"{sys.executable} -m hil rack lease --board nucleo-f4 --json")
    token = json.loads(subprocess.run(["bash", "-c", f"echo $({script})"], env=env,
                                      capture_output=True, text=True, check=True,
                                      timeout=120).stdout)["lease"]
    with lease_store(load_rack()) as store:
        held = {i.token: i for i in store.leases().values()}
        assert token in held  # the subshell and hil are gone; the lease is not
    env["HIL_LEASE"] = token
    flashed = subprocess.run([sys.executable, "-m", "hil", "flash", "--board", "nucleo-f4",
                              "blinky", "--json"], env=env, check=False, capture_output=True,
                             text=True,
                             timeout=300)
    assert flashed.returncode == 0, flashed.stderr
    assert json.loads(flashed.stdout)["rack_entry"] == held[token].rack_id
    assert main(["rack", "release", token]) == 0


def test_malformed_fault_spec_is_a_usage_error(tmp_path, capsys, monkeypatch):
    path = rack_file(tmp_path, "  - {id: a, board: nucleo-f4, probe: 'hilsim:a', "
                     "sim_faults: 'bogus@@'}\n")
    with pytest.raises(ConfigError, match=r"boards\[0\].sim_faults: fault 'bogus@@'"):
        load_rack(path)
    monkeypatch.setenv("HIL_SIM_FAULTS", "explode")
    assert main(["flash", "--board", "nucleo-f4", "blinky"]) == ExitCode.USAGE
    assert "HIL_SIM_FAULTS: unknown fault 'explode'" in capsys.readouterr().err
