"""The PostgreSQL audit store against a real throwaway server (tests/pgserver.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from auditdata import make_build_record

from hil import audit
from hil.audit import queries
from hil.audit.store import open_store
from hil.cli import main
from hil.errors import ExitCode


def _fill(url: str, tmp_path: Path) -> str:
    out = tmp_path / "b"
    sha = audit.on_build(out, make_build_record(out), store=url).image_sha256
    audit.record_flash(image_sha256=sha, board="nucleo-f4", rack_id="r1", probe="P",
                       chip_id=0x413, verified=True, store=url)
    audit.record_test(image_sha256=sha, board="nucleo-f4", rack_id="r1", executor="hardware",
                      passed=1, failed=0, skipped=0, junit="j.xml", toolchain="gcc", store=url)
    return sha


def test_pg_store_answers_and_verifies(pg_url: str, state: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]):
    sha = _fill(pg_url, tmp_path)
    assert main(["audit", "image", sha, "--db", pg_url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["builds"][0]["toolchain"]["name"] == "gcc"
    assert [r["location"] for r in data["running_on"]] == ["r1"]
    assert main(["audit", "toolchain", "gcc", "--db", pg_url]) == 0
    assert main(["audit", "board", "r1", "--db", pg_url]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--db", pg_url]) == 0
    assert "3 record(s)" in capsys.readouterr().out


def test_pg_default_store_from_env(pg_url: str, state: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIL_AUDIT_DB", pg_url)
    audit.record_flash(image_sha256="a" * 64, board="b", rack_id="r", probe="p", chip_id=1,
                       verified=True)
    with open_store() as store:
        assert store.count() == 1
    assert not (state / "audit.sqlite").exists()


def test_pg_refuses_update(pg_url: str, state: Path, tmp_path: Path):
    import psycopg

    _fill(pg_url, tmp_path)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE audit_record SET kind = 'test' WHERE seq = 1")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM audit_record WHERE seq = 1")


@pytest.mark.parametrize(("sql", "named"), [
    pytest.param("UPDATE audit_record SET payload = replace(payload, '\"passed\":1', "
                 "'\"passed\":9') WHERE seq = 3", "record 3", id="edit"),
    pytest.param("DELETE FROM audit_record WHERE seq = 2", "record 2 missing", id="delete"),
    pytest.param("UPDATE audit_record SET seq = -seq WHERE seq IN (2, 3); "
                 "UPDATE audit_record SET seq = 5 - (-seq) WHERE seq < 0", "record 2",
                 id="reorder"),
])
def test_pg_tampering_is_caught(pg_url: str, state: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str], sql: str, named: str):
    import psycopg

    _fill(pg_url, tmp_path)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_record DISABLE TRIGGER audit_record_append_only")
        for statement in sql.split("; "):
            conn.execute(statement)
    capsys.readouterr()
    assert main(["audit", "verify", "--db", pg_url]) == ExitCode.AUDIT_FAILED
    err = capsys.readouterr().err
    assert named in err.split("first bad record:")[1]


def test_pg_concurrent_writers(pg_url: str, state: Path):
    script = ("import sys, hil.audit as a\n"
              "for i in range(30):\n"
              "    a.record_flash(image_sha256='%064x' % i, board='b', rack_id='r', probe='p',"
              " chip_id=1, verified=True, store=sys.argv[1])\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, pg_url]) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with open_store(pg_url) as store:
        result = queries.verify(store)
    assert result.ok, result.problems
    assert result.records == 90


def test_pg_unreachable_is_an_audit_error(state: Path):
    from hil.errors import AuditError

    with pytest.raises(AuditError, match="cannot open the audit store postgresql://") as info:
        audit.record_flash(image_sha256="a" * 64, board="b", rack_id="r", probe="p",
                           chip_id=1, verified=True,
                           store="postgresql://nobody:secret@127.0.0.1:1/x")
    assert "secret" not in str(info.value)
