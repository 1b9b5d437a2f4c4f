"""Board leases: atomic, first-come-first-served, crash-safe, on SQLite or PostgreSQL.

Every change happens in one transaction that holds the database's own lock (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock), and the lease table's
primary key is the rack entry id, so two holders of one board cannot exist even if the
allocation logic were wrong.

Fairness: a process that wants a board enters a queue (``hil_waiters``, ordered by ticket).
Whenever anyone looks, free healthy boards are handed out to the queue in ticket order; a
waiter takes a board only when the hand-out gives it one, so later arrivals never overtake.

Crash safety: a lease has an expiry renewed by a heartbeat thread while the holder lives.
An expired lease is reclaimed by the next transaction, and so is a lease or queue place
whose holder was on this host and whose pid is gone. Only the lease token releases or
renews a lease.

Waiting: a waiter sleeps on a doorbell (``hil.rack.bell``) that the transaction freeing a
board for it rings, so a hand-over costs a wake-up, not a poll interval; it still polls,
slowly, in case a ring is lost. Reads that change nothing (status, the rack page) do not
take the write lock.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import math
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.errors import BoardsUnhealthy, ConfigError, LeaseError, LeaseTimeout
from hil.limits import LEASE_TTL, LEASE_TTL_ANY, LEASE_WAIT
from hil.rack.bell import Bell, SocketBell, ring_sockets
from hil.settings import current
from hil.storage import check_store_path, connect_sqlite, redact_url, sqlite_problem

log = logging.getLogger(__name__)

UNHEALTHY_AFTER = 3  # consecutive infrastructure failures
WAITER_STALE_S = 15.0  # a queue place whose heartbeat is older is dropped
POLL_S = 0.05  # a waiter's poll interval without a doorbell (at the head of the queue)
BELL_POLL_S = 0.5  # ... with one: only a lost ring waits this long
_ADVISORY_KEY = 0x68696C  # "hil"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS hil_leases (
        rack_id TEXT PRIMARY KEY,
        token TEXT NOT NULL UNIQUE,
        user_name TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
        ci_job TEXT, purpose TEXT,
        acquired_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS hil_waiters (
        ticket {autoinc},
        candidates TEXT NOT NULL,
        host TEXT NOT NULL, pid INTEGER NOT NULL,
        since DOUBLE PRECISION NOT NULL, heartbeat DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS hil_health (
        rack_id TEXT PRIMARY KEY,
        failures INTEGER NOT NULL DEFAULT 0,
        unhealthy_reason TEXT, updated_at DOUBLE PRECISION NOT NULL)""",
    # what happened to each board's health: recoveries (which ladder step brought it back),
    # health checks, and the board turning unhealthy or returning to service
    """CREATE TABLE IF NOT EXISTS hil_health_log (
        seq {autoinc},
        rack_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL, step TEXT, ok INTEGER NOT NULL, detail TEXT,
        host TEXT NOT NULL, pid INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS hil_lease_log (
        seq {autoinc},
        rack_id TEXT NOT NULL, token TEXT NOT NULL, event TEXT NOT NULL,
        ticket INTEGER, at DOUBLE PRECISION NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL)""",
]
_TABLES = tuple(stmt.split()[5] for stmt in SCHEMA)  # CREATE TABLE IF NOT EXISTS <name>


@dataclass(frozen=True)
class Holder:
    """Who holds (or waits for) a lease."""

    user: str
    host: str
    pid: int
    ci_job: str | None = None
    purpose: str | None = None

    @classmethod
    def current(cls, purpose: str | None = None) -> Holder:
        ci_job = current().ci_job
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(user, socket.gethostname(), os.getpid(), ci_job, purpose)


@dataclass(frozen=True)
class LeaseInfo:
    rack_id: str
    token: str
    holder: Holder
    acquired_at: float
    expires_at: float


@dataclass(frozen=True)
class Health:
    rack_id: str
    failures: int
    unhealthy_reason: str | None

    @property
    def healthy(self) -> bool:
        return self.unhealthy_reason is None


# the unhealthy reason of a board a person switched off (`hil rack power ID off`): it stays
# out of service, and out of automatic re-checks, until switched on again
OFF_BY_HAND = "switched off by hand"

HEALTH_EVENTS = ("recovery", "check", "unhealthy", "returned", "power")


@dataclass(frozen=True)
class HealthEvent:
    """One line of a board's health history (``hil_health_log``).

    ``kind``: ``recovery`` (a recovery-ladder step was tried: ``step`` names it, ``ok`` says
    whether the board answered after it), ``check`` (a health check ran; ``ok`` its result),
    ``unhealthy`` (the board was taken out of service; ``detail`` is the reason) or
    ``returned`` (back in service) or ``power`` (switched by hand with ``hil rack power``:
    ``step`` is on, off or cycle, ``detail`` who did it)."""

    rack_id: str
    at: float
    kind: str
    step: str | None
    ok: bool
    detail: str | None
    host: str
    pid: int


REASON_SEP = " | "  # between the distinct reasons an unhealthy board collected
REASONS_KEPT = 5


@dataclass(frozen=True)
class CheckRecord:
    """What ``record_check`` did: the check's result and the unhealthy reason before and
    after (None: healthy)."""

    rack_id: str
    ok: bool
    reason_before: str | None
    reason_after: str | None

    @property
    def returned(self) -> bool:
        return self.ok and self.reason_before is not None


@dataclass(frozen=True)
class Waiter:
    """A place in the lease queue: the rack ids it waits for, in order of preference."""

    ticket: int
    candidates: list[str]
    host: str
    pid: int
    since: float | None


@dataclass(frozen=True)
class RackView:
    """The lease database at one moment (``LeaseStore.view``), for the rack page."""

    at: float
    leases: dict[str, LeaseInfo]
    health: dict[str, Health]
    waiters: list[Waiter]
    events: list[HealthEvent]  # the newest health events, oldest first
    # unhealthy boards and when that last changed: the start of their re-check cool-down
    unhealthy_since: dict[str, float] = field(default_factory=dict)


def _finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (a row written by hil), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _candidates(text: object) -> list[str] | None:
    """The rack ids a queue place waits for, or None when its row is unreadable."""
    try:
        ids = json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return ids


def lease_problem(info: LeaseInfo, now: float) -> str | None:
    """Why a lease row cannot be one hil wrote (a damaged or hand-edited database), or None.

    Such a lease is never reclaimed by its expiry (no board is handed out twice on a guess);
    ``hil rack reset ID`` (LeaseStore.reset) removes it."""
    acquired, expires = _finite(info.acquired_at), _finite(info.expires_at)
    if expires is None:
        return f"its expiry {info.expires_at!r} is not a time"
    if acquired is None:
        return f"its start {info.acquired_at!r} is not a time"
    if expires > now + LEASE_TTL.high + 60:
        return (f"its expiry is {expires - now:.3g} s away, beyond the longest TTL hil grants "
                f"({LEASE_TTL.high:.0f} s)")
    if acquired < 0 or acquired > expires:
        return f"its start {info.acquired_at!r} is not a time before its expiry"
    if not isinstance(info.token, str) or not isinstance(info.rack_id, str):
        return "its token or rack id is not text"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class LeaseStore:
    """The lease database. Use ``open_store(url)``; a store is a context manager."""

    dialect = "sqlite"

    def __init__(self) -> None:
        self.host = socket.gethostname()

    # -- backend hooks -------------------------------------------------------------------
    @contextmanager
    def _tx(self, *, read: bool = False) -> Iterator[Any]:  # pragma: no cover - backends
        """A transaction; ``read``: it changes nothing, so it need not take the write lock."""
        raise NotImplementedError
        yield

    def _listen(self, ticket: int) -> Bell | None:
        """A doorbell for queue place ``ticket``, or None: the waiter polls."""
        return None

    def _ring(self, cur: Any, tickets: set[int]) -> None:
        """Ring the bells of ``tickets`` when this transaction commits (not if it fails)."""

    def _now(self, cur: Any) -> float:
        return time.time()

    def close(self) -> None:  # pragma: no cover - implemented by backends
        raise NotImplementedError

    def __enter__(self) -> LeaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _q(self, sql: str) -> str:
        return sql

    def _create_tables(self, count_sql: str, autoinc: str) -> None:
        """Create the tables unless they all exist (most opens: then without the write
        lock, so opening a store never waits for a writer)."""
        with self._tx(read=True) as cur:
            cur.execute(self._q(count_sql.format(", ".join("?" * len(_TABLES)))), _TABLES)
            if cur.fetchone()[0] == len(_TABLES):
                return
        with self._tx() as cur:
            for stmt in SCHEMA:
                cur.execute(stmt.format(autoinc=autoinc))

    # -- housekeeping (inside a transaction) ---------------------------------------------
    def _lease_gone(self, host: object, pid: object, expires: object,
                    now: float) -> str | None:
        """Why a lease row is reclaimed by the next transaction (``expired``,
        ``holder-died``), or None while it holds its board."""
        expiry = _finite(expires)  # an unreadable expiry keeps the board held: see status
        if expiry is not None and expiry < now:
            return "expired"
        if isinstance(pid, int) and pid > 0 and host == self.host \
                and not _pid_alive(pid):  # pid 0: TTL only
            return "holder-died"
        return None

    def _waiter_gone(self, host: object, pid: object, raw_beat: object, candidates: object,
                     now: float) -> bool:
        """A queue place that the next transaction drops (stale, unreadable, holder dead)."""
        beat = _finite(raw_beat)
        return beat is None or beat < now - WAITER_STALE_S or _candidates(candidates) is None \
            or (host == self.host and isinstance(pid, int) and pid > 0
                and not _pid_alive(pid))

    def _reap(self, cur: Any, now: float) -> None:
        q = self._q
        freed = False
        cur.execute(q("SELECT rack_id, token, host, pid, expires_at FROM hil_leases"))
        for rack_id, token, host, pid, expires in cur.fetchall():
            why = self._lease_gone(host, pid, expires, now)
            if why:
                freed = True
                cur.execute(q("DELETE FROM hil_leases WHERE token = ?"), (token,))
                self._log(cur, rack_id, token, why, None, now)
                log.info("lease %s on %s reclaimed: %s", str(token)[:8], rack_id, why)
        cur.execute(q("SELECT ticket, host, pid, heartbeat, candidates FROM hil_waiters"))
        for ticket, host, pid, raw_beat, candidates in cur.fetchall():
            if self._waiter_gone(host, pid, raw_beat, candidates, now):
                cur.execute(q("DELETE FROM hil_waiters WHERE ticket = ?"), (ticket,))
                freed = True
        if freed:
            self._wake(cur)

    def _wake(self, cur: Any, *, everyone: bool = False) -> None:
        """Ring the waiters that the hand-out now gives a board (``everyone``: all of them,
        e.g. a board went out of service and a waiter's last candidate may be gone)."""
        cur.execute(self._q("SELECT 1 FROM hil_waiters LIMIT 1"))
        if cur.fetchone() is None:  # nobody waits (the common case): nothing to work out
            return
        assigned, order = self._handout(cur)
        tickets = set(order) if everyone else set(assigned)
        if tickets:
            self._ring(cur, tickets)

    def _log(self, cur: Any, rack_id: str, token: str, event: str, ticket: int | None,
             now: float) -> None:
        cur.execute(self._q("INSERT INTO hil_lease_log (rack_id, token, event, ticket, at, "
                            "host, pid) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                    (rack_id, token, event, ticket, now, self.host, os.getpid()))

    def _unhealthy(self, cur: Any) -> set[str]:
        cur.execute(self._q("SELECT rack_id FROM hil_health WHERE unhealthy_reason IS NOT NULL"))
        return {row[0] for row in cur.fetchall()}

    def _unhealthy_among(self, cur: Any, candidates: Sequence[str]) -> dict[str, str]:
        """Rack id -> unhealthy reason, for the ``candidates`` out of service (in their order)."""
        cur.execute(self._q("SELECT rack_id, unhealthy_reason FROM hil_health "
                            "WHERE unhealthy_reason IS NOT NULL"))
        reasons = {row[0]: row[1] for row in cur.fetchall()}
        return {i: reasons[i] for i in candidates if i in reasons}

    def _handout(self, cur: Any) -> tuple[dict[int, str], list[int]]:
        """Free healthy boards handed out to the queue in ticket order (not yet taken)."""
        cur.execute(self._q("SELECT rack_id FROM hil_leases"))
        busy = {row[0] for row in cur.fetchall()} | self._unhealthy(cur)
        cur.execute(self._q("SELECT ticket, candidates FROM hil_waiters ORDER BY ticket"))
        assigned: dict[int, str] = {}
        order = []
        for ticket, candidates in cur.fetchall():
            order.append(ticket)
            for rack_id in _candidates(candidates) or ():
                if rack_id not in busy:
                    assigned[ticket] = rack_id
                    busy.add(rack_id)
                    break
        return assigned, order

    # -- the API ---------------------------------------------------------------------------
    def acquire(self, candidates: Sequence[str], *, holder: Holder | None = None,
                ttl: float = 60.0, wait: float | None = 0.0,
                on_wait: Callable[[int, int], None] | None = None) -> LeaseInfo:
        """Lease one of ``candidates`` (rack ids, in order of preference).

        ``wait``: seconds to wait for a free board (None: forever; 0: not at all).
        ``on_wait(position, queue_length)`` is called when the queue position changes.
        Raises BoardsUnhealthy at once when every candidate is out of service (also when
        that happens during the wait), LeaseTimeout when no board became free in time,
        UsageError when ``ttl`` or ``wait`` is not a finite number in range (a lease must not
        be born expired)."""
        LEASE_TTL_ANY.check(ttl, "lease ttl")
        LEASE_WAIT.check(wait, "lease wait")
        if not candidates:
            raise LeaseError("no rack entry matches", hint="check --board / --tag against "
                             "'hil rack status'")
        holder = holder or Holder.current()
        deadline = None if wait is None else time.monotonic() + wait
        ticket: int | None = None
        bell: Bell | None = None
        listened = False
        last_position = None
        try:
            while True:
                with self._tx() as cur:
                    now = self._now(cur)
                    self._reap(cur, now)
                    if ticket is None:  # first look: join the queue in the same transaction
                        cur.execute(self._q(
                            "INSERT INTO hil_waiters (candidates, host, pid, since, heartbeat) "
                            "VALUES (?, ?, ?, ?, ?) RETURNING ticket"),
                            (json.dumps(list(candidates)), holder.host, holder.pid, now, now))
                        ticket = int(cur.fetchone()[0])
                    else:
                        cur.execute(self._q(
                            "UPDATE hil_waiters SET heartbeat = ? WHERE ticket = ?"),
                            (now, ticket))
                        if cur.rowcount == 0:
                            raise LeaseError("this process's place in the lease queue was "
                                             "dropped (it did not poll for too long)")
                    assigned, order = self._handout(cur)
                    rack_id = assigned.get(ticket)
                    if rack_id:
                        token = secrets.token_hex(16)
                        cur.execute(self._q(
                            "INSERT INTO hil_leases (rack_id, token, user_name, host, pid, "
                            "ci_job, purpose, acquired_at, expires_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                            (rack_id, token, holder.user, holder.host, holder.pid,
                             holder.ci_job, holder.purpose, now, now + ttl))
                        cur.execute(self._q("DELETE FROM hil_waiters WHERE ticket = ?"),
                                    (ticket,))
                        self._log(cur, rack_id, token, "acquire", ticket, now)
                        ticket = None  # taken: nothing to clean up
                        return LeaseInfo(rack_id, token, holder, now, now + ttl)
                    position = order.index(ticket) + 1
                    sick = self._unhealthy_among(cur, candidates)
                    if len(sick) == len(set(candidates)):  # no board can come free: no wait
                        raise boards_unhealthy(sick)
                if deadline is not None and time.monotonic() >= deadline:
                    out = "; ".join(f"{i} unhealthy: {r}" for i, r in sick.items())
                    held = [i for i in candidates if i not in sick]
                    waited = f"after waiting {wait:g} s" if wait else "now"
                    raise LeaseTimeout(
                        f"no free board among {', '.join(candidates)} {waited} (place "
                        f"{position} of {len(order)} in the queue; "
                        f"held: {', '.join(held)}{'; ' + out if out else ''})",
                        hint="'hil rack status' shows who holds them; raise --wait to wait "
                        "longer")
                if on_wait and position != last_position:
                    on_wait(position, len(order))
                last_position = position
                if not listened:
                    listened = True
                    bell = self._listen(ticket)
                    if bell is not None:
                        continue  # listening now: look once more, a ring may have gone unheard
                # places far back in the queue poll less often, so many waiters do not keep
                # the database's lock busy
                pause = (BELL_POLL_S if bell else POLL_S) * \
                    min(max(1.0, position / len(candidates)), 10.0 if bell is None else 4.0)
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - time.monotonic()))
                if bell is not None:
                    bell.wait(pause)
                else:
                    time.sleep(pause)
        finally:
            if bell is not None:
                bell.close()
            if ticket is not None:  # gave up or failed: leave the queue
                self._leave_queue(ticket)

    def _leave_queue(self, ticket: int) -> None:
        """Give up queue place ``ticket``. This runs while an error or Ctrl-C ends the
        wait: a failure here (the database went away meanwhile) is logged, not raised over
        it, and the place is dropped by others after WAITER_STALE_S."""
        try:
            with self._tx() as cur:
                cur.execute(self._q("DELETE FROM hil_waiters WHERE ticket = ?"), (ticket,))
                self._wake(cur)  # a board the hand-out gave this place goes to the next
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning("could not leave the lease queue (place %s; it is dropped after "
                        "%.0f s): %s", ticket, WAITER_STALE_S, exc)

    def release(self, token: str) -> str:
        """Release the lease with ``token``; returns its rack id."""
        with self._tx() as cur:
            now = self._now(cur)
            cur.execute(self._q("SELECT rack_id FROM hil_leases WHERE token = ?"), (token,))
            row = cur.fetchone()
            if not row:
                raise LeaseError(f"no lease with token {token[:8]}... (already released, "
                                 "expired, or not yours)",
                                 hint="'hil rack status' lists the current leases")
            cur.execute(self._q("DELETE FROM hil_leases WHERE token = ?"), (token,))
            self._log(cur, row[0], token, "release", None, now)
            self._wake(cur)
            return str(row[0])

    def renew(self, token: str, ttl: float) -> float:
        """Extend the lease with ``token`` by ``ttl`` from now; returns the new expiry."""
        LEASE_TTL_ANY.check(ttl, "lease ttl")
        with self._tx() as cur:
            now = self._now(cur)
            cur.execute(self._q("UPDATE hil_leases SET expires_at = ? WHERE token = ?"),
                        (now + ttl, token))
            if cur.rowcount == 0:
                raise LeaseError(f"lease {token[:8]}... is gone (expired or released)",
                                 hint="the heartbeat stalled for longer than the TTL")
            return now + ttl

    def leases(self) -> dict[str, LeaseInfo]:
        with self._tx() as cur:
            self._reap(cur, self._now(cur))
            cur.execute(self._q("SELECT rack_id, token, user_name, host, pid, ci_job, purpose, "
                                "acquired_at, expires_at FROM hil_leases"))
            return {r[0]: LeaseInfo(r[0], r[1], Holder(r[2], r[3], r[4], r[5], r[6]), r[7], r[8])
                    for r in cur.fetchall()}

    def queue_length(self) -> int:
        with self._tx(read=True) as cur:
            cur.execute(self._q("SELECT COUNT(*) FROM hil_waiters"))
            return int(cur.fetchone()[0])

    def health(self) -> dict[str, Health]:
        with self._tx(read=True) as cur:
            cur.execute(self._q("SELECT rack_id, failures, unhealthy_reason FROM hil_health"))
            return {r[0]: Health(r[0], r[1], r[2]) for r in cur.fetchall()}

    def report_failure(self, rack_id: str, reason: str) -> Health:
        """Count an infrastructure failure; the board turns unhealthy after a few in a row."""
        with self._tx() as cur:
            now = self._now(cur)
            cur.execute(self._q("SELECT failures FROM hil_health WHERE rack_id = ?"), (rack_id,))
            row = cur.fetchone()
            count = row[0] if row else 0
            failures = (count if isinstance(count, int) and count >= 0 else 0) + 1
            reason_text = (f"{failures} infrastructure failures in a row; last: {reason}"
                           if failures >= UNHEALTHY_AFTER else None)
            cur.execute(self._q(
                "INSERT INTO hil_health (rack_id, failures, unhealthy_reason, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (rack_id) DO UPDATE SET "
                "failures = excluded.failures, unhealthy_reason = excluded.unhealthy_reason, "
                "updated_at = excluded.updated_at"), (rack_id, failures, reason_text, now))
            if reason_text is not None:
                self._wake(cur, everyone=True)  # a waiter's last candidate may be gone
            return Health(rack_id, failures, reason_text)

    def record_health_event(self, rack_id: str, kind: str, *, ok: bool,
                            step: str | None = None, detail: str | None = None) -> None:
        """Append one line to the board's health history (see ``HealthEvent``)."""
        if kind not in HEALTH_EVENTS:
            raise ValueError(f"unknown health event kind {kind!r}")
        with self._tx() as cur:
            cur.execute(self._q("INSERT INTO hil_health_log (rack_id, at, kind, step, ok, "
                                "detail, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                        (rack_id, self._now(cur), kind, step, int(bool(ok)), detail,
                         self.host, os.getpid()))

    def health_log(self, rack_id: str | None = None, *, limit: int = 50) -> list[HealthEvent]:
        """The newest ``limit`` health events (of one board, or all), oldest first."""
        with self._tx(read=True) as cur:
            where = "WHERE rack_id = ? " if rack_id is not None else ""
            args: tuple[Any, ...] = (rack_id,) if rack_id is not None else ()
            cur.execute(self._q("SELECT rack_id, at, kind, step, ok, detail, host, pid FROM "
                                f"hil_health_log {where}ORDER BY seq DESC LIMIT ?"),
                        (*args, int(limit)))
            rows = cur.fetchall()
        return [HealthEvent(r[0], float(r[1]), r[2], r[3], bool(r[4]), r[5], r[6], int(r[7]))
                for r in reversed(rows)]

    def mark_unhealthy(self, rack_id: str, reason: str) -> Health:
        """Take a board out of service at once (e.g. the recovery ladder's top step failed),
        with ``reason``; recorded in the health history too."""
        with self._tx() as cur:
            now = self._now(cur)
            cur.execute(self._q("SELECT failures FROM hil_health WHERE rack_id = ?"), (rack_id,))
            row = cur.fetchone()
            count = row[0] if row and isinstance(row[0], int) and row[0] >= 0 else 0
            cur.execute(self._q(
                "INSERT INTO hil_health (rack_id, failures, unhealthy_reason, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (rack_id) DO UPDATE SET "
                "failures = excluded.failures, unhealthy_reason = excluded.unhealthy_reason, "
                "updated_at = excluded.updated_at"), (rack_id, count + 1, reason, now))
            cur.execute(self._q("INSERT INTO hil_health_log (rack_id, at, kind, step, ok, "
                                "detail, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                        (rack_id, now, "unhealthy", None, 0, reason, self.host, os.getpid()))
            self._wake(cur, everyone=True)  # a waiter's last candidate may be gone
            return Health(rack_id, count + 1, reason)

    # -- health checks (hil rack check, rack-host --idle-checks) --------------------------
    def lease_for_check(self, rack_id: str, *, holder: Holder, ttl: float) -> LeaseInfo | None:
        """Lease ``rack_id`` now for a health check, or None when it is taken: leased, or
        free but due to a job waiting in the queue (jobs come first). Unlike ``acquire`` an
        unhealthy board can be leased: that is how it gets re-checked."""
        LEASE_TTL_ANY.check(ttl, "lease ttl")
        with self._tx() as cur:
            now = self._now(cur)
            self._reap(cur, now)
            cur.execute(self._q("SELECT 1 FROM hil_leases WHERE rack_id = ?"), (rack_id,))
            if cur.fetchone() is not None:
                return None
            assigned, _order = self._handout(cur)
            if rack_id in assigned.values():
                return None
            token = secrets.token_hex(16)
            cur.execute(self._q(
                "INSERT INTO hil_leases (rack_id, token, user_name, host, pid, ci_job, "
                "purpose, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                (rack_id, token, holder.user, holder.host, holder.pid, holder.ci_job,
                 holder.purpose, now, now + ttl))
            self._log(cur, rack_id, token, "acquire", None, now)
            return LeaseInfo(rack_id, token, holder, now, now + ttl)

    def record_check(self, rack_id: str, ok: bool, detail: str | None = None) -> CheckRecord:
        """Record a health check's result and act on it, in one transaction.

        Passed: an unhealthy board returns to service (a ``returned`` event), a healthy one
        has its failure count reset. Failed: a healthy board is taken out of service (an
        ``unhealthy`` event); an unhealthy one stays out, its reason keeping the distinct
        reasons so far (the newest first, at most ``REASONS_KEPT``), and its cool-down
        restarts."""
        with self._tx() as cur:
            now = self._now(cur)
            cur.execute(self._q("SELECT failures, unhealthy_reason FROM hil_health "
                                "WHERE rack_id = ?"), (rack_id,))
            row = cur.fetchone()
            count = row[0] if row and isinstance(row[0], int) and row[0] >= 0 else 0
            before = row[1] if row else None
            log_sql = self._q("INSERT INTO hil_health_log (rack_id, at, kind, step, ok, "
                              "detail, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            cur.execute(log_sql, (rack_id, now, "check", None, int(ok), detail, self.host,
                                  os.getpid()))
            upsert = self._q(
                "INSERT INTO hil_health (rack_id, failures, unhealthy_reason, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (rack_id) DO UPDATE SET "
                "failures = excluded.failures, unhealthy_reason = excluded.unhealthy_reason, "
                "updated_at = excluded.updated_at")
            if ok:
                cur.execute(upsert, (rack_id, 0, None, now))
                if before is not None:
                    cur.execute(log_sql, (rack_id, now, "returned", None, 1,
                                          "health check passed", self.host, os.getpid()))
                    self._wake(cur)
                return CheckRecord(rack_id, True, before, None)
            reason = f"health check failed: {detail or 'no reason given'}"
            if before is None:
                cur.execute(upsert, (rack_id, count + 1, reason, now))
                cur.execute(log_sql, (rack_id, now, "unhealthy", None, 0, reason, self.host,
                                      os.getpid()))
                self._wake(cur, everyone=True)
                return CheckRecord(rack_id, False, None, reason)
            reasons = [p for p in str(before).split(REASON_SEP) if p and p != reason]
            text = REASON_SEP.join([reason, *reasons][:REASONS_KEPT])
            cur.execute(upsert, (rack_id, count + 1, text, now))
            return CheckRecord(rack_id, False, str(before), text)

    def unhealthy_since(self) -> dict[str, float]:
        """Unhealthy boards and when that last changed (taken out, or a failed re-check):
        the start of their re-check cool-down."""
        with self._tx(read=True) as cur:
            cur.execute(self._q("SELECT rack_id, updated_at FROM hil_health "
                                "WHERE unhealthy_reason IS NOT NULL"))
            return {r[0]: t for r in cur.fetchall() if (t := _finite(r[1])) is not None}

    def report_ok(self, rack_id: str) -> None:
        """A successful use resets the failure count (an unhealthy board stays unhealthy)."""
        with self._tx() as cur:
            cur.execute(self._q("UPDATE hil_health SET failures = 0 WHERE rack_id = ? AND "
                                "unhealthy_reason IS NULL"), (rack_id,))

    def reset(self, rack_id: str, *, drop_lease: bool = False) -> str | None:
        """Mark a board healthy again (``hil rack reset``); returns why a lease was dropped.

        A lease row that hil cannot have written (``lease_problem``), or any lease on the
        board when ``drop_lease`` (its rack entry is gone), is removed too."""
        with self._tx() as cur:
            now = self._now(cur)
            cur.execute(self._q("DELETE FROM hil_health WHERE rack_id = ?"), (rack_id,))
            self._wake(cur)
            cur.execute(self._q("SELECT token, user_name, host, pid, acquired_at, expires_at "
                                "FROM hil_leases WHERE rack_id = ?"), (rack_id,))
            row = cur.fetchone()
            if row is None:
                return None
            info = LeaseInfo(rack_id, row[0], Holder(row[1], row[2], row[3]), row[4], row[5])
            why = lease_problem(info, now) or ("its rack entry is gone" if drop_lease else None)
            if why:
                cur.execute(self._q("DELETE FROM hil_leases WHERE rack_id = ?"), (rack_id,))
                self._log(cur, rack_id, str(row[0]), "reset", None, now)
                self._wake(cur)
            return why

    def view(self, *, events: int = 500) -> RackView:
        """Everything the rack page shows, read in one transaction that changes nothing:
        leases and queue places the next transaction would reclaim are left out (not
        deleted); ``events``: how many of the newest health events to read."""
        q = self._q
        with self._tx(read=True) as cur:
            now = self._now(cur)
            cur.execute(q("SELECT rack_id, token, user_name, host, pid, ci_job, purpose, "
                          "acquired_at, expires_at FROM hil_leases"))
            leases = {r[0]: LeaseInfo(r[0], r[1], Holder(r[2], r[3], r[4], r[5], r[6]), r[7],
                                      r[8])
                      for r in cur.fetchall() if not self._lease_gone(r[3], r[4], r[8], now)}
            cur.execute(q("SELECT rack_id, failures, unhealthy_reason, updated_at FROM "
                          "hil_health"))
            health_rows = cur.fetchall()
            health = {r[0]: Health(r[0], r[1], r[2]) for r in health_rows}
            since = {r[0]: t for r in health_rows
                     if r[2] is not None and (t := _finite(r[3])) is not None}
            cur.execute(q("SELECT ticket, candidates, host, pid, since, heartbeat FROM "
                          "hil_waiters ORDER BY ticket"))
            waiters = [Waiter(int(r[0]), _candidates(r[1]) or [], r[2], r[3], _finite(r[4]))
                       for r in cur.fetchall()
                       if not self._waiter_gone(r[2], r[3], r[5], r[1], now)]
            cur.execute(q("SELECT rack_id, at, kind, step, ok, detail, host, pid FROM "
                          "hil_health_log ORDER BY seq DESC LIMIT ?"), (int(events),))
            log_rows = cur.fetchall()
        history = [HealthEvent(r[0], _finite(r[1]) or 0.0, r[2], r[3], bool(r[4]), r[5], r[6],
                               r[7]) for r in reversed(log_rows)]
        return RackView(now, leases, health, waiters, history, since)

    def lease_log(self) -> list[tuple[int, str, str, str, int | None, float]]:
        with self._tx(read=True) as cur:
            cur.execute(self._q("SELECT seq, rack_id, token, event, ticket, at FROM "
                                "hil_lease_log ORDER BY seq"))
            return [tuple(r) for r in cur.fetchall()]


_SQLITE_FIX = ("set HIL_STATE_DIR to a writable local directory (or use postgresql:// in "
               "the rack file for a shared rack)")


class SqliteLeaseStore(LeaseStore):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        check_store_path(path, "lease database", _SQLITE_FIX, LeaseError)
        self._local = threading.local()
        self._create_tables("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
                            "name IN ({})", "INTEGER PRIMARY KEY AUTOINCREMENT")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_sqlite(self.path, synchronous="NORMAL")
            # a damaged row must not make every read fail: undecodable text shows as U+FFFD
            conn.text_factory = lambda b: b.decode("utf-8", "replace")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self, *, read: bool = False) -> Iterator[sqlite3.Cursor]:
        try:
            conn = self._conn()
            cur = conn.cursor()
            # a read in WAL mode sees one snapshot without the write lock
            cur.execute("BEGIN" if read else "BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            message, hint = sqlite_problem(exc, self.path, "lease database", _SQLITE_FIX)
            raise LeaseError(message, hint=hint) from exc
        self._local.rings = set()
        try:
            yield cur
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # e.g. the disk filled up mid-transaction
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            message, hint = sqlite_problem(exc, self.path, "lease database", _SQLITE_FIX)
            raise LeaseError(message, hint=hint) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            rings, self._local.rings = self._local.rings, set()
        ring_sockets(self.path, rings)  # committed: the rung waiter sees the change

    def _ring(self, cur: Any, tickets: set[int]) -> None:
        self._local.rings |= tickets

    def _listen(self, ticket: int) -> Bell | None:
        return SocketBell.listen(self.path, ticket)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresLeaseStore(LeaseStore):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._local = threading.local()
        self._create_tables("SELECT COUNT(*) FROM information_schema.tables WHERE "
                            "table_schema = current_schema() AND table_name IN ({})",
                            "BIGSERIAL PRIMARY KEY")
        with self._tx(read=True) as cur:
            cur.execute("SELECT current_schema()")
            schema = str(cur.fetchone()[0])
        self._schema_key = hashlib.sha256(schema.encode()).hexdigest()[:12]

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            import psycopg

            try:
                conn = psycopg.connect(self.url, connect_timeout=10)
            except psycopg.OperationalError as exc:
                raise LeaseError(f"cannot connect to the lease database {redact_url(self.url)}: "
                                 f"{str(exc).strip().splitlines()[-1]}",
                                 hint="check the rack file's 'leases:' URL and that the "
                                 "server is reachable") from exc
            self._local.conn = conn
        return conn

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _now(self, cur: Any) -> float:
        cur.execute("SELECT extract(epoch from clock_timestamp())")
        return float(cur.fetchone()[0])

    @contextmanager
    def _tx(self, *, read: bool = False) -> Iterator[Any]:
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            if read:  # one snapshot for every SELECT of the read, as SQLite's WAL gives
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            else:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_KEY,))
            yield cur

    def _ring(self, cur: Any, tickets: set[int]) -> None:
        for ticket in sorted(tickets):  # NOTIFY is delivered when the transaction commits
            cur.execute("SELECT pg_notify(%s, '')", (self._channel(ticket),))

    def _listen(self, ticket: int) -> Bell | None:
        return _PgBell.listen(self._conn(), self._channel(ticket))

    def _channel(self, ticket: int) -> str:
        """The NOTIFY channel of queue place ``ticket``: channels are per database, so the
        name carries the schema the tables live in (two stores in one database)."""
        return f"hil_lease_{self._schema_key}_{int(ticket)}"

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _PgBell:
    """A waiter's bell for a PostgreSQL store: ``LISTEN`` on its ticket's channel, on the
    waiting thread's own connection."""

    def __init__(self, conn: Any, channel: str) -> None:
        self._conn = conn
        self._channel = channel

    @classmethod
    def listen(cls, conn: Any, channel: str) -> _PgBell | None:
        import psycopg

        try:
            with conn.transaction():
                conn.execute(f"LISTEN {channel}")
        except psycopg.Error as exc:
            log.debug("LISTEN %s failed, polling instead: %s", channel, exc)
            return None
        return cls(conn, channel)

    def wait(self, timeout: float) -> bool:
        import psycopg

        try:
            return any(True for _ in self._conn.notifies(timeout=max(0.0, timeout),
                                                         stop_after=1))
        except psycopg.Error:  # the connection broke: the next transaction says so
            return False

    def close(self) -> None:
        import psycopg

        try:
            with self._conn.transaction():
                self._conn.execute(f"UNLISTEN {self._channel}")
            for _ in self._conn.notifies(timeout=0):  # rings that came in meanwhile
                pass
        except psycopg.Error:
            pass


def open_store(url: str | Path) -> LeaseStore:
    """A lease store from a SQLite path (or ``sqlite:///path``) or a ``postgresql://`` URL."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresLeaseStore(text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite://"):]
    elif "://" in text:
        raise ConfigError(f"unsupported lease database URL '{text}'",
                          hint="use a file path, sqlite:///path or postgresql://...")
    return SqliteLeaseStore(Path(text))


@dataclass
class Lease:
    """A held lease, renewed by a heartbeat thread until released (context manager)."""

    store: LeaseStore
    info: LeaseInfo
    ttl: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    lost: str | None = None
    borrowed: bool = False  # held by the calling job (HIL_LEASE): not ours to release

    @property
    def rack_id(self) -> str:
        return self.info.rack_id

    @property
    def token(self) -> str:
        return self.info.token

    def start_heartbeat(self) -> None:
        def beat() -> None:
            try:
                while not self._stop.wait(max(self.ttl / 3, 0.2)):
                    try:
                        self.store.renew(self.token, self.ttl)
                    except LeaseError as exc:
                        self.lost = str(exc)
                        log.error("lease on %s lost: %s", self.rack_id, exc)
                        return
                    except Exception as exc:  # noqa: BLE001 - a database hiccup: next beat
                        log.warning("lease heartbeat for %s failed: %s", self.rack_id, exc)
            finally:
                self.store.close()  # this thread's own connection

        self._thread = threading.Thread(target=beat, name=f"lease-{self.rack_id}",
                                        daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self.lost is None and not self.borrowed:
            try:
                self.store.release(self.token)
            except LeaseError:
                pass

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def wait_message(what: str, ids: Sequence[str], position: int, total: int) -> str:
    """The line a command prints while it waits in the lease queue."""
    return (f"hil: waiting for a free {what} ({', '.join(ids)}): place {position} of {total} "
            "in the queue")


def unhealthy_reasons(store: LeaseStore, ids: Sequence[str]) -> dict[str, str]:
    """Rack id -> why it is out of service, for those of ``ids`` that are unhealthy."""
    health = store.health()
    return {i: str(health[i].unhealthy_reason) for i in ids
            if i in health and health[i].unhealthy_reason is not None}


def refuse_if_all_unhealthy(store: LeaseStore, candidates: Sequence[str]) -> None:
    """Raise ``BoardsUnhealthy`` naming each board and its reason when every candidate is
    out of service: no lease would ever come (a busy but healthy board is waited for)."""
    sick = unhealthy_reasons(store, candidates)
    if not candidates or len(sick) < len(set(candidates)):
        return
    raise boards_unhealthy(sick)


def boards_unhealthy(sick: dict[str, str]) -> BoardsUnhealthy:
    """The error naming each out-of-service board (rack id -> reason) and the fix."""
    listed = "; ".join(f"{i}: {reason}" for i, reason in sick.items())
    first = next(iter(sick))
    return BoardsUnhealthy(
        f"every rack board that could serve is out of service (unhealthy): {listed}",
        hint=f"'hil rack check {first}' re-checks a board and returns it when it passes; "
        f"'hil rack reset {first}' forces it back; 'hil rack status' shows the history")


def hold(store: LeaseStore, candidates: Sequence[str], *, ttl: float = 60.0,
         wait: float | None = 0.0, purpose: str | None = None,
         on_wait: Callable[[int, int], None] | None = None) -> Lease:
    """Acquire a lease and keep it alive with a heartbeat until ``release()``.

    When ``HIL_LEASE`` names a lease the calling job already holds (a token from
    ``hil rack lease``) on one of ``candidates``, that lease is used instead: nothing is
    acquired, and releasing it is left to its owner."""
    LEASE_TTL_ANY.check(ttl, "lease ttl")
    LEASE_WAIT.check(wait, "lease wait")
    token = current().lease_token
    if token:
        held = next((i for i in store.leases().values() if i.token == token), None)
        if held is None:
            raise LeaseError("HIL_LEASE names no current lease (released, expired, or from "
                             "another rack)", hint="unset HIL_LEASE or lease again with "
                             "hil rack lease")
        if held.rack_id not in candidates:
            raise LeaseError(f"HIL_LEASE holds rack entry {held.rack_id}, which is not one of "
                             f"{', '.join(candidates)}",
                             hint="lease a matching board, or unset HIL_LEASE")
        return Lease(store, held, ttl, borrowed=True)
    refuse_if_all_unhealthy(store, candidates)
    info = store.acquire(candidates, holder=Holder.current(purpose), ttl=ttl, wait=wait,
                         on_wait=on_wait)
    lease = Lease(store, info, ttl)
    lease.start_heartbeat()
    return lease
