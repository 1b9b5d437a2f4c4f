"""hil rack check, and the health columns of hil rack status (a part of hil.cli.rack)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from hil.cli import _args
from hil.errors import UsageError
from hil.rack.inventory import Rack
from hil.rack.leases import LeaseStore
from hil.rack.snapshot import clean as _short
from hil.rack.snapshot import local_time as _when
from hil.ui import table

CHECK_HELP = "health-check boards: flash the golden image and run the smoke test"
CHECK_DESCRIPTION = """\
For each board (default: every board of the rack; --due: only the re-checks that are due)
lease it, flash its golden image through the real flasher (a virtual board: its simulated
probe, then QEMU), run the smoke exchange on its console and record the result in the
board's health history. A passing check returns an unhealthy board to service; a failing
one takes a healthy board out of service, or keeps an unhealthy one out with the reason
added. The golden image and the smoke exchange come from the rack file's health: key
(default: hil's shell example, built once per board type, and its ping -> pong).

A board leased by a job is skipped with a message (--wait SECONDS waits for it first), and
so is a free board a queued job is about to get. Exit status: 0 when every checked board
passed, 3 when one failed, 20 when a board named on the command line was skipped, 2, 5 or
6 when the golden image could not be had (rack file, build, toolchain).

examples:
  hil rack check                  # every board
  hil rack check f4-a f4-b --json
  hil rack check --due            # from a cron job or a systemd timer, e.g. every 5 minutes
"""


def add_check_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help=CHECK_HELP, description=CHECK_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ids", nargs="*", metavar="ID", help="rack entry ids (default: all)")
    p.add_argument("--due", action="store_true",
                   help="only unhealthy boards whose cool-down (health.recheck_after) is "
                   "over")
    p.add_argument("--wait", type=_args.wait, default=0.0,
                   help="seconds to wait for a leased board (default 0: skip it; 'forever' "
                   "waits without end)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def run_check(rack: Rack, store: LeaseStore, args: argparse.Namespace) -> int:
    from hil.rack.check import HealthChecker, due_checks, exit_code

    entries = []
    for rack_id in args.ids:
        entry = rack.entry(rack_id)
        if entry is None:
            raise UsageError(f"no rack entry '{rack_id}' in {rack.path or 'the rack'}",
                             hint="'hil rack status' lists the entries")
        entries.append(entry)
    entries = entries or list(rack.entries)
    if args.due:
        entries = [d.entry for d in due_checks(rack, store, entries)]
    if not entries:
        print("hil rack check: no board to check" + (" (no re-check is due)" if args.due
                                                     else ""), file=sys.stderr)
        if args.json:
            print("[]")
        return 0

    def say(rack_id: str, text: str) -> None:
        print(f"hil rack check: {rack_id}: {text}", file=sys.stderr, flush=True)

    checker = HealthChecker(rack, store, say=say)
    results = []
    for i, entry in enumerate(entries, 1):
        say(entry.id, f"checking ({i} of {len(entries)}, board {entry.board})")
        result = checker.check(entry, wait=math.inf if args.wait is None else args.wait)
        results.append(result)
        say(entry.id, f"{result.status.upper()} in {result.seconds:.1f} s: {result.detail}")
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        table(["id", "board", "check", "seconds", "health now", "detail"],
              [[r.rack_id, r.board, r.status.upper() if r.status != "passed" else "passed",
                f"{r.seconds:.1f}", _short(r.health or "-", 60), _short(r.detail, 80)]
               for r in results])
        for r in results:
            if r.status == "failed" and r.transcript:
                said = " | ".join(_short(line, 60) for line in r.last_lines[-3:])
                print(f"{r.rack_id}: console transcript {r.transcript}" + (
                    f" (last lines: {said})" if said else ""))
    for r in results:  # in full, with the hint (the table has the first line)
        if r.status == "error" and r.error is not None:
            print(f"hil rack check: {r.rack_id}: error: {r.error}", file=sys.stderr)
    return exit_code(results, named=bool(args.ids) and not args.due)


# ---------------------------------------------------------------- status columns

def health_columns(rack: Rack, store: LeaseStore, rack_id: str,
                   since: dict[str, float]) -> tuple[list[str], dict[str, object]]:
    """For ``hil rack status``: the cells "last check" and "recoveries" (the last ladder
    steps, newest first), and the JSON keys last_check, recoveries (oldest first), history,
    recheck_at and recheck_in of one board (the rack page's ``health_json``)."""
    from hil.rack.snapshot import RECOVERIES, health_json

    events = store.health_log(rack_id, limit=200)
    checks = [e for e in events if e.kind == "check"]
    recoveries = [e for e in events if e.kind == "recovery"][-RECOVERIES:]
    last = checks[-1] if checks else None
    cell_check = "-" if last is None else \
        f"{_when(last.at)} {'ok' if last.ok else 'FAILED'}"
    # newest first, as the rack page lists them: the step that brought the board back
    # leads, so the width cut cannot hide it
    cell_rec = ", ".join(f"{e.step or '?'} {'ok' if e.ok else 'failed'}"
                         for e in reversed(recoveries)) or "-"
    return [cell_check, _short(cell_rec, 60)], health_json(rack, rack_id, events,
                                                           since.get(rack_id), time.time())
