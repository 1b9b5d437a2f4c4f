"""hil rack scan [--write]: connected probes, their serial ports, rack entries for new ones."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hil.rack.inventory import Rack, default_rack_path, load_rack
from hil.ui import table

HELP = "list connected probes and their serial ports; print (or --write) rack entries for "\
    "the ones rack.yaml does not have"
DESCRIPTION = """\
List the debug probes pyOCD sees (as 'hil probes' does) with the serial ports whose USB serial
number is the probe's (an ST-LINK's virtual COM port, a CMSIS-DAP's CDC port), and print a
rack entry for each probe the rack file does not name yet: its id, the board pyOCD reports
(board: FIXME when it reports none hil knows), the probe's id and the serial port (its
/dev/serial/by-id link when there is one). Probes already in the rack file are listed as such.

--write adds the new entries at the end of the rack file's boards: list, keeping the file's
comments and layout, in one atomic write, and only when the result is still a valid rack
file; entries whose board is unknown are written commented out, to fill in by hand.

examples:
  hil rack scan                       # what is connected, and entries to paste
  hil rack scan --write               # add them to rack.yaml
  hil rack scan --rack lab/rack.yaml --write
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help=HELP, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true",
                   help="append the new entries to the rack file (atomically, validated)")
    p.add_argument("--rack", dest="scan_rack", type=Path, default=None,
                   help="rack file (default: HIL_RACK or rack.yaml in the project)")


def run(path: Path | None, *, write: bool) -> int:
    from hil.flash.probes import list_probes
    from hil.rack.scan import append_entries, entry_lines, scan, serial_ports

    target = path or default_rack_path()
    rack = load_rack(target) if target.exists() else Rack(None, ())
    print("scanning probes and serial ports...", file=sys.stderr, flush=True)
    ports = serial_ports()
    found = scan(rack, list_probes(rack), ports)
    paired = {p.device for f in found for p in f.ports}
    others = [p for p in ports if p.serial_number and p.device not in paired]
    if others:  # a separate USB-serial adapter: its port is the user's to assign
        print("serial ports of no probe: " + ", ".join(
            f"{p.path} ({p.description or 'serial'} {p.serial_number})" for p in others),
            file=sys.stderr)
    if not found:
        print("no probes found (USB probes need their udev rules; 'hil probes' lists the same "
              "probes)")
        return 0
    table(["UNIQUE ID", "PRODUCT", "BOARD", "SERIAL PORT", "RACK ENTRY"],
          [(f.probe.unique_id, f.probe.product, f.probe.board or "-",
            ", ".join(p.device for p in f.ports) or "-",
            f.rack_entry or "new") for f in found])
    new = [f for f in found if f.proposal is not None]
    if not new:
        print(f"\nevery probe found is in {target} already")
        return 0
    if not write:
        print(f"\n# new rack entries: add them under boards: in {target}, or run "
              "'hil rack scan --write'")
        for f in new:
            print("\n".join(entry_lines(f)))
        return 0
    written = append_entries(target, found)
    ids = ", ".join(f.proposal["id"] for f in written if f.proposal)
    print(f"\nadded {len(written)} entr{'y' if len(written) == 1 else 'ies'} to {target}"
          + (f": {ids}" if ids else ""))
    unknown = [f for f in new if not f.board_known]
    if unknown:
        print(f"{len(unknown)} more written commented out (board: FIXME): pyOCD names no "
              "board hil knows for "
              + ", ".join(f.probe.unique_id for f in unknown)
              + "; set the board and remove the '# ' to use them")
    return 0
