"""Every number a user gives hil is finite and in a sane range, or a usage error naming the
range: lease TTLs and waits (no lease is ever born expired or overflowing), timeouts, the
SWD clock, job and worker counts, and the environment defaults."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from hil.cli import main
from hil.errors import ExitCode, UsageError
from hil.rack.leases import hold, open_store

RACK = """\
schema: 1
boards:
  - {id: f4-a, board: nucleo-f4, probe: "hilsim:lim-a", tags: [virtual]}
"""


@pytest.fixture
def rack(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "rack.yaml"
    path.write_text(RACK)
    monkeypatch.setenv("HIL_RACK", str(path))
    monkeypatch.delenv("HIL_LEASE", raising=False)
    monkeypatch.delenv("HIL_LEASE_DB", raising=False)
    monkeypatch.delenv("HIL_LEASE_WAIT", raising=False)
    return path


def cli(argv: list[str]) -> int:
    """``hil ARGV`` in-process; argparse's own usage errors come back as their exit code."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def lease_rows(state: Path) -> list[tuple]:
    db = state / "leases.sqlite"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT rack_id, expires_at - acquired_at FROM hil_leases").fetchall()


BAD_TTL = [
    pytest.param("0", id="zero"),
    pytest.param("-5", id="negative"),
    pytest.param("nan", id="nan"),
    pytest.param("inf", id="inf"),
    pytest.param("1e300", id="overflowing"),
    pytest.param("0.5", id="below-one-second"),
    pytest.param("ten", id="not-a-number"),
]


@pytest.mark.parametrize("ttl", BAD_TTL)
def test_rack_lease_bad_ttl_is_a_usage_error_and_leases_nothing(rack, ttl, capsys,
                                                                _isolated_state):
    assert cli(["rack", "lease", "--board", "nucleo-f4", "--ttl", ttl]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "--ttl" in err and "a lease TTL must be 1..604800 seconds" in err
    assert "Traceback" not in err
    assert lease_rows(_isolated_state) == []
    # the board is still free for the next caller, who holds it alone
    assert cli(["rack", "lease", "--board", "nucleo-f4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["board"] == "f4-a"
    assert cli(["rack", "lease", "--board", "nucleo-f4"]) == ExitCode.LEASE_TIMEOUT


def test_rack_renew_bad_ttl_is_a_usage_error_and_keeps_the_lease(rack, capsys, _isolated_state):
    assert cli(["rack", "lease", "--board", "nucleo-f4", "--ttl", "600", "--json"]) == 0
    token = json.loads(capsys.readouterr().out)["lease"]
    for ttl in ("0", "-5", "nan", "1e300"):
        assert cli(["rack", "renew", token, "--ttl", ttl]) == ExitCode.USAGE
        assert "a lease TTL must be 1..604800 seconds" in capsys.readouterr().err
    [(rack_id, ttl)] = lease_rows(_isolated_state)
    assert rack_id == "f4-a" and ttl == pytest.approx(600)
    assert cli(["rack", "status", "--json", "--no-probes"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["lease"]["expires_in"] > 500


def test_rack_lease_good_ttl_and_wait_forever_still_work(rack, capsys, _isolated_state):
    assert cli(["rack", "lease", "--board", "nucleo-f4", "--ttl", "1", "--wait", "forever",
                "--json"]) == 0
    lease = json.loads(capsys.readouterr().out)
    assert lease["board"] == "f4-a"
    [(_, ttl)] = lease_rows(_isolated_state)
    assert ttl == pytest.approx(1)


@pytest.mark.parametrize("ttl", [0, -5, float("nan"), float("inf"), 1e300, "60", None])
def test_library_refuses_a_lease_born_expired_or_overflowing(tmp_path, ttl):
    with open_store(tmp_path / "leases.sqlite") as store:
        with pytest.raises(UsageError,
                           match=r"lease ttl: .*must be more than 0 and at most 604800"):
            store.acquire(["f4-a"], ttl=ttl)
        with pytest.raises(UsageError, match="lease ttl"):
            hold(store, ["f4-a"], ttl=ttl)
        info = store.acquire(["f4-a"], ttl=30)
        with pytest.raises(UsageError, match="lease ttl"):
            store.renew(info.token, ttl)
        assert store.leases()["f4-a"].expires_at == info.expires_at  # untouched


@pytest.mark.parametrize("wait", [-1, float("nan"), float("inf"), 1e300])
def test_library_refuses_a_wait_out_of_range(tmp_path, wait):
    with open_store(tmp_path / "leases.sqlite") as store:
        with pytest.raises(UsageError, match=r"lease wait: .*0..604800 seconds"):
            store.acquire(["f4-a"], ttl=30, wait=wait)
        assert store.leases() == {} and store.queue_length() == 0


BAD_OPTIONS = [
    pytest.param(["rack", "lease", "--board", "nucleo-f4", "--wait", "-1"],
                 "--wait", "a wait for a board must be 0..604800 seconds (or 'forever')",
                 id="lease-wait-negative"),
    pytest.param(["rack", "lease", "--board", "nucleo-f4", "--wait", "nan"],
                 "--wait", "a wait for a board must be 0..604800", id="lease-wait-nan"),
    pytest.param(["flash", "--board", "nucleo-f4", "--image", "x.hex", "--wait", "1e300"],
                 "--wait", "a wait for a board must be 0..604800", id="flash-wait-huge"),
    pytest.param(["flash", "--board", "nucleo-f4", "--image", "x.hex", "--frequency", "0"],
                 "--frequency", "the SWD clock must be 1000..100000000 Hz",
                 id="frequency-zero"),
    pytest.param(["flash", "--board", "nucleo-f4", "--image", "x.hex", "--frequency",
                  "1e12"], "--frequency", "the SWD clock must be 1000..100000000 Hz",
                 id="frequency-huge"),
    pytest.param(["flash", "--board", "nucleo-f4", "--image", "x.hex", "--frequency",
                  "4.5"], "--frequency", "not a whole number", id="frequency-fraction"),
    pytest.param(["test", "--board", "nucleo-f4", "--timeout", "nan"],
                 "--timeout", "a timeout must be more than 0 and at most 86400 seconds",
                 id="test-timeout-nan"),
    pytest.param(["test", "--board", "nucleo-f4", "--timeout", "-3"],
                 "--timeout", "a timeout must be more than 0 and at most 86400 seconds",
                 id="test-timeout-negative"),
    pytest.param(["test", "--board", "nucleo-f4", "-n", "0"],
                 "--workers", "the number of workers must be 1..256", id="workers-zero"),
    pytest.param(["test", "--board", "nucleo-f4", "-n", "100000"],
                 "--workers", "the number of workers must be 1..256", id="workers-huge"),
    pytest.param(["build", "--board", "nucleo-f4", "-j", "0"],
                 "--jobs", "the number of parallel jobs must be 1..1024", id="jobs-zero"),
    pytest.param(["build", "--board", "nucleo-f4", "-j", "inf"],
                 "--jobs", "the number of parallel jobs must be 1..1024", id="jobs-inf"),
    pytest.param(["audit", "board", "f4-a", "--limit", "99999999999999999999"],
                 "--limit", "the number of records must be 1..1000000000",
                 id="audit-limit-overflows-sqlite"),
]


@pytest.mark.parametrize("argv, option, message", BAD_OPTIONS)
def test_number_options_are_range_checked(rack, capsys, argv, option, message):
    assert cli(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"argument {option}" in err or f"/{option}" in err, err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["soon", "-10", "nan", "1e300"])
def test_bad_hil_lease_wait_names_the_variable(rack, monkeypatch, capsys, value):
    monkeypatch.setenv("HIL_LEASE_WAIT", value)
    assert cli(["flash", "--board", "nucleo-f4", "--image", "x.hex"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"hil: error: HIL_LEASE_WAIT: {value}" in err.replace("'", "")
    assert "0..604800 seconds (or 'forever')" in err
    assert "Traceback" not in err and "argument --wait" not in err
    assert cli(["test", "--board", "nucleo-f4"]) == ExitCode.USAGE
    assert "HIL_LEASE_WAIT" in capsys.readouterr().err
    # settings are read once for every command: a bad value is never silently ignored
    assert cli(["boards"]) == ExitCode.USAGE
    assert "HIL_LEASE_WAIT" in capsys.readouterr().err


def test_hil_lease_wait_forever_and_explicit_wait_override(rack, monkeypatch):
    from hil.executors.leased import lease_wait

    monkeypatch.setenv("HIL_LEASE_WAIT", "forever")
    assert lease_wait() is None
    monkeypatch.setenv("HIL_LEASE_WAIT", "12.5")
    assert lease_wait() == 12.5
