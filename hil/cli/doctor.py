"""hil doctor: every external tool hil may run, found or missing, with the install hint."""

from __future__ import annotations

import argparse
import json

from hil.toolchain import doctor
from hil.ui import table

NAME = "doctor"
HELP = "list the tools hil needs: found or missing, version, how to install"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    rows = doctor()
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
    else:
        table(["tool", "status", "version", "used for", "install"],
              [[r.tool, "ok" if r.path else "MISSING", r.version or "-", r.purpose,
                "-" if r.path else r.hint] for r in rows])
    missing = [r for r in rows if not r.path]
    if missing and not args.json:
        print(f"\n{len(missing)} tool(s) missing; 'make demo' installs all of them.")
    return 0
