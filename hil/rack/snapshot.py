"""What the rack looks like now, as plain data: every board with its lease, health and
presence (``board_rows``: `hil rack status`), and the rack page's whole picture with the
queue per board type and the recent health history (``rack_snapshot``: `hil rack serve`).

Rows of the lease database are user data and may be damaged: every text is cleaned
(``clean``), every time checked (``json_time``), and a row hil cannot have written is shown
as a bad row with its fix (``bad_row``), never an exception.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from hil.rack.inventory import Rack, RackEntry
from hil.rack.leases import Health, HealthEvent, LeaseInfo, RackView, lease_problem

log = logging.getLogger(__name__)

HISTORY = 10  # health events per board on the rack page
RECOVERIES = 5  # recovery-ladder steps per board on the rack page
REASON_WIDTH = 1000  # an unhealthy reason keeps its history of distinct reasons


def clean(value: object, width: int = 60) -> str:
    """Text from the lease database, safe to print: no control characters, bounded length."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return text if len(text) <= width else text[:width - 3] + "..."


def local_time(t: object) -> str:
    """A time from the database as status tables print it (local time), ``-`` for none."""
    from datetime import datetime

    if t is None or t == 0:
        return "-"
    try:
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[arg-type]
    except (OverflowError, ValueError, OSError, TypeError):
        return f"invalid ({clean(t, 20)})"


def json_time(value: object) -> float | None:
    """A time from the database as JSON can carry it (NaN and infinities are not JSON)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def bad_row(rack_id: object, entry: RackEntry | None, lease: LeaseInfo | None,
            health: Health | None, now: float) -> str | None:
    """What is wrong with the database's rows for ``rack_id`` and how to clear it, or None."""
    why = None
    if entry is None:
        why = "not in the rack file"
    elif lease is not None and (problem := lease_problem(lease, now)):
        why = f"lease {problem}"
    elif health is not None and (isinstance(health.failures, bool)
                                 or not isinstance(health.failures, int)):
        why = f"failure count {clean(health.failures, 20)!r} is not a number"
    if why is None:
        return None
    return f"{why}; clear it with 'hil rack reset {clean(rack_id)}'"


@dataclass(frozen=True)
class BoardRow:
    """One board of the rack (or a database row for an id gone from the rack file)."""

    id: str
    entry: RackEntry | None
    lease: LeaseInfo | None
    health: Health | None
    present: bool | None  # its probe is connected; None: not looked at
    bad: str | None  # why its database rows are bad, and the fix

    @property
    def holder(self) -> str:
        """Who holds it, in one line: ``user@host pid N job J``, or ``-``."""
        if self.lease is None:
            return "-"
        who = self.lease.holder
        return clean(f"{who.user}@{who.host}" + (f" pid {who.pid}" if who.pid else "")
                     + (f" job {who.ci_job}" if who.ci_job else ""))

    @property
    def unhealthy_reason(self) -> str | None:
        h = self.health
        return self.bad or (clean(h.unhealthy_reason, REASON_WIDTH) if h and h.unhealthy_reason
                            else None)

    @property
    def state(self) -> str:
        """Its health in words, as `hil rack status` prints it."""
        h = self.health
        if self.bad:
            return f"BAD ROW: {self.bad}"
        if h and h.unhealthy_reason:
            return "UNHEALTHY: " + clean(h.unhealthy_reason, 200)
        return f"ok ({h.failures} recent failures)" if h and h.failures else "ok"

    def to_json(self, now: float) -> dict[str, Any]:
        """The object of `hil rack status --json`."""
        e, lease = self.entry, self.lease
        until = json_time(lease.expires_at) if lease else None
        return {"id": clean(self.id), "board": e.board if e else None,
                "probe": str(e.probe) if e else None, "probe_present": self.present,
                "console": e.console if e else None, "tags": list(e.tags) if e else [],
                "virtual": e.is_virtual if e else None,
                "lease": None if not lease else {
                    "user": clean(lease.holder.user), "host": clean(lease.holder.host),
                    "pid": lease.holder.pid if isinstance(lease.holder.pid, int)
                    else clean(lease.holder.pid),
                    "ci_job": None if lease.holder.ci_job is None
                    else clean(lease.holder.ci_job),
                    "since": json_time(lease.acquired_at), "until": until,
                    "expires_in": None if until is None else round(until - now, 1)},
                "healthy": self.unhealthy_reason is None,
                "unhealthy_reason": self.unhealthy_reason,
                "bad_row": self.bad}


def board_rows(rack: Rack, leases: dict[str, LeaseInfo], health: dict[str, Health],
               present: dict[str, bool | None] | None = None,
               now: float | None = None) -> list[BoardRow]:
    """Every rack entry in rack-file order, then the database's rows for ids no longer in
    the rack file (shown, so they can be cleared)."""
    now = time.time() if now is None else now
    present = present or {}
    known = [e.id for e in rack.entries]
    orphans = [k for k in {**leases, **health} if k not in known]
    rows = []
    for rack_id in known + orphans:
        e = rack.entry(rack_id) if isinstance(rack_id, str) else None
        lease, h = leases.get(rack_id), health.get(rack_id)
        rows.append(BoardRow(rack_id, e, lease, h, present.get(rack_id) if e else None,
                             bad_row(rack_id, e, lease, h, now)))
    return rows


def probe_presence(rack: Rack) -> dict[str, bool | None]:
    """Per rack entry: its probe is connected (an entry without a USB probe counts as
    present); every value None when the probes cannot be enumerated."""
    try:
        from hil.flash.probes import list_probes

        ids = {p.rack_entry for p in list_probes(rack)}
    except Exception as exc:  # noqa: BLE001 - probe enumeration is best effort here
        log.info("probe enumeration failed: %s", exc)  # presence stays unknown ('?')
        return {e.id: None for e in rack.entries}
    return {e.id: (e.id in ids or not e.probe.usb) for e in rack.entries}


# --------------------------------------------------------------------------- the rack page


def _event(ev: HealthEvent) -> dict[str, Any]:
    return {"at": json_time(ev.at), "kind": clean(ev.kind, 20),
            "step": None if ev.step is None else clean(ev.step, 60), "ok": bool(ev.ok),
            "detail": None if ev.detail is None else clean(ev.detail, 300),
            "host": clean(ev.host)}


def health_json(rack: Rack, rack_id: str, events: list[HealthEvent], since: float | None,
                now: float, *, history: int = HISTORY) -> dict[str, Any]:
    """A board's health history as `hil rack status --json` and the rack page show it: the
    last check, the recent recovery-ladder steps, the newest events, and when an unhealthy
    board is checked again (``since``: when it went out or last failed a check)."""
    events = [ev for ev in events if ev.rack_id == rack_id]
    checks = [ev for ev in events if ev.kind == "check"]
    entry = rack.entry(rack_id)
    recheck_at = None
    if entry is not None and since is not None:
        recheck_at = since + rack.health_for(entry).recheck_after
    return {"last_check": _event(checks[-1]) if checks else None,
            "recoveries": [_event(ev) for ev in events if ev.kind == "recovery"][-RECOVERIES:],
            "history": [_event(ev) for ev in events[-history:]],
            "recheck_at": recheck_at,
            "recheck_in": None if recheck_at is None else round(recheck_at - now, 1)}


def board_json(row: BoardRow, view: RackView, rack: Rack, *,
               history: int = HISTORY) -> dict[str, Any]:
    """A board as the rack page shows it: the status object, plus the holder's purpose and
    the failure count."""
    out = row.to_json(view.at)
    if row.lease is not None and out["lease"] is not None:
        purpose = row.lease.holder.purpose
        out["lease"]["purpose"] = None if purpose is None else clean(purpose)
    h = row.health
    out["failures"] = h.failures if h and isinstance(h.failures, int) \
        and not isinstance(h.failures, bool) else None
    out.update(health_json(rack, row.id, view.events, view.unhealthy_since.get(row.id),
                           view.at, history=history))
    return out


def queue_json(rack: Rack, view: RackView) -> list[dict[str, Any]]:
    """The lease queue per board type: how many wait, who, since when, in queue order;
    with how many boards of the type there are and how many are free now."""
    types: dict[str, dict[str, Any]] = {}
    for e in rack.entries:
        t = types.setdefault(e.board, {"board": e.board, "boards": 0, "free": 0,
                                       "waiting": 0, "waiters": []})
        t["boards"] += 1
        h = view.health.get(e.id)
        if e.id not in view.leases and not (h and h.unhealthy_reason):
            t["free"] += 1
    for position, w in enumerate(view.waiters, 1):
        wanted = {rack.entry(c).board for c in w.candidates  # type: ignore[union-attr]
                  if rack.entry(c) is not None} or {"(not in the rack file)"}
        for board in sorted(wanted):
            t = types.setdefault(board, {"board": board, "boards": 0, "free": 0,
                                         "waiting": 0, "waiters": []})
            t["waiting"] += 1
            t["waiters"].append({"position": position, "host": clean(w.host),
                                 "pid": w.pid if isinstance(w.pid, int) else clean(w.pid),
                                 "since": w.since,
                                 "candidates": [clean(c) for c in w.candidates]})
    return sorted(types.values(), key=lambda t: t["board"])


def rack_snapshot(rack: Rack, view: RackView) -> dict[str, Any]:
    """The rack page's data (``/api/rack``): every board, the queue per board type."""
    rows = board_rows(rack, view.leases, view.health, now=view.at)
    return {"at": view.at, "rack_file": str(rack.path) if rack.path else None,
            "boards": [board_json(r, view, rack) for r in rows],
            "queue": queue_json(rack, view), "waiting": len(view.waiters)}
