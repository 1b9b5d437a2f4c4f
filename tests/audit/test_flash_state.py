"""Flash records and "what runs now": only a verified write moves a rack position to an
image, a failed write makes it unknown, an untouched chip keeps it; old (schema 1) stores
read the same; ``hil audit verify`` refuses an empty or missing store unless told."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from auditdata import make_build_record

from hil import audit
from hil.audit.store import SCHEMA_VERSION, open_store
from hil.cli import main
from hil.errors import AuditError, ExitCode

A, B = "a" * 64, "b" * 64


def _flash(sha: str, state: str | None, *, store: str | None = None, rack_id: str = "r1",
           verified: bool | None = None, ok: bool | None = None) -> None:
    runs = state in (None, "runs")
    audit.record_flash(image_sha256=sha, board="nucleo-f4", rack_id=rack_id, probe="P",
                       chip_id=0x431, state=state,
                       verified=runs if verified is None else verified,
                       ok=runs if ok is None else ok,
                       error=None if runs else "it failed", store=store)


def _board(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    capsys.readouterr()
    assert main(["audit", "board", "r1", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("second", "runs_now"), [
    pytest.param("untouched", A, id="untouched-chip-keeps-the-image"),
    pytest.param("unknown", None, id="failed-write-is-unknown"),
    pytest.param("runs", B, id="verified-write-moves-it"),
])
def test_what_runs_after_a_second_flash(state: Path, capsys, second: str, runs_now: str | None):
    _flash(A, "runs")
    _flash(B, second)
    now = _board(capsys)["running_now"]
    assert now["image_sha256"] == runs_now
    assert now["needs_reflash"] is (second == "unknown")
    assert main(["audit", "verify"]) == 0


def test_state_runs_needs_a_verified_flash(state: Path):
    with pytest.raises(AuditError, match="cannot be recorded as running"):
        _flash(A, "runs", verified=False)
    with pytest.raises(AuditError, match="not one of"):
        _flash(A, "flashed")


def test_location_index_pointing_at_an_untouched_flash_fails_verify(
        state: Path, db: Path, capsys):
    _flash(A, "runs")
    _flash(B, "untouched")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit_location SET seq = 2 WHERE location = 'r1'")
    conn.commit()
    conn.close()
    assert main(["audit", "verify"]) == ExitCode.AUDIT_FAILED
    assert "audit_location" in capsys.readouterr().err


def _old_store(db: Path) -> None:
    """A store as hil wrote it before flash states (schema 1): flash payloads without
    ``state``, every flash moving the location."""
    old = {"board": "nucleo-f4", "rack_id": "r1", "probe": "P", "chip_id": "0x00000431",
           "erased": 1, "programmed": 10, "user": "old"}
    with open_store(db) as s:
        s.append("flash", A, {**old, "verified": True, "ok": True, "error": None})
        s.append("flash", B, {**old, "verified": False, "ok": False,
                              "error": "erase failed at 0x08004000"})
        s.append("flash", A, {**old, "rack_id": "r2", "verified": True, "ok": True,
                              "error": None})
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit_meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def test_schema_1_store_reads_and_verifies(state: Path, db: Path, capsys):
    _old_store(db)
    assert main(["audit", "verify"]) == 0  # the location index is what schema 1 wrote
    now = _board(capsys)["running_now"]
    assert now["state"] == "unknown" and now["image_sha256"] is None  # old failed flash
    assert now["attempted_image_sha256"] == B
    capsys.readouterr()
    assert main(["audit", "board", "r2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["running_now"]["image_sha256"] == A


def test_schema_1_store_is_marked_2_by_the_next_append(state: Path, db: Path, capsys):
    _old_store(db)
    _flash(B, "untouched")
    conn = sqlite3.connect(db)
    version = conn.execute("SELECT value FROM audit_meta WHERE key = 'schema_version'")
    assert version.fetchone()[0] == str(SCHEMA_VERSION) == "2"
    conn.close()
    assert main(["audit", "verify"]) == 0
    assert _board(capsys)["running_now"]["attempted_image_sha256"] == B  # old unknown kept


def test_store_of_a_newer_schema_is_refused(state: Path, db: Path, capsys):
    _flash(A, "runs")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit_meta SET value = '3' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    assert main(["audit", "board", "r1"]) == ExitCode.AUDIT_FAILED
    assert "schema version 3" in capsys.readouterr().err


def test_board_text_says_unknown_needs_reflash(state: Path, capsys):
    _flash(A, "runs")
    _flash(B, "unknown")
    capsys.readouterr()
    assert main(["audit", "board", "r1"]) == 0
    out = capsys.readouterr().out
    runs = next(line for line in out.splitlines() if "runs now:" in line)
    assert "unknown, needs re-flash" in runs and B in runs
    assert "FAILED mid-write" in out


# --- verify on an empty or missing store ----------------------------------------------------


@pytest.mark.parametrize("make", [
    pytest.param("missing", id="missing-store"),
    pytest.param("zero-bytes", id="zero-byte-file"),
    pytest.param("no-records", id="schema-but-no-records"),
])
def test_empty_store_fails_verify(state: Path, db: Path, capsys, make: str):
    if make == "zero-bytes":
        db.parent.mkdir(parents=True)
        db.write_bytes(b"")
    elif make == "no-records":
        with open_store(db):
            pass
    assert main(["audit", "verify"]) == ExitCode.AUDIT_FAILED
    captured = capsys.readouterr()
    assert str(db) in captured.err and "--allow-empty" in captured.err
    assert "chain OK" not in captured.out
    assert db.exists() == (make != "missing")  # verify did not create a store
    if make == "zero-bytes":
        assert db.stat().st_size == 0  # nor wrote a schema into the emptied file


@pytest.mark.parametrize("make", [
    pytest.param("missing", id="missing-store"),
    pytest.param("zero-bytes", id="zero-byte-file"),
])
def test_allow_empty_accepts_an_empty_store(state: Path, db: Path, capsys, make: str):
    if make == "zero-bytes":
        db.parent.mkdir(parents=True)
        db.write_bytes(b"")
    assert main(["audit", "verify", "--allow-empty"]) == 0
    assert "0 record(s)" in capsys.readouterr().out
    assert main(["audit", "verify", "--allow-empty", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_allow_empty_still_fails_a_kept_head(state: Path, db: Path, tmp_path: Path, capsys):
    out = tmp_path / "b"
    audit.on_build(out, make_build_record(out))
    with open_store() as s:
        head = s.head()[1]
    db.unlink()
    for wal in db.parent.glob("audit.sqlite-*"):
        wal.unlink()
    assert main(["audit", "verify", "--allow-empty", "--head", head]) == ExitCode.AUDIT_FAILED
    assert "deleted or replaced" in capsys.readouterr().err


def test_empty_store_json_says_empty(state: Path, capsys):
    assert main(["audit", "verify", "--json"]) == ExitCode.AUDIT_FAILED
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["empty"] is True and data["records"] == 0


# --- PostgreSQL -------------------------------------------------------------------------------


def test_pg_flash_states_and_verify(pg_url: str, state: Path, capsys):
    _flash(A, "runs", store=pg_url)
    _flash(B, "untouched", store=pg_url)
    assert _board(capsys, "--db", pg_url)["running_now"]["image_sha256"] == A
    _flash(B, "unknown", store=pg_url)
    assert _board(capsys, "--db", pg_url)["running_now"]["state"] == "unknown"
    assert main(["audit", "verify", "--db", pg_url]) == 0


def test_pg_empty_store_fails_verify(pg_url: str, state: Path, capsys):
    assert main(["audit", "verify", "--db", pg_url]) == ExitCode.AUDIT_FAILED
    assert "--allow-empty" in capsys.readouterr().err
    assert main(["audit", "verify", "--db", pg_url, "--allow-empty"]) == 0


# --- which build a flash is tied to ---------------------------------------------------------


@pytest.mark.parametrize("role", ["hex", "elf", "bin"])
def test_flash_is_tied_to_the_build_whose_artifact_it_is(state: Path, tmp_path: Path, capsys,
                                                          role: str):
    out = tmp_path / "b"
    record = make_build_record(out)
    build = audit.on_build(out, record)
    file_sha = record["artifacts"][role]["sha256"]
    flash = audit.record_flash(image={"path": f"firmware.{role}", "sha256": file_sha,
                                      "content_sha256": None},
                               state="runs", board="nucleo-f4", rack_id="r1", probe="P",
                               chip_id=None, verified=True)
    assert flash.image_sha256 == build.image_sha256
    assert (flash.payload["image"]["build_seq"], flash.payload["image"]["artifact"]) == (
        build.seq, role)
    assert _board(capsys)["running_now"]["build"]["app"] == "shell"


def test_map_file_hash_ties_to_no_build(state: Path, tmp_path: Path):
    """Only flashable artifacts count: a file hashing like the build's .map is not it."""
    out = tmp_path / "b"
    record = make_build_record(out)
    audit.on_build(out, record)
    map_sha = record["artifacts"]["map"]["sha256"]
    flash = audit.record_flash(image={"path": "x.bin", "sha256": map_sha}, state="untouched",
                               board="nucleo-f4", rack_id="r1", probe="P", chip_id=None,
                               verified=False, ok=False)
    assert flash.image_sha256 == map_sha and flash.payload["image"]["build_seq"] is None
