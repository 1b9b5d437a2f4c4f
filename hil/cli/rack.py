"""hil rack: lease, release and inspect the boards of the rack."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from datetime import datetime
from pathlib import Path

from hil.cli import _args, _rack_health
from hil.errors import UsageError
from hil.rack import lease_store, load_rack, matching_entries
from hil.rack.leases import Holder, lease_problem
from hil.ui import table

log = logging.getLogger(__name__)

NAME = "rack"
HELP = "lease, release and inspect the boards of the rack"
DESCRIPTION = """\
The rack file (rack.yaml; --rack PATH or HIL_RACK) lists the boards: their probe, console
and tags. Leases make sure one job at a time uses a board. `hil flash` and `hil test` lease
implicitly; these commands are for scripts and humans.

A lease taken with `hil rack lease` lasts until `hil rack release TOKEN` or until its TTL
(--ttl, default 3600 s) runs out; renew long jobs with `hil rack renew TOKEN`. Export the
token as HIL_LEASE so `hil flash` and `hil test` run under it instead of queueing behind it.

examples:
  export HIL_LEASE=$(hil rack lease --board nucleo-f4 --wait 600 --json | jq -r .lease)
  hil flash --board nucleo-f4 shell && hil test --board nucleo-f4
  hil rack status
  hil rack release "$HIL_LEASE"
  hil rack reset f4-a            # mark an unhealthy board healthy again (or clear a BAD ROW)
  hil rack power f4-a cycle      # switch a board's power (its rack entry's power: key)
  hil rack scan --write          # add entries for newly connected probes to rack.yaml
  hil rack check f4-a            # flash the golden image, run the smoke test, record it
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rack", type=Path, default=None, help="rack file (default: HIL_RACK or "
                   "rack.yaml in the project)")
    sub = p.add_subparsers(dest="rack_command", metavar="ACTION", required=True)
    lease = sub.add_parser("lease", help="lease a free board and print the lease token")
    lease.add_argument("--board", "-b", required=True, help="board name")
    lease.add_argument("--tag", action="append", default=[], help="required tag (repeatable)")
    lease.add_argument("--wait", type=_args.wait, default=0.0,
                       help="seconds to wait for a free board (default 0: fail at once; "
                       "'forever' waits without end)")
    lease.add_argument("--ttl", type=_args.ttl, default=3600.0,
                       help="seconds until the lease expires unless renewed (1 to 604800; "
                       "default 3600)")
    lease.add_argument("--json", action="store_true", help="print one JSON object")
    release = sub.add_parser("release", help="release a lease by its token")
    release.add_argument("token")
    renew = sub.add_parser("renew", help="extend a lease by its token")
    renew.add_argument("token")
    renew.add_argument("--ttl", type=_args.ttl, default=3600.0,
                       help="seconds from now until the lease expires (1 to 604800; default "
                       "3600)")
    status = sub.add_parser("status", help="every board: probe, lease holder, health, last "
                            "check, recoveries")
    status.add_argument("--json", action="store_true")
    status.add_argument("--no-probes", action="store_true",
                        help="do not enumerate probes (faster; presence shown as '?')")
    reset = sub.add_parser("reset", help="mark an unhealthy board healthy again; also removes "
                           "a lease row shown as BAD ROW, and forgets an id gone from the rack "
                           "file")
    reset.add_argument("rack_id")
    from hil.cli import _rack_power, _rack_scan

    _rack_power.add_parser(sub)
    _rack_scan.add_parser(sub)
    _rack_health.add_check_parser(sub)


def _when(t: object) -> str:
    if t is None or t == 0:
        return "-"
    try:
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[arg-type]
    except (OverflowError, ValueError, OSError, TypeError):
        return f"invalid ({_clean(t, 20)})"


def _clean(value: object, width: int = 60) -> str:
    """Text from the lease database, safe to print: no control characters, bounded length."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return text if len(text) <= width else text[:width - 3] + "..."


def _seconds(value: object) -> float | None:
    """A time from the database as JSON can carry it (NaN and infinities are not JSON)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def run(args: argparse.Namespace) -> int:
    if args.rack_command == "scan":
        from hil.cli import _rack_scan

        return _rack_scan.run(args.scan_rack or args.rack, write=args.write)
    rack = load_rack(args.rack, required=args.rack is not None)
    action = args.rack_command
    with lease_store(rack) as store:
        if action == "lease":
            entries = matching_entries(rack, args.board, args.tag)
            holder = Holder.current("hil rack lease")
            # This process ends at once (and often runs in a $(...) subshell), so the lease
            # is tied to no pid: it lasts until released or until its TTL runs out.
            holder = Holder(holder.user, holder.host, 0, holder.ci_job, holder.purpose)

            def waiting(position: int, total: int) -> None:
                print(f"waiting for a {args.board}: place {position} of {total} in the queue",
                      file=sys.stderr, flush=True)

            info = store.acquire([e.id for e in entries], holder=holder, ttl=args.ttl,
                                 wait=args.wait, on_wait=waiting)
            entry = rack.entry(info.rack_id)
            assert entry is not None
            if args.json:
                print(json.dumps({"lease": info.token, "board": entry.id,
                                  "board_name": entry.board, "probe": str(entry.probe),
                                  "console": entry.console, "expires_at": info.expires_at}))
            else:
                print(info.token)
                print(f"leased {entry.id} ({entry.board}, probe {entry.probe}) until "
                      f"{_when(info.expires_at)}", file=sys.stderr)
            return 0
        if action == "release":
            rack_id = store.release(args.token)
            print(f"released {rack_id}", file=sys.stderr)
            return 0
        if action == "renew":
            until = store.renew(args.token, args.ttl)
            print(f"renewed until {_when(until)}", file=sys.stderr)
            return 0
        if action == "power":
            from hil.cli import _rack_power

            return _rack_power.run(rack, store, args.rack_id, args.power_action,
                                   force=args.force)
        if action == "reset":
            gone = rack.entry(args.rack_id) is None
            if gone and args.rack_id not in {**store.leases(), **store.health()}:
                raise UsageError(f"no rack entry '{args.rack_id}' in {rack.path}",
                                 hint="'hil rack status' lists the entries")
            dropped = store.reset(args.rack_id, drop_lease=gone)
            if dropped:
                print(f"{args.rack_id}: lease removed ({dropped})", file=sys.stderr)
            print(f"{args.rack_id} {'forgotten' if gone else 'marked healthy'}",
                  file=sys.stderr)
            return 0
        if action == "check":
            return _rack_health.run_check(rack, store, args)
        return _status(rack, store, args)


def _status(rack, store, args) -> int:
    leases = store.leases()
    health = store.health()
    present: dict[str, bool | None] = {e.id: None for e in rack.entries}
    if not args.no_probes:
        try:
            from hil.flash.probes import list_probes

            ids = {p.rack_entry for p in list_probes(rack)}
            present = {e.id: (e.id in ids or not e.probe.usb)
                       for e in rack.entries}
        except Exception as exc:  # noqa: BLE001 - probe enumeration is best effort here
            log.info("probe enumeration failed: %s", exc)  # presence stays unknown ('?')
    rows, objs = [], []
    now = time.time()
    known = [e.id for e in rack.entries]
    # rows for rack ids no longer in the rack file: shown, so they can be cleared
    orphans = [k for k in {**leases, **health} if k not in known]
    since = store.unhealthy_since()
    for rack_id in known + orphans:
        e = rack.entry(rack_id) if isinstance(rack_id, str) else None
        lease = leases.get(rack_id)
        h = health.get(rack_id)
        bad = _bad_row(rack_id, e, lease, h, now)
        holder = "-"
        if lease:
            who = lease.holder
            holder = _clean(f"{who.user}@{who.host}" + (f" pid {who.pid}" if who.pid else "")
                            + (f" job {who.ci_job}" if who.ci_job else ""))
        if bad:
            state = f"BAD ROW: {bad}"
        elif h and h.unhealthy_reason:
            state = "UNHEALTHY: " + _clean(h.unhealthy_reason, 200)
        else:
            state = f"ok ({h.failures} recent failures)" if h and h.failures else "ok"
        p = present.get(rack_id) if e else None
        rows.append([_clean(rack_id), e.board if e else "-", str(e.probe) if e else "-",
                     {True: "yes", False: "ABSENT", None: "?"}[p], holder,
                     _when(lease.acquired_at) if lease else "-",
                     _when(lease.expires_at) if lease else "-", state])
        health_cells, health_keys = _rack_health.health_columns(rack, store, rack_id, since)
        rows[-1] += health_cells
        until = _seconds(lease.expires_at) if lease else None
        objs.append({"id": _clean(rack_id), "board": e.board if e else None,
                     "probe": str(e.probe) if e else None, "probe_present": p,
                     "console": e.console if e else None, "tags": list(e.tags) if e else [],
                     "virtual": e.is_virtual if e else None,
                     "lease": None if not lease else {
                         "user": _clean(lease.holder.user), "host": _clean(lease.holder.host),
                         "pid": lease.holder.pid if isinstance(lease.holder.pid, int)
                         else _clean(lease.holder.pid),
                         "ci_job": None if lease.holder.ci_job is None
                         else _clean(lease.holder.ci_job),
                         "since": _seconds(lease.acquired_at), "until": until,
                         "expires_in": None if until is None else round(until - now, 1)},
                     "healthy": not (bad or (h and h.unhealthy_reason)),
                     "unhealthy_reason": bad or (_clean(h.unhealthy_reason, 1000)
                                                 if h and h.unhealthy_reason else None),
                     "bad_row": bad, **health_keys})
    if args.json:
        print(json.dumps(objs, indent=2))
    else:
        table(["id", "board", "probe", "present", "leased by", "since", "until", "health",
               "last check", "recoveries"], rows)
        queued = store.queue_length()
        if queued:
            print(f"\n{queued} job(s) waiting for a board")
    return 0


def _bad_row(rack_id, entry, lease, health, now: float) -> str | None:
    """What is wrong with the database's rows for ``rack_id`` and how to clear it, or None."""
    why = None
    if entry is None:
        why = "not in the rack file"
    elif lease is not None and (problem := lease_problem(lease, now)):
        why = f"lease {problem}"
    elif health is not None and (isinstance(health.failures, bool)
                                 or not isinstance(health.failures, int)):
        why = f"failure count {_clean(health.failures, 20)!r} is not a number"
    if why is None:
        return None
    return f"{why}; clear it with 'hil rack reset {_clean(rack_id)}'"
