"""hil build: cross-compile apps for boards into ELF, HEX and BIN, and print their size."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hil.app import App, example_apps, load_app
from hil.boards import BoardCatalog
from hil.build import BuildRequest, BuildResult, build_many
from hil.cli import _args
from hil.errors import UsageError
from hil.toolchain import TOOLCHAINS
from hil.ui import bar, human_size, table

NAME = "build"
HELP = "cross-compile firmware for a board (ELF, HEX, BIN, size report)"
DESCRIPTION = """\
Cross-compile firmware apps for boards. An APP is a directory of C sources (with an
optional app.yaml) or the name of an example in firmware_examples/. The linker script is
rendered from the board file; outputs go to build/<board>/<app>/ (GCC) or
build/<board>/<app>+clang/ (Clang): firmware.elf/.hex/.bin/.map, firmware.ld and
build.json with the hashes, flags, sources and toolchain fingerprint.

Builds are cached by content in HIL_CACHE_DIR: deleting build/ and building again copies
the images from the cache without compiling.

examples:
  hil build --board nucleo-f4 shell
  hil build --board hifive1-revb --toolchain clang firmware_examples/blinky
  hil build --all --toolchain gcc --toolchain clang -j 4
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("apps", nargs="*", metavar="APP",
                   help="app directories or example names (default: every example)")
    p.add_argument("--board", "-b", action="append", default=[],
                   help="board name or alias (repeatable)")
    p.add_argument("--all", action="store_true",
                   help="every example for every board it supports")
    p.add_argument("--toolchain", "-t", action="append", choices=TOOLCHAINS, default=[],
                   help="gcc (default) or clang; repeat to build with both")
    p.add_argument("-j", "--jobs", type=_args.jobs, default=None,
                   help="parallel compile jobs (default: number of CPUs)")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (only with one board, app and toolchain)")
    p.add_argument("--keep-going", "-k", action="store_true",
                   help="build the other images when one fails")
    p.add_argument("--check-reproducible", action="store_true",
                   help="build each image again in a fresh directory with an empty cache "
                   "and compare the HEX and BIN byte for byte")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per image on stdout (no table)")


def run(args: argparse.Namespace) -> int:
    catalog = BoardCatalog()
    if args.all:
        boards = [catalog.get(b) for b in args.board] if args.board else catalog.all()
        apps = [load_app(a) for a in args.apps] if args.apps else example_apps()
    else:
        if not args.board:
            raise UsageError("no board given", hint="pass --board NAME (see 'hil boards'), "
                             "or --all for every board")
        boards = [catalog.get(b) for b in args.board]
        apps = [load_app(a) for a in args.apps] if args.apps else [load_app("blinky")]
    toolchains = args.toolchain or ["gcc"]
    requests = [BuildRequest(b, a, tc) for b in boards for a in apps for tc in toolchains
                if _supports(a, b.name)]
    if args.out:
        if len(requests) != 1:
            raise UsageError("--out takes one board, one app and one toolchain",
                             hint="drop --out to use build/<board>/<app>/")
        requests = [BuildRequest(requests[0].board, requests[0].app, requests[0].toolchain,
                                 args.out.resolve())]
    if not requests:
        raise UsageError("nothing to build: no app supports the given boards")
    progress = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    results = build_many(requests, jobs=args.jobs, progress=progress,
                         keep_going=args.keep_going,
                         check_reproducible=args.check_reproducible)
    if args.json:
        for result in results:
            print(json.dumps(result.summary()))
    else:
        print_size_table(results)
    return 0


def _supports(app: App, board: str) -> bool:
    return not app.boards or board in app.boards


def print_size_table(results: list[BuildResult]) -> None:
    rows = []
    for r in results:
        for use in r.regions:
            rows.append([
                r.board.name, r.app.name, r.toolchain.label, use.name,
                f"{use.used:>7} / {human_size(use.length):>5}",
                f"{use.percent:5.1f}%", bar(use.used / use.length if use.length else 0),
            ])
    table(["board", "app", "toolchain", "region", "used / size", "use", ""], rows)
