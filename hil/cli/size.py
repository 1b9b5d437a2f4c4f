"""hil size: per-region use of the project's images, saved as a baseline or compared to one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hil.cli import _size
from hil.toolchain import TOOLCHAINS

NAME = "size"
HELP = "per-region use of the project's images; save or compare a size baseline"
DESCRIPTION = """\
Build APPs (default: every app of the project) for each --board (from the cache when
nothing changed) and print how much of each memory region every image uses. --save FILE
writes a baseline (board, app, toolchain, bytes used per region, and the size of every
function and object from the ELF symbol table) that `hil build`, `hil test` and `hil size`
compare against with --size-baseline FILE (or the project's [size] baseline): they print the
per-region delta and the symbols that grew most, and exit 5 when a region grew by more than
--size-threshold.

examples:
  hil size --board nucleo-f4 --save sizes.json
  hil size --board nucleo-f4 --size-baseline sizes.json --size-threshold 1K
  hil build --board nucleo-f4 --size-baseline sizes.json --size-threshold flash=2%,ram=256
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("apps", nargs="*", metavar="APP",
                   help="app directories, project app names or example names (default: "
                   "every app of the project)")
    p.add_argument("--board", "-b", action="append", default=[], required=True,
                   help="board name or alias (repeatable)")
    p.add_argument("--toolchain", "-t", action="append", choices=TOOLCHAINS, default=[],
                   help="gcc or clang (default: the project's toolchains); repeatable")
    p.add_argument("--save", type=Path, default=None, metavar="FILE",
                   help="write the images' footprints to FILE as a size baseline")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per image (regions and symbol sizes)")
    _size.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from hil import size
    from hil.app import load_app
    from hil.boards import BoardCatalog
    from hil.build import BuildRequest, build_many
    from hil.cli.build import _project_apps, _supports, print_size_table
    from hil.errors import UsageError
    from hil.settings import current

    catalog = BoardCatalog()
    boards = [catalog.get(b) for b in dict.fromkeys(args.board)]
    apps = [load_app(a) for a in args.apps] if args.apps else _project_apps()
    toolchains = args.toolchain or list(current().toolchains)
    requests = [BuildRequest(b, a, tc) for b in boards for a in apps for tc in toolchains
                if _supports(a, b.name)]
    if not requests:
        raise UsageError("nothing to measure: no app supports the given boards")
    if args.save is not None and not args.save.resolve().parent.is_dir():
        raise UsageError(f"--save {args.save}: directory {args.save.resolve().parent} does "
                         "not exist")
    progress = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    results = build_many(requests, progress=progress)
    footprints = [size.footprint_of(r) for r in results]
    if args.json:
        for f in footprints:
            print(json.dumps(f.as_dict()))
    else:
        print_size_table(results)
    if args.save is not None:
        size.save(args.save, footprints)
        print(f"hil: size baseline of {len(footprints)} image(s) written to {args.save}",
              file=sys.stderr)
    too_big = _size.guard(args, results)
    if too_big is not None:
        raise too_big
    return 0
