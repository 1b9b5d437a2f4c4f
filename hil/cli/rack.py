"""hil rack: lease, release and inspect the boards of the rack."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from hil.cli import _args, _rack_health
from hil.errors import UsageError
from hil.rack import lease_store, load_rack, matching_entries
from hil.rack.leases import Holder, wait_message
from hil.rack.snapshot import board_rows, probe_presence
from hil.rack.snapshot import clean as _clean
from hil.rack.snapshot import local_time as _when
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
  hil rack serve                 # the live rack page on http://127.0.0.1:8700/
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
    _add_serve_arguments(sub)


SERVE_DESCRIPTION = """\
Serve the live rack page: every board with its health (last check, recent recoveries), who
holds it (user, host, CI job, since, until), the lease queue per board type, and the last
test runs with their verdicts (hardware, virtual board or QEMU only) and links to their
transcripts. The page updates itself every second; the same data is JSON at /api/rack,
/api/runs, /api/boards/ID and /healthz. The page only reads: it never takes a lease.

It binds 127.0.0.1 by default. Another address is served only with a token (--token-file,
else HIL_RACK_TOKEN, else [rack_serve] token_file in hil.toml); with a token every request
needs it: 'Authorization: Bearer TOKEN', or open the page once as /?token=TOKEN (a cookie
keeps it). Plain HTTP: put a TLS proxy in front, or use an SSH tunnel, across networks you
do not trust. Runs until Ctrl-C or SIGTERM.

examples:
  hil rack serve                                   # http://127.0.0.1:8700/
  hil rack serve --port 0                          # any free port (printed)
  hil rack serve --host 0.0.0.0 --token-file /etc/hil/rack-token
  curl -H "Authorization: Bearer $(cat /etc/hil/rack-token)" http://rack-host:8700/api/rack
"""


def _add_serve_arguments(sub) -> None:
    serve = sub.add_parser("serve", help="serve the live rack page (HTML and JSON)",
                           description=SERVE_DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; a non-loopback address "
                       "needs a token)")
    serve.add_argument("--port", type=_args.listen_port, default=8700,
                       help="TCP port (default 8700; 0: any free port)")
    serve.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                       help="file holding the access token (default: HIL_RACK_TOKEN, else "
                       "[rack_serve] token_file in hil.toml)")



def _serve(rack, args: argparse.Namespace) -> int:
    """`hil rack serve`: refuse an unprotected non-loopback address before anything runs."""
    from hil.rack.web import check_bind, serve, token_for

    token, where = token_for(args.token_file)
    check_bind(args.host, token)

    started = []

    def ready(url: str) -> None:
        started.append(url)
        guard = f"token from {where}" if token else "loopback only, no token"
        print(f"hil rack serve: {url} ({guard}); rack file {rack.path or '(none)'}; "
              "Ctrl-C stops", file=sys.stderr, flush=True)

    with lease_store(rack) as store:
        try:
            serve(rack, store, host=args.host, port=args.port, token=token, on_ready=ready)
        finally:
            if started:
                print("hil rack serve: stopped", file=sys.stderr, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.rack_command == "scan":
        from hil.cli import _rack_scan

        return _rack_scan.run(args.scan_rack or args.rack, write=args.write)
    rack = load_rack(args.rack, required=args.rack is not None)
    action = args.rack_command
    if action == "serve":
        return _serve(rack, args)
    with lease_store(rack) as store:
        if action == "lease":
            entries = matching_entries(rack, args.board, args.tag)
            holder = Holder.current("hil rack lease")
            # This process ends at once (and often runs in a $(...) subshell), so the lease
            # is tied to no pid: it lasts until released or until its TTL runs out.
            holder = Holder(holder.user, holder.host, 0, holder.ci_job, holder.purpose)

            def waiting(position: int, total: int) -> None:
                print(wait_message(args.board, [e.id for e in entries], position, total),
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
    rows = board_rows(rack, store.leases(), store.health(),
                      None if args.no_probes else probe_presence(rack))
    since = store.unhealthy_since()
    now = time.time()
    lines, objs = [], []
    for r in rows:
        lease = r.lease
        health_cells, health_keys = _rack_health.health_columns(rack, store, r.id, since)
        objs.append({**r.to_json(now), **health_keys})
        lines.append([_clean(r.id), r.entry.board if r.entry else "-",
                      str(r.entry.probe) if r.entry else "-",
                      {True: "yes", False: "ABSENT", None: "?"}[r.present], r.holder,
                      _when(lease.acquired_at) if lease else "-",
                      _when(lease.expires_at) if lease else "-", r.state, *health_cells])
    if args.json:
        print(json.dumps(objs, indent=2))
        return 0
    table(["id", "board", "probe", "present", "leased by", "since", "until", "health",
           "last check", "recoveries"], lines)
    queued = store.queue_length()
    if queued:
        print(f"\n{queued} job(s) waiting for a board")
    return 0
