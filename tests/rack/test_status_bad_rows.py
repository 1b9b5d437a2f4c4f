"""`hil rack status` shows every row of the lease database, even rows hil cannot have
written (absurd or unreadable times, odd holder text, ids gone from rack.yaml): marked as
bad with the command that clears them, never a crash, and never a board handed out twice."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from hil.cli import main
from hil.errors import ExitCode
from hil.rack.leases import open_store

IDS = ["f4-a", "f4-b", "f4-c", "f4-d", "f4-e", "f4-f"]


@pytest.fixture
def db(tmp_path, monkeypatch, _isolated_state):
    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards:\n" + "".join(
        f"  - {{id: {i}, board: nucleo-f4, probe: 'hilsim:bad-{i}'}}\n" for i in IDS))
    monkeypatch.setenv("HIL_RACK", str(rack))
    monkeypatch.delenv("HIL_LEASE", raising=False)
    monkeypatch.delenv("HIL_LEASE_DB", raising=False)
    path = _isolated_state / "leases.sqlite"
    open_store(path).close()  # the schema
    now = time.time()
    with sqlite3.connect(path) as conn:
        lease = ("INSERT INTO hil_leases (rack_id, token, user_name, host, pid, ci_job, "
                 "purpose, acquired_at, expires_at) VALUES (?, ?, ?, 'h', ?, NULL, NULL, ?, ?)")
        conn.execute(lease, ("f4-a", "t" * 32, "ci", 0, now, 1e300))  # the old --ttl 1e300
        conn.execute(lease, ("f4-b", "u" * 32, "evil\x1b[2J\nname", "xyz", now, "soon"))
        conn.execute(lease, ("f4-c", "v" * 32, "ci", 0, -1e30, now + 100))
        conn.execute(lease, ("f4-e", "w" * 32, "ci", 0, now, float("inf")))
        conn.execute(lease, ("gone-2", "x" * 32, "ci", 0, now, now + 100))
        conn.execute("UPDATE hil_leases SET user_name = CAST(X'fffe41' AS TEXT) "
                     "WHERE rack_id = 'f4-c'")
        health = "INSERT INTO hil_health (rack_id, failures, unhealthy_reason, updated_at) " \
                 "VALUES (?, ?, ?, ?)"
        conn.execute(health, ("gone-1", 2, None, now))
        conn.execute(health, ("f4-d", "many", None, now))
        conn.execute("INSERT INTO hil_waiters (candidates, host, pid, since, heartbeat) "
                     "VALUES ('not json', 'h', 1, 0, 'x')")
    return path


def strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_status_marks_bad_rows_and_says_how_to_clear_them(db, capsys):
    assert main(["rack", "status", "--no-probes"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2J\\nname" in out
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert set(lines) == set(IDS) | {"gone-1", "gone-2"}
    for rack_id in ("f4-a", "f4-b", "f4-c", "f4-e", "gone-1", "gone-2"):
        assert "BAD ROW" in lines[rack_id] and f"hil rack reset {rack_id}" in lines[rack_id]
    assert "beyond the longest TTL" in lines["f4-a"]
    assert "not a time" in lines["f4-b"] and "not a time" in lines["f4-e"]
    assert "not in the rack file" in lines["gone-1"]
    assert "failure count 'many'" in lines["f4-d"]
    assert "BAD ROW" not in lines["f4-f"]

    assert main(["rack", "status", "--json", "--no-probes"]) == 0
    rows = {r["id"]: r for r in strict_json(capsys.readouterr().out)}
    assert rows["f4-a"]["lease"]["until"] == 1e300 and rows["f4-a"]["bad_row"]
    assert rows["f4-b"]["lease"]["until"] is None and rows["f4-b"]["lease"]["pid"] == "xyz"
    assert rows["f4-e"]["lease"]["until"] is None and not rows["f4-e"]["healthy"]
    assert rows["f4-c"]["lease"]["user"] == "\ufffd\ufffdA"
    assert rows["gone-1"]["board"] is None and "hil rack reset gone-1" in rows["gone-1"][
        "bad_row"]
    assert rows["f4-f"]["bad_row"] is None and rows["f4-f"]["healthy"]


def test_bad_rows_keep_their_board_held_and_leasing_works(db, capsys):
    got = []
    for _ in range(2):
        assert main(["rack", "lease", "--board", "nucleo-f4", "--json"]) == 0
        got.append(strict_json(capsys.readouterr().out)["board"])
    assert sorted(got) == ["f4-d", "f4-f"]  # never a board a bad row holds
    assert main(["rack", "lease", "--board", "nucleo-f4"]) == ExitCode.LEASE_TIMEOUT
    capsys.readouterr()
    with open_store(db) as store:  # a bad failure count is counted again from zero
        assert store.report_failure("f4-d", "probe lost").failures == 1


def test_reset_clears_bad_rows_and_forgets_ids_gone_from_the_rack(db, capsys):
    for rack_id in ("f4-a", "f4-b", "f4-e", "gone-1", "gone-2"):
        assert main(["rack", "reset", rack_id]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "f4-a: lease removed (its expiry is" in err and "gone-2 forgotten" in err
    assert main(["rack", "reset", "never-was"]) == ExitCode.USAGE
    assert "no rack entry 'never-was'" in capsys.readouterr().err
    assert main(["rack", "status", "--json", "--no-probes"]) == 0
    rows = {r["id"]: r for r in strict_json(capsys.readouterr().out)}
    assert set(rows) == set(IDS)
    for rack_id in ("f4-a", "f4-b", "f4-e"):
        assert rows[rack_id]["lease"] is None and rows[rack_id]["bad_row"] is None
    assert rows["f4-c"]["bad_row"]  # not reset: still shown
    with open_store(db) as store:
        events = [(r[1], r[3]) for r in store.lease_log()]
    assert ("f4-a", "reset") in events and ("gone-2", "reset") in events


def test_a_good_lease_is_not_dropped_by_reset(db, capsys):
    assert main(["rack", "lease", "--board", "nucleo-f4", "--json"]) == 0
    board = strict_json(capsys.readouterr().out)["board"]
    assert main(["rack", "reset", board]) == 0
    assert "lease removed" not in capsys.readouterr().err
    assert main(["rack", "status", "--json", "--no-probes"]) == 0
    rows = {r["id"]: r for r in strict_json(capsys.readouterr().out)}
    assert rows[board]["lease"] is not None and rows[board]["bad_row"] is None


def test_postgresql_nan_and_infinite_expiry_are_bad_rows_not_free_boards(
        tmp_path, monkeypatch, capsys, pg_url):
    """PostgreSQL stores NaN and infinities where SQLite cannot: such a lease never expires
    by comparison, so it must be shown (and cleared) rather than hold its board silently."""
    import psycopg

    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nboards:\n" + "".join(
        f"  - {{id: {i}, board: nucleo-f4, probe: 'hilsim:pg-{i}'}}\n" for i in IDS[:3]))
    monkeypatch.setenv("HIL_RACK", str(rack))
    monkeypatch.setenv("HIL_LEASE_DB", pg_url)
    monkeypatch.delenv("HIL_LEASE", raising=False)
    open_store(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        for rack_id, token, since, until in [("f4-a", "a" * 32, "NaN", "NaN"),
                                             ("f4-b", "b" * 32, "-Infinity", "Infinity")]:
            conn.execute("INSERT INTO hil_leases (rack_id, token, user_name, host, pid, "
                         "acquired_at, expires_at) VALUES (%s, %s, 'ci', 'h', 0, %s, %s)",
                         (rack_id, token, since, until))
    assert main(["rack", "status", "--json", "--no-probes"]) == 0
    rows = {r["id"]: r for r in strict_json(capsys.readouterr().out)}
    for rack_id in ("f4-a", "f4-b"):
        assert rows[rack_id]["lease"]["until"] is None
        assert f"hil rack reset {rack_id}" in rows[rack_id]["bad_row"]
    assert main(["rack", "lease", "--board", "nucleo-f4", "--json"]) == 0
    assert strict_json(capsys.readouterr().out)["board"] == "f4-c"
    assert main(["rack", "reset", "f4-a"]) == 0
    assert "lease removed" in capsys.readouterr().err
    assert main(["rack", "lease", "--board", "nucleo-f4", "--json"]) == 0
    assert strict_json(capsys.readouterr().out)["board"] == "f4-a"
