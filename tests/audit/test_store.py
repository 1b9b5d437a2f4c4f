"""The SQLite audit store: append, hash chain, tamper detection, crash and concurrency."""

from __future__ import annotations

import itertools
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from auditdata import make_build_record

from hil import audit
from hil.audit import queries
from hil.audit.store import GENESIS, open_store, record_hash
from hil.cli import main
from hil.errors import AuditError, ExitCode


def _fill(tmp_path: Path, n_builds: int = 3) -> list[str]:
    """Builds, flashes and tests in the default store; returns the image hashes."""
    images = []
    for i in range(n_builds):
        out = tmp_path / f"build{i}"
        rec = audit.on_build(out, make_build_record(out, salt=str(i)))
        images.append(rec.image_sha256)
        audit.record_flash(image_sha256=rec.image_sha256, board="nucleo-f4", rack_id="r1",
                           probe="P1", chip_id=0x413, verified=True, erased=1, programmed=100)
        audit.record_test(image_sha256=rec.image_sha256, board="nucleo-f4", rack_id="r1",
                          executor="hardware", passed=3, failed=0, skipped=0,
                          junit="report.xml", toolchain="gcc")
    return images


def _tamper(db: Path, *statements: str) -> None:
    """Edit the store as someone with file access would: drop the append-only triggers."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_record_no_update")
    conn.execute("DROP TRIGGER audit_record_no_delete")
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def test_intact_store_verifies(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    _fill(tmp_path)
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "9 record(s)" in out and "chain OK" in out


def test_chain_links_each_record_to_the_previous(state: Path, tmp_path: Path):
    _fill(tmp_path, 1)
    with open_store() as store:
        rows = list(store.iter_raw())
        assert [r[0] for r in rows] == [1, 2, 3]
        assert rows[0][5] == GENESIS
        for prev, row in itertools.pairwise(rows):
            assert row[5] == prev[6]
        for row in rows:
            assert record_hash(row[0], row[1], row[2], row[3], row[5], row[4]) == row[6]
        assert store.head() == (3, rows[-1][6])


def test_triggers_refuse_update_and_delete(state: Path, db: Path, tmp_path: Path):
    _fill(tmp_path, 1)
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_record SET kind = 'test' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_record WHERE seq = 1")
    conn.close()


def _rehash(seq: int) -> str:
    """SQL that sets record ``seq``'s hash column to a value an attacker might compute."""
    return f"UPDATE audit_record SET hash = '{'f' * 64}' WHERE seq = {seq}"


TAMPERS = [
    pytest.param(["UPDATE audit_record SET payload = replace(payload, '\"passed\":3', "
                  "'\"passed\":4') WHERE seq = 6"], "record 6", id="edit-test-verdict"),
    pytest.param(["UPDATE audit_record SET time = '2020-01-01T00:00:00.000000Z' WHERE seq = 2"],
                 "record 2", id="edit-time"),
    pytest.param(["UPDATE audit_record SET image_sha256 = '" + "0" * 64 + "' WHERE seq = 5"],
                 "record 5", id="edit-image-hash"),
    pytest.param(["UPDATE audit_record SET payload = replace(payload, 'gcc', 'xcc') "
                  "WHERE seq = 4", _rehash(4)], "record 4", id="edit-and-rehash"),
    pytest.param(["DELETE FROM audit_record WHERE seq = 5"], "record 5 missing",
                 id="delete-middle"),
    pytest.param(["DELETE FROM audit_record WHERE seq = 1"], "record 1 missing",
                 id="delete-first"),
    pytest.param(["DELETE FROM audit_record WHERE seq = 9"], "record 9", id="delete-newest"),
    pytest.param(["UPDATE audit_record SET seq = 100 WHERE seq = 3",
                  "UPDATE audit_record SET seq = 3 WHERE seq = 6",
                  "UPDATE audit_record SET seq = 6 WHERE seq = 100"], "record 3",
                 id="reorder-swap-seq"),
    pytest.param(["UPDATE audit_record SET seq = seq + 1000 WHERE seq IN (2, 3)",
                  "UPDATE audit_record SET seq = 3 WHERE seq = 1002",
                  "UPDATE audit_record SET seq = 2 WHERE seq = 1003"], "record 2",
                 id="reorder-adjacent"),
    pytest.param(["UPDATE audit_record SET board = 'other' WHERE seq = 4"], "record 4",
                 id="hide-from-board-index"),
    pytest.param(["DELETE FROM audit_digest WHERE seq = 4"], "record 4",
                 id="hide-from-toolchain-index"),
]


@pytest.mark.parametrize(("statements", "named"), TAMPERS)
def test_tampering_fails_verify_naming_the_record(
    state: Path, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    statements: list[str], named: str,
):
    _fill(tmp_path)
    capsys.readouterr()
    _tamper(db, *statements)
    assert main(["audit", "verify"]) == ExitCode.AUDIT_FAILED
    captured = capsys.readouterr()
    assert "first bad record" in captured.err
    assert named in captured.err.split("first bad record:")[1]
    assert "FAILED" in captured.out


def test_head_pin_catches_a_rewritten_store(state: Path, db: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]):
    _fill(tmp_path, 1)
    with open_store() as store:
        _, pinned = store.head()
    # Someone appends a forged record through the API: the chain is intact, but the
    # head no longer matches the hash the auditor kept.
    audit.record_test(image_sha256="a" * 64, board="x", rack_id=None, executor="qemu",
                      passed=1, failed=0, skipped=0, junit=None, toolchain=None)
    assert main(["audit", "verify"]) == 0
    assert main(["audit", "verify", "--head", pinned]) == ExitCode.AUDIT_FAILED
    assert "rewritten or rolled back" in capsys.readouterr().err


def test_verify_json(state: Path, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    import json

    _fill(tmp_path, 1)
    _tamper(db, "DELETE FROM audit_record WHERE seq = 2")
    capsys.readouterr()
    assert main(["audit", "verify", "--json"]) == ExitCode.AUDIT_FAILED
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert data["problems"][0]["seq"] == 2


APPENDER = """
import sys
import hil.audit as audit
i = 0
while True:
    i += 1
    audit.record_test(image_sha256="%064x" % i, board="b", rack_id="r" + str(i % 3),
                      executor="qemu", passed=i, failed=0, skipped=0, junit=None,
                      toolchain="gcc" * 200)
    if i == 20:
        print("running", flush=True)
"""


def test_crash_mid_append_leaves_whole_records(state: Path, db: Path):
    """SIGKILL a writer in a tight append loop: every stored record is whole and chained."""
    for attempt in range(3):
        with subprocess.Popen([sys.executable, "-c", APPENDER], stdout=subprocess.PIPE,
                              text=True) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "running"
            time.sleep(0.2 + 0.1 * attempt)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        with open_store() as store:
            result = queries.verify(store)
            assert result.ok, result.problems
            assert result.records == store.count() >= 20 * (attempt + 1)


def test_concurrent_writers_keep_one_chain(state: Path, db: Path):
    script = ("import hil.audit as a\n"
              "for i in range(40):\n"
              "    a.record_flash(image_sha256='%064x' % i, board='b', rack_id='r', probe='p',"
              " chip_id=1, verified=True)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with open_store() as store:
        result = queries.verify(store)
    assert result.ok, result.problems
    assert result.records == 120


def test_unwritable_store_raises_audit_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("HIL_AUDIT_DB", str(blocker / "audit.sqlite"))
    with pytest.raises(AuditError, match=r"not-a-dir/audit\.sqlite"):
        audit.record_flash(image_sha256="a" * 64, board="b", rack_id="r", probe="p",
                           chip_id=1, verified=True)


def test_unknown_url_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIL_AUDIT_DB", "mysql://x/y")
    with pytest.raises(AuditError, match="unknown URL scheme"):
        audit.record_flash(image_sha256="a" * 64, board="b", rack_id="r", probe="p",
                           chip_id=1, verified=True)


def test_bad_records_are_refused(state: Path):
    with pytest.raises(AuditError, match="not a sha256"):
        audit.record_flash(image_sha256="nothex", board="b", rack_id="r", probe="p",
                           chip_id=1, verified=True)
    with pytest.raises(AuditError, match="executor"):
        audit.record_test(image_sha256="a" * 64, board="b", rack_id=None, executor="sim",
                          passed=0, failed=0, skipped=0, junit=None, toolchain=None)


def test_sqlite_url_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "x" / "a.sqlite"
    monkeypatch.setenv("HIL_AUDIT_DB", f"sqlite://{path}")
    audit.record_flash(image_sha256="a" * 64, board="b", rack_id="r", probe="p", chip_id=1,
                       verified=True)
    assert path.is_file()
