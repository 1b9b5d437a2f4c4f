"""hil rack: lease, release and inspect the boards of the rack."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from hil.cli import _args
from hil.errors import UsageError
from hil.rack import lease_store, load_rack, matching_entries
from hil.rack.leases import Holder
from hil.ui import table

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
  hil rack reset f4-a            # mark an unhealthy board healthy again
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
    status = sub.add_parser("status", help="every board: probe, lease holder, health")
    status.add_argument("--json", action="store_true")
    status.add_argument("--no-probes", action="store_true",
                        help="do not enumerate probes (faster; presence shown as '?')")
    reset = sub.add_parser("reset", help="mark an unhealthy board healthy again")
    reset.add_argument("rack_id")


def _when(t: float | None) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def run(args: argparse.Namespace) -> int:
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
                                  "board_name": entry.board, "probe": entry.probe,
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
        if action == "reset":
            if rack.entry(args.rack_id) is None:
                raise UsageError(f"no rack entry '{args.rack_id}' in {rack.path}",
                                 hint="'hil rack status' lists the entries")
            store.reset(args.rack_id)
            print(f"{args.rack_id} marked healthy", file=sys.stderr)
            return 0
        return _status(rack, store, args)


def _status(rack, store, args) -> int:
    leases = store.leases()
    health = store.health()
    present: dict[str, bool | None] = {e.id: None for e in rack.entries}
    if not args.no_probes:
        try:
            from hil.flash.probes import list_probes

            ids = {p.rack_entry for p in list_probes(rack)}
            present = {e.id: (e.id in ids or e.probe.startswith(("hilsim:", "remote:")))
                       for e in rack.entries}
        except Exception:  # probe enumeration is best effort in a status view
            pass
    rows, objs = [], []
    now = time.time()
    for e in rack.entries:
        lease = leases.get(e.id)
        h = health.get(e.id)
        holder = "-"
        if lease:
            who = lease.holder
            holder = f"{who.user}@{who.host}" + (f" pid {who.pid}" if who.pid else "") + (
                f" job {who.ci_job}" if who.ci_job else "")
        state = "UNHEALTHY: " + h.unhealthy_reason if h and h.unhealthy_reason else (
            f"ok ({h.failures} recent failures)" if h and h.failures else "ok")
        p = present[e.id]
        rows.append([e.id, e.board, e.probe, {True: "yes", False: "ABSENT", None: "?"}[p],
                     holder, _when(lease.acquired_at) if lease else "-",
                     _when(lease.expires_at) if lease else "-", state])
        objs.append({"id": e.id, "board": e.board, "probe": e.probe, "probe_present": p,
                     "console": e.console, "tags": list(e.tags), "virtual": e.is_virtual,
                     "lease": None if not lease else {
                         "user": lease.holder.user, "host": lease.holder.host,
                         "pid": lease.holder.pid, "ci_job": lease.holder.ci_job,
                         "since": lease.acquired_at, "until": lease.expires_at,
                         "expires_in": round(lease.expires_at - now, 1)},
                     "healthy": not (h and h.unhealthy_reason),
                     "unhealthy_reason": h.unhealthy_reason if h else None})
    if args.json:
        print(json.dumps(objs, indent=2))
    else:
        table(["id", "board", "probe", "present", "leased by", "since", "until", "health"],
              rows)
        queued = store.queue_length()
        if queued:
            print(f"\n{queued} job(s) waiting for a board")
    return 0
