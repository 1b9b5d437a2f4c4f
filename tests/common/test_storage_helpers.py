"""hil.storage: one SQLite connect for both stores, one URL redaction for every message."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hil.storage import connect_sqlite, redact_url


@pytest.mark.parametrize(("url", "shown"), [
    pytest.param("postgresql://hil:s3cret@db.lab:5432/hil",
                 "postgresql://hil:***@db.lab:5432/hil", id="user-and-password"),
    pytest.param("postgresql://hil@db.lab/hil", "postgresql://hil@db.lab/hil",
                 id="user-without-password"),
    pytest.param("postgresql://db.lab/hil", "postgresql://db.lab/hil", id="no-user"),
    pytest.param("postgres://hil:s3cret@db.lab/hil?sslmode=require&connect_timeout=5",
                 "postgres://hil:***@db.lab/hil?sslmode=require&connect_timeout=5",
                 id="password-and-query"),
    pytest.param("postgresql://hil@db.lab/hil?sslmode=require&password=s3cret",
                 "postgresql://hil@db.lab/hil?sslmode=require&password=***",
                 id="password-in-query"),
    pytest.param("postgresql:///hil?host=/run/postgresql&PASSWORD=s3cret&sslpassword=k3y",
                 "postgresql:///hil?host=/run/postgresql&PASSWORD=***&sslpassword=***",
                 id="socket-host-secret-params-any-case"),
    pytest.param("postgresql://hil:s3cret@db.lab/hil?application_name=ci@lab",
                 "postgresql://hil:***@db.lab/hil?application_name=ci@lab",
                 id="at-sign-in-query-is-not-the-host"),
    pytest.param("postgresql://hil:s3@cr/et@db.lab/hil", "postgresql://hil:***@db.lab/hil",
                 id="unescaped-at-and-slash-in-password"),
    pytest.param("postgresql://hil:s3cret@db.lab/hil#frag",
                 "postgresql://hil:***@db.lab/hil#frag", id="fragment"),
    pytest.param("sqlite:///var/lib/hil/leases.sqlite", "sqlite:///var/lib/hil/leases.sqlite",
                 id="sqlite-url"),
    pytest.param("/var/lib/hil/audit.sqlite", "/var/lib/hil/audit.sqlite", id="plain-path"),
])
def test_redact_url(url: str, shown: str):
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)


def test_lease_and_audit_errors_hide_the_password():
    from hil.audit.store import open_store as open_audit
    from hil.errors import AuditError, LeaseError
    from hil.rack.leases import open_store as open_leases

    url = "postgresql://hil:s3cret@127.0.0.1:1/hil?connect_timeout=2"
    with pytest.raises(LeaseError) as lease_err:
        open_leases(url)
    with pytest.raises(AuditError) as audit_err, open_audit(url):
        pass
    for err in (lease_err.value, audit_err.value):
        assert "postgresql://hil:***@127.0.0.1:1/hil" in str(err)
        assert "s3cret" not in str(err)


def test_bad_lease_url_in_rack_file_hides_the_password(tmp_path: Path):
    from hil.errors import ConfigError
    from hil.rack.inventory import load_rack

    rack = tmp_path / "rack.yaml"
    rack.write_text("schema: 1\nleases:\n  database: mysql://hil:s3cret@db/hil\nboards: []\n")
    with pytest.raises(ConfigError) as err:
        load_rack(rack)
    assert "mysql://hil:***@db/hil" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_connect_sqlite_sets_wal_busy_timeout_and_sync(tmp_path: Path):
    conn = connect_sqlite(tmp_path / "a.sqlite", synchronous="FULL")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 60000
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.isolation_level is None
    finally:
        conn.close()
    conn = connect_sqlite(tmp_path / "a.sqlite")
    try:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        conn.close()


def test_connect_sqlite_refuses_an_unknown_sync_mode(tmp_path: Path):
    with pytest.raises(ValueError, match="synchronous"):
        connect_sqlite(tmp_path / "a.sqlite", synchronous="OFF; DROP TABLE x")
    assert not (tmp_path / "a.sqlite").exists()


def test_connect_sqlite_on_a_damaged_file_raises_sqlite_error(tmp_path: Path):
    path = tmp_path / "damaged.sqlite"
    path.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        connect_sqlite(path)


def test_processes_creating_one_new_database_at_once_all_succeed(tmp_path: Path):
    """The race the WAL retry exists for: several processes create the same new store."""
    db = tmp_path / "new.sqlite"
    code = ("import sys; from pathlib import Path; from hil.storage import connect_sqlite\n"
            "c = connect_sqlite(Path(sys.argv[1]))\n"
            "c.execute('CREATE TABLE IF NOT EXISTS t (n INTEGER)')\n"
            "c.execute('INSERT INTO t VALUES (?)', (int(sys.argv[2]),))\n"
            "c.close()\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(n)],
                              stderr=subprocess.PIPE, text=True) for n in range(6)]
    results = [(p.communicate(timeout=120)[1], p.returncode) for p in procs]
    assert results == [("", 0)] * 6
    conn = sqlite3.connect(db)
    try:
        assert sorted(n for (n,) in conn.execute("SELECT n FROM t")) == list(range(6))
    finally:
        conn.close()
