"""The audit store: append-only, hash-chained records in SQLite (default) or PostgreSQL.

Each record is ``(seq, time, kind, image_sha256, payload, prev_hash, hash)``; ``hash`` is the
sha256 of the record's canonical form, which includes ``prev_hash``, the hash of the record
before it. Editing, deleting or reordering a record therefore breaks the chain at that record.
A one-row head table holds the last ``(seq, hash)`` so deleting the newest records is caught
too; for protection against someone who rewrites the whole file, keep a copy of the head hash
that ``hil audit verify`` prints (``--head``) or sign builds.

Both backends share one schema. Columns besides the chained ones (board, rack id, toolchain)
and the side tables ``audit_digest`` (every hash a build names: artifacts, tools, libraries,
toolchain id) and ``audit_location`` (per rack position, the newest flash that changed the
chip: see :func:`flash_state`) are derived from the payload so queries use indexes;
``verify`` recomputes them.

Schema version 2 added the flash record's ``state``; version 1 stores are read (their flash
records derive the same location as before) and marked version 2 by the first append, so an
older hil, which would move "runs now" on a flash that never touched the chip, refuses them.

The backends are in :mod:`hil.audit.backends`. Contract: ``Store`` objects do no I/O until
entered (``with open_store() as store:``). Every append is one transaction (``BEGIN
IMMEDIATE`` in SQLite WAL, a row lock on the head row in PostgreSQL), so a crash leaves the
whole record or none and concurrent writers serialise. Failures to open or write raise
:class:`hil.errors.AuditError` naming the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hil.errors import AuditError
from hil.paths import state_dir
from hil.settings import current

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
GENESIS = "0" * 64
#: ``recovery``: one step of the recovery ladder on a rack board (hil.recovery).
KINDS = ("build", "flash", "test", "recovery")
#: What a flash record says about the chip's flash afterwards: ``runs`` (the image was
#: written and read back equal), ``unknown`` (erase or program began, then failed or was
#: interrupted: needs re-flash), ``untouched`` (failed before anything was written).
FLASH_STATES = ("runs", "unknown", "untouched")
ENV_VAR = "HIL_AUDIT_DB"

_COLUMNS = (
    "seq, time, kind, image_sha256, payload, prev_hash, hash, "
    "board, rack_id, toolchain_id, toolchain_name, toolchain_version"
)


def canonical_json(value: Any) -> str:
    """The one JSON form that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(
    seq: int, time: str, kind: str, image_sha256: str, prev_hash: str, payload_text: str
) -> str:
    """sha256 of a record's chained fields as stored: the JSON array
    ``[seq, time, kind, image_sha256, prev_hash]``, a newline, then the payload text."""
    head = canonical_json([seq, time, kind, image_sha256, prev_hash])
    return hashlib.sha256(f"{head}\n{payload_text}".encode()).hexdigest()


def now_iso() -> str:
    """The current UTC time as stored in records: ISO 8601 with microseconds and ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Record:
    """One audit record as stored."""

    seq: int
    time: str
    kind: str
    image_sha256: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "kind": self.kind,
            "image_sha256": self.image_sha256,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Derived:
    """Index columns and side-table rows computed from one record's payload."""

    board: str | None
    rack_id: str | None
    toolchain_id: str | None
    toolchain_name: str | None
    toolchain_version: str | None
    digests: tuple[tuple[str, str], ...]  # (sha256, role), sorted
    location: str | None  # the rack position a flash record programs


def derive(kind: str, payload: dict[str, Any]) -> Derived:
    """Compute a record's index columns from its payload (the payload is the truth)."""
    if kind == "build":
        build = payload.get("build") or {}
        tc = build.get("toolchain") or {}
        digests: set[tuple[str, str]] = set()
        if tc.get("id"):
            digests.add((tc["id"], "toolchain"))
        for role, tool in sorted((tc.get("tools") or {}).items()):
            if isinstance(tool, dict) and tool.get("sha256"):
                digests.add((tool["sha256"], f"tool:{role}"))
        for role, lib in sorted((tc.get("libraries") or {}).items()):
            if isinstance(lib, dict) and lib.get("sha256"):
                digests.add((lib["sha256"], f"library:{role}"))
        for role, art in sorted((build.get("artifacts") or {}).items()):
            if isinstance(art, dict) and art.get("sha256"):
                digests.add((art["sha256"], f"artifact:{role}"))
        return Derived(
            board=build.get("board"),
            rack_id=None,
            toolchain_id=tc.get("id"),
            toolchain_name=tc.get("name"),
            toolchain_version=tc.get("version"),
            digests=tuple(sorted(digests)),
            location=None,
        )
    board = payload.get("board")
    rack_id = payload.get("rack_id")
    moves = kind == "flash" and flash_state(payload) != "untouched"
    location = (rack_id or board) if moves else None
    return Derived(
        board=board,
        rack_id=rack_id,
        toolchain_id=None,
        toolchain_name=None,
        toolchain_version=None,
        digests=(),
        location=location,
    )


def flash_state(payload: dict[str, Any]) -> str:
    """A flash record's ``state`` (one of FLASH_STATES). Records written before the field
    existed (schema 1) say ``runs`` only when the flash completed and verified, else
    ``unknown``: either way they moved the location, as they did when written."""
    state = payload.get("state")
    if state in FLASH_STATES:
        return str(state)
    return "runs" if payload.get("ok", True) and payload.get("verified") else "unknown"


def default_location() -> str:
    """HIL_AUDIT_DB if set, else ``<state dir>/audit.sqlite``."""
    return current().audit_db or str(state_dir() / "audit.sqlite")


def open_store(location: str | os.PathLike[str] | None = None) -> Store:
    """A store for a path, ``sqlite:///path`` or ``postgresql://`` URL (default: see above).

    Does no I/O; enter the returned store with ``with`` to open it.
    """
    from hil.audit.backends import PostgresStore, SqliteStore

    where = str(location) if location is not None else default_location()
    if where.startswith(("postgresql://", "postgres://")):
        return PostgresStore(where)
    if where.startswith("sqlite:///"):
        where = where[len("sqlite://"):]
    elif "://" in where:
        raise AuditError(
            f"audit store {where!r}: unknown URL scheme",
            hint=f"use a file path, sqlite:///path or postgresql://... (in {ENV_VAR} or --db)",
        )
    return SqliteStore(Path(where))


class Store:
    """Base of both backends: the chain logic; subclasses provide the connection.

    Use as a context manager. ``append`` writes one record atomically and returns it;
    the query methods return records in ``seq`` order unless said otherwise.
    """

    placeholder = "?"
    location: str
    schema_version: int = SCHEMA_VERSION  # as found when opened

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- backend hooks -------------------------------------------------------------------

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _write(self) -> Any:
        """Context manager: one write transaction holding the append lock; yields a cursor."""
        raise NotImplementedError

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        yield from self._rows(sql, params)

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    # -- writing -------------------------------------------------------------------------

    def append(
        self, kind: str, image_sha256: str, payload: dict[str, Any], *, time: str | None = None
    ) -> Record:
        """Append one record in one transaction and return it as stored."""
        return self.append_many([(kind, image_sha256, payload, time)])[-1]

    def append_many(
        self, items: Iterable[tuple[str, str, dict[str, Any], str | None]]
    ) -> list[Record]:
        """Append several ``(kind, image_sha256, payload, time)`` records in one transaction."""
        prepared = []
        for kind, image_sha256, payload, time in items:
            if kind not in KINDS:
                raise AuditError(f"audit record kind {kind!r} is not one of {', '.join(KINDS)}")
            if not _is_sha256(image_sha256):
                raise AuditError(f"audit record image_sha256 {image_sha256!r} is not a sha256")
            text = canonical_json(payload)
            prepared.append((kind, image_sha256.lower(), payload, text, time))
        out: list[Record] = []
        try:
            with self._write() as cur:
                cur.execute(self._sql("SELECT seq, hash FROM audit_head WHERE id = 1"))
                head = cur.fetchone()
                seq, prev = (int(head[0]), head[1]) if head else (0, GENESIS)
                for kind, image_sha256, payload, text, time in prepared:
                    seq += 1
                    when = time or now_iso()
                    digest = record_hash(seq, when, kind, image_sha256, prev, text)
                    d = derive(kind, payload)
                    cur.execute(
                        self._sql(f"INSERT INTO audit_record ({_COLUMNS}) "
                                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                        (seq, when, kind, image_sha256, text, prev, digest, d.board,
                         d.rack_id, d.toolchain_id, d.toolchain_name, d.toolchain_version),
                    )
                    if d.digests:
                        cur.executemany(
                            self._sql("INSERT INTO audit_digest (sha256, seq, role) "
                                      "VALUES (?, ?, ?)"),
                            [(sha, seq, role) for sha, role in d.digests],
                        )
                    if d.location:
                        cur.execute(
                            self._sql("INSERT INTO audit_location (location, seq) VALUES (?, ?) "
                                      "ON CONFLICT (location) DO UPDATE SET seq = excluded.seq"),
                            (d.location, seq),
                        )
                    out.append(Record(seq, when, kind, image_sha256, payload, prev, digest))
                    prev = digest
                cur.execute(self._sql("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"),
                            (seq, prev))
                if self.schema_version != SCHEMA_VERSION:  # records of this version follow
                    cur.execute(self._sql("UPDATE audit_meta SET value = ? "
                                          "WHERE key = 'schema_version'"),
                                (str(SCHEMA_VERSION),))
            self.schema_version = SCHEMA_VERSION
        except AuditError:
            raise
        except Exception as exc:  # sqlite3 / psycopg errors: say which store, keep the cause
            raise AuditError(
                f"cannot write to the audit store {self.location}: {exc}",
                hint=f"check that it is writable, or point {ENV_VAR} at another store",
            ) from exc
        return out

    # -- reading -------------------------------------------------------------------------

    def _records(self, where: str, params: Sequence[Any], order: str = "seq",
                 limit: int | None = None) -> list[Record]:
        sql = "SELECT seq, time, kind, image_sha256, payload, prev_hash, hash FROM audit_record"
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_record(row) for row in self._query(sql, params)]

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._rows(self._sql(sql), params)
        except Exception as exc:
            raise AuditError(f"cannot read the audit store {self.location}: {exc}") from exc

    def head(self) -> tuple[int, str]:
        """The ``(seq, hash)`` of the newest record as kept in the head table."""
        rows = self._query("SELECT seq, hash FROM audit_head WHERE id = 1")
        return (int(rows[0][0]), rows[0][1]) if rows else (0, GENESIS)

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM audit_record")[0][0])

    def for_image(self, image_sha256: str) -> list[Record]:
        """Every record about one image (by its HEX sha256), oldest first."""
        return self._records("image_sha256 = ?", (image_sha256.lower(),))

    def images_with_digest(self, sha256: str) -> list[tuple[str, str]]:
        """``(image_sha256, role)`` of builds naming ``sha256`` as an artifact or tool."""
        rows = self._query(
            "SELECT r.image_sha256, d.role FROM audit_digest d "
            "JOIN audit_record r ON r.seq = d.seq WHERE d.sha256 = ? ORDER BY d.seq DESC "
            "LIMIT 1000",
            (sha256.lower(),),
        )
        return [(r[0], r[1]) for r in rows]

    def build_with_artifact(self, sha256: str,
                            roles: Sequence[str]) -> tuple[Record, str] | None:
        """The newest build naming ``sha256`` as one of its ``roles`` artifacts (e.g.
        ``hex``), and which one; None when no build does."""
        if not roles:
            return None
        marks = ", ".join("?" for _ in roles)
        rows = self._query(
            f"SELECT seq, role FROM audit_digest WHERE sha256 = ? AND role IN ({marks}) "
            "ORDER BY seq DESC LIMIT 1",
            (sha256.lower(), *(f"artifact:{r}" for r in roles)))
        if not rows:
            return None
        build = self.by_seq(int(rows[0][0]))
        if build is None or build.kind != "build":
            return None
        return build, str(rows[0][1]).split(":", 1)[1]

    def builds_with_digest(self, sha256: str, limit: int) -> tuple[list[Record], int, list[str]]:
        """Newest builds naming ``sha256`` (toolchain id, tool, library), their total, and
        the roles it has in them (e.g. ``tool:as``)."""
        sha = sha256.lower()
        total = int(self._query("SELECT COUNT(DISTINCT seq) FROM audit_digest WHERE sha256 = ?",
                                (sha,))[0][0])
        records = self._records(
            "seq IN (SELECT seq FROM audit_digest WHERE sha256 = ? ORDER BY seq DESC LIMIT ?)",
            (sha, limit), order="seq DESC")
        roles = {role for rec in records for digest, role in derive("build", rec.payload).digests
                 if digest == sha}
        return records, total, sorted(roles)

    def builds_by_toolchain(self, name: str, version: str | None,
                            limit: int) -> tuple[list[Record], int]:
        """Newest builds by toolchain name (and version), and their total number."""
        where = "toolchain_name = ?"  # only build records have a toolchain_name
        params: list[Any] = [name]
        if version:
            where += " AND toolchain_version = ?"
            params.append(version)
        total = int(self._query(f"SELECT COUNT(*) FROM audit_record WHERE {where}",
                                params)[0][0])
        return self._records(where, params, order="seq DESC", limit=limit), total

    def by_seq(self, seq: int) -> Record | None:
        found = self._records("seq = ?", (seq,))
        return found[0] if found else None

    def build_of(self, image_sha256: str) -> Record | None:
        """The newest build record of an image."""
        found = self._records("image_sha256 = ? AND kind = 'build'", (image_sha256.lower(),),
                              order="seq DESC", limit=1)
        return found[0] if found else None

    def builds_of(self, images: Iterable[str]) -> dict[str, Record]:
        """The newest build record of each image (one query; images without one are absent)."""
        wanted = sorted({i.lower() for i in images})
        out: dict[str, Record] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for rec in self._records(f"image_sha256 IN ({marks}) AND kind = 'build'", chunk):
                out[rec.image_sha256] = rec  # seq order: the newest wins
        return out

    def for_location(self, name: str, limit: int) -> list[Record]:
        """Flash and test records at one rack position (rack id; else board name), newest
        first."""
        found = self._records("rack_id = ?", (name,), order="seq DESC", limit=limit)
        if not found:
            found = self._records("board = ? AND kind <> 'build'", (name,),
                                  order="seq DESC", limit=limit)
        return found

    def current(self) -> list[tuple[str, Record]]:
        """``(location, flash record)`` for the newest flash at every rack position."""
        # Two primary-key steps rather than a join: no plan depends on table statistics.
        where = self.locations()
        if not where:
            return []
        marks = ", ".join("?" for _ in where)
        by_seq = {r.seq: r for r in self._records(f"seq IN ({marks})", list(where.values()))}
        return [(loc, by_seq[seq]) for loc, seq in sorted(where.items()) if seq in by_seq]

    def since(self, time: str | None, kinds: Sequence[str] = KINDS,
              limit: int | None = None) -> list[Record]:
        """Records at or after an ISO time (all when None), newest first."""
        marks = ", ".join("?" for _ in kinds)
        where = f"kind IN ({marks})"
        params: list[Any] = list(kinds)
        if time:
            where += " AND time >= ?"
            params.append(time)
        return self._records(where, params, order="seq DESC", limit=limit)

    def iter_raw(self, first: int = 0, last: int = 1 << 62) -> Iterator[tuple[Any, ...]]:
        """Stored rows, seq order, with derived columns (for verify): see ``_COLUMNS``."""
        try:
            yield from self._stream(self._sql(f"SELECT {_COLUMNS} FROM audit_record "
                                              "WHERE seq BETWEEN ? AND ? ORDER BY seq"),
                                    (first, last))
        except Exception as exc:
            raise AuditError(f"cannot read the audit store {self.location}: {exc}") from exc

    def iter_digests(self, first: int = 0,
                     last: int = 1 << 62) -> Iterator[tuple[int, str, str]]:
        """``(seq, sha256, role)`` rows of the digest index, seq order."""
        try:
            yield from self._stream(self._sql(
                "SELECT seq, sha256, role FROM audit_digest WHERE seq BETWEEN ? AND ? "
                "ORDER BY seq, sha256, role"), (first, last))
        except Exception as exc:
            raise AuditError(f"cannot read the audit store {self.location}: {exc}") from exc

    def locations(self) -> dict[str, int]:
        return {row[0]: int(row[1]) for row in
                self._query("SELECT location, seq FROM audit_location")}


def _record(row: Sequence[Any]) -> Record:
    seq, time, kind, image, payload, prev, digest = row[:7]
    try:
        data = json.loads(payload)
    except (TypeError, ValueError):
        data = {"_unreadable_payload": str(payload)}
    return Record(int(seq), time, kind, image, data, prev, digest)


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None
