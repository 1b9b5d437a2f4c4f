"""hil probes: list connected debug probes (and simulated ones) with their rack entries."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hil.flash.probes import list_probes
from hil.rack.inventory import load_rack
from hil.ui import table

NAME = "probes"
HELP = "list connected debug probes: unique id, vendor, product, board, rack entry"
DESCRIPTION = """\
List the debug probes pyOCD sees (ST-LINK, CMSIS-DAP, J-Link on USB) and the simulated
probes (hilsim:<name>: rack entries and simulated flashes under HIL_STATE_DIR), with the board
each reports and the rack entry that names it, so rack.yaml can be written from the output.
OpenOCD-only probes (the HiFive1 Rev B's J-Link OB used through OpenOCD) are listed by
pyOCD only when its J-Link support is installed.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rack", type=Path, default=None, help="rack file (default: HIL_RACK or "
                   "rack.yaml)")
    p.add_argument("--json", action="store_true", help="print one JSON object per probe")


def run(args: argparse.Namespace) -> int:
    rack = load_rack(args.rack)
    probes = list_probes(rack)
    if args.json:
        for probe in probes:
            print(json.dumps(probe.as_dict(), sort_keys=True))
        return 0
    if not probes:
        print("no probes found")
        return 0
    table(["UNIQUE ID", "VENDOR", "PRODUCT", "BOARD", "RACK ENTRY"],
          [(p.unique_id, p.vendor, p.product, p.board or "-", p.rack_entry or "-")
           for p in probes])
    return 0
