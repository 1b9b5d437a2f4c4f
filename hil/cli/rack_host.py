"""hil rack-host: keep this host's virtual boards powered for runners on other hosts."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from hil.cli import _args
from hil.rack.host import RackHost, host_entries
from hil.rack.inventory import load_rack

NAME = "rack-host"
HELP = "serve this host's virtual boards (console pty + QEMU) to runners on other hosts"
DESCRIPTION = """\
Run on a rack host next to `pyocd server` and `ser2net`. For each virtual rack entry (probe
hilsim:<name>, emulator: qemu; default: every virtual entry of the rack file) it keeps the
board powered: a console pseudo-terminal symlinked at <console dir>/<id> (default:
<state dir>/consoles) for ser2net to serve over RFC 2217, and the board's QEMU booted from
the simulated flash, restarted whenever the simulated probe resets the core or the flash
changes. Runs until SIGTERM, SIGHUP or Ctrl-C (SIGINT), then stops every QEMU and exits
143, 129 or 130.

With --idle-checks [SECONDS] it also health-checks its boards (see `hil rack check`): a
board nobody leases is checked when its last check is SECONDS old (default 3600), and an
unhealthy board is re-checked once its cool-down (the rack file's health.recheck_after) is
over, and returns to service when it passes. A check leases the board, so no job gets it
mid-check; it goes through the board's console pty as a runner would.

Real boards need no host process: serve each probe with `pyocd server --probe ID --port P`
and each console with ser2net. See docs/rack-across-hosts.md.

example (rack host):
  HIL_STATE_DIR=/srv/hil hil rack-host f4-a &
  HIL_STATE_DIR=/srv/hil pyocd server --probe hilsim:f4-a --port 5555 &
  ser2net -n -c ser2net.yaml   # connector: serialdev,/srv/hil/consoles/f4-a,115200n81,local
  hil rack-host --idle-checks 1800   # and health-check idle boards every half hour
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="*", metavar="ID",
                   help="rack entry ids to host (default: every virtual entry)")
    p.add_argument("--rack", type=Path, default=None, help="rack file (default: HIL_RACK "
                   "or rack.yaml in the project)")
    p.add_argument("--console-dir", type=Path, default=None,
                   help="where the console symlinks go (default: <state dir>/consoles)")
    p.add_argument("--idle-checks", type=_args.idle_checks, nargs="?", const=3600.0,
                   default=None, metavar="SECONDS",
                   help="health-check idle boards every SECONDS (default 3600) and re-check "
                   "unhealthy ones after their cool-down (health.recheck_after)")



def run(args: argparse.Namespace) -> int:
    rack = load_rack(args.rack, required=args.rack is not None)
    entries = host_entries(rack, args.ids)
    # Runs until a signal: the CLI turns SIGTERM, SIGINT and SIGHUP into Cancelled, which
    # leaves the with block (every QEMU killed, consoles removed) and exits 143, 130, 129.
    try:
        with RackHost(entries, console_dir=args.console_dir) as host:
            for board in host.boards:
                print(f"hil rack-host: {board.entry.id} ({board.board.name}, probe "
                      f"{board.entry.probe}): console {board.console_path}", file=sys.stderr,
                      flush=True)
            if args.idle_checks is None:
                host.serve(threading.Event())
            else:
                _serve_with_checks(rack, host, args.idle_checks)
    finally:
        print("hil rack-host: stopped", file=sys.stderr)
    return 0


def _serve_with_checks(rack, host: RackHost, every: float) -> None:
    """Serve the boards (main thread: QEMU dies with the thread that spawned it) while a
    thread runs the idle checks; on the way out (a signal) the check in progress stops,
    releasing its lease, before the boards go down."""
    from hil.rack.check import IdleChecks

    def report(text: str) -> None:
        print(f"hil rack-host: {text}", file=sys.stderr, flush=True)

    checks = IdleChecks(rack, [b.entry for b in host.boards], every=every,
                        consoles={b.entry.id: b.console_path for b in host.boards},
                        report=report)
    thread = threading.Thread(target=checks.run, name="idle checks", daemon=True)
    report(f"idle checks every {every:g} s; unhealthy boards re-checked after "
           f"{rack.health.recheck_after:g} s")
    thread.start()
    try:
        host.serve(threading.Event())
    finally:
        checks.stop.set()  # a check stops at its next step and releases its lease
        thread.join(timeout=30.0)

