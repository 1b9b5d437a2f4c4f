"""The two audit store backends, SQLite and PostgreSQL, over one schema.

The chain logic lives in :class:`hil.audit.store.Store`; a backend opens the connection,
creates the schema (with triggers refusing UPDATE and DELETE of records), and provides the
write transaction that serialises appends.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hil.audit.store import ENV_VAR, GENESIS, READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, Store
from hil.errors import AuditError
from hil.storage import check_store_path, connect_sqlite, redact_url, sqlite_problem

# --- schema ---------------------------------------------------------------------------------

_TABLES = """
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_record (
    seq {seq_type} PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    board TEXT,
    rack_id TEXT,
    toolchain_id TEXT,
    toolchain_name TEXT,
    toolchain_version TEXT);
CREATE TABLE IF NOT EXISTS audit_digest (
    sha256 TEXT NOT NULL, seq BIGINT NOT NULL, role TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_location (location TEXT PRIMARY KEY, seq BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_record_image ON audit_record (image_sha256, seq);
CREATE INDEX IF NOT EXISTS audit_record_toolchain ON audit_record (toolchain_id, seq);
CREATE INDEX IF NOT EXISTS audit_record_toolchain_name ON audit_record (toolchain_name, seq);
CREATE INDEX IF NOT EXISTS audit_record_toolchain_version
    ON audit_record (toolchain_name, toolchain_version, seq);
CREATE INDEX IF NOT EXISTS audit_record_board ON audit_record (board, seq);
CREATE INDEX IF NOT EXISTS audit_record_rack ON audit_record (rack_id, seq);
CREATE INDEX IF NOT EXISTS audit_record_time ON audit_record (time);
CREATE INDEX IF NOT EXISTS audit_digest_sha ON audit_digest (sha256, seq);
CREATE INDEX IF NOT EXISTS audit_digest_seq ON audit_digest (seq);
"""

_SQLITE_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS audit_record_no_update BEFORE UPDATE ON audit_record
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_record_no_delete BEFORE DELETE ON audit_record
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"""

_PG_TRIGGERS = """
CREATE OR REPLACE FUNCTION hil_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'audit records are append-only'; END $$;
CREATE OR REPLACE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record
FOR EACH ROW EXECUTE FUNCTION hil_audit_append_only();
"""


class SqliteStore(Store):
    """SQLite in WAL mode, synchronous=FULL: each committed record survives a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        fix = f"set {ENV_VAR} (or HIL_STATE_DIR) to a writable place"
        try:
            check_store_path(self.path, "audit store", fix, AuditError)
            conn = connect_sqlite(self.path, synchronous="FULL", check_same_thread=False)
            self._conn = conn
            version = self._schema_version(conn)
            if version is None:
                conn.execute("BEGIN IMMEDIATE")
                self._create_schema(conn)
                version = SCHEMA_VERSION
            elif version not in READABLE_SCHEMA_VERSIONS:
                raise AuditError(
                    f"audit store {self.path} has schema version {version}, this hil reads "
                    f"version {SCHEMA_VERSION}",
                    hint="upgrade hil, or point HIL_AUDIT_DB at a new store")
            self.schema_version = version
        except AuditError:
            self.close()
            raise
        except sqlite3.Error as exc:
            self.close()
            message, hint = sqlite_problem(exc, self.path, "audit store", fix)
            raise AuditError(message, hint=hint) from exc
        except OSError as exc:
            self.close()
            raise AuditError(f"cannot open the audit store {self.path}: {exc}",
                             hint=f"check the directory is writable, or {fix}") from exc

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int | None:
        try:
            row = conn.execute(
                "SELECT value FROM audit_meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row else None

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        # Already inside BEGIN IMMEDIATE: a concurrent creator waits, then finds the tables.
        try:
            for statement in (_TABLES.format(seq_type="INTEGER") + _SQLITE_TRIGGERS).split(
                    ";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO audit_meta VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
            conn.execute("INSERT OR IGNORE INTO audit_head VALUES (1, 0, ?)", (GENESIS,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AuditError(f"audit store {self.path} is not open (use it in a with block)")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading the head
        try:
            yield conn.cursor()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        cur = self.conn.execute(sql, tuple(params))
        while batch := cur.fetchmany(2000):
            yield from batch


class PostgresStore(Store):
    """PostgreSQL: the same schema; appends serialise on a row lock of the head row."""

    placeholder = "%s"

    def __init__(self, url: str) -> None:
        self.url = url
        self.location = redact_url(url)
        self._conn: Any = None

    def open(self) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise AuditError("a postgresql:// audit store needs psycopg",
                             hint="pip install 'psycopg[binary]'") from exc
        try:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            with self._conn.transaction():
                cur = self._conn.cursor()
                cur.execute("SELECT pg_advisory_xact_lock(7213305)")
                cur.execute("SELECT to_regclass('audit_meta')")
                if cur.fetchone()[0] is None:
                    for statement in (_TABLES.format(seq_type="BIGINT") + ";\n").split(";\n"):
                        if statement.strip():
                            cur.execute(statement)
                    cur.execute(_PG_TRIGGERS)
                    cur.execute("INSERT INTO audit_meta VALUES ('schema_version', %s) "
                                "ON CONFLICT DO NOTHING", (str(SCHEMA_VERSION),))
                    cur.execute("INSERT INTO audit_head VALUES (1, 0, %s) ON CONFLICT DO NOTHING",
                                (GENESIS,))
                cur.execute("SELECT value FROM audit_meta WHERE key = 'schema_version'")
                version = int(cur.fetchone()[0])
            if version not in READABLE_SCHEMA_VERSIONS:
                raise AuditError(
                    f"audit store {self.location} has schema version {version}, this hil "
                    f"reads version {SCHEMA_VERSION}", hint="upgrade hil")
            self.schema_version = version
        except AuditError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise AuditError(
                f"cannot open the audit store {self.location}: {exc}",
                hint=f"check the server is running and the URL in {ENV_VAR} or --db",
            ) from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> Any:
        if self._conn is None:
            raise AuditError(f"audit store {self.location} is not open (use it in a with block)")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self.conn.transaction():
            cur = self.conn.cursor()
            cur.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
            yield cur

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            return cur.fetchall()

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        name = f"hil_audit_{os.getpid()}_{id(sql)}"
        with self.conn.transaction(), self.conn.cursor(name=name) as cur:
            cur.itersize = 2000
            cur.execute(sql, tuple(params))
            yield from cur
