"""hil build: cross-compile apps for boards into ELF, HEX and BIN, and print their size."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hil.app import App, load_app, project_apps
from hil.boards import BoardCatalog
from hil.build import BuildRequest, BuildResult, build_many
from hil.cli import _args, _size
from hil.errors import UsageError
from hil.settings import current
from hil.toolchain import TOOLCHAINS
from hil.ui import bar, human_size, table

NAME = "build"
HELP = "cross-compile firmware for a board (ELF, HEX, BIN, size report)"
DESCRIPTION = """\
Cross-compile firmware apps for boards. An APP is a directory of C sources (with an
optional app.yaml), the name of one of the project's apps (`apps` in hil.toml, default
apps/*), or the name of an example shipped with hil (blinky, shell, selftest). Without APP,
every app of the project is built. The linker script is rendered from the board file;
outputs go to <build_dir>/<board>/<app>/ (GCC) or <build_dir>/<board>/<app>+clang/ (Clang):
firmware.elf/.hex/.bin/.map, firmware.ld and build.json with the hashes, flags, sources
and toolchain fingerprint.

Builds are cached by content in HIL_CACHE_DIR: deleting build/ and building again copies
the images from the cache without compiling.

examples:
  hil build --board nucleo-f4 shell
  hil build --board hifive1-revb --toolchain clang apps/hello
  hil build --board nucleo-f4 --all
  hil build --all --toolchain gcc --toolchain clang -j 4
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("apps", nargs="*", metavar="APP",
                   help="app directories, project app names or example names (default: "
                   "every app of the project)")
    p.add_argument("--board", "-b", action="append", default=[],
                   help="board name or alias (repeatable)")
    p.add_argument("--all", action="store_true",
                   help="every app of the project (for every board it supports, unless "
                   "--board is given)")
    p.add_argument("--toolchain", "-t", action="append", choices=TOOLCHAINS, default=[],
                   help="gcc or clang (default: the project's toolchains); repeat to build "
                   "with both")
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
    _size.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    catalog = BoardCatalog()
    if not args.all and not args.board:
        raise UsageError("no board given", hint="pass --board NAME (see 'hil boards'), "
                         "or --all for every board")
    boards = [catalog.get(b) for b in args.board] if args.board else catalog.all()
    apps = [load_app(a) for a in args.apps] if args.apps else _project_apps()
    toolchains = args.toolchain or list(current().toolchains)
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
    too_big = _size.guard(args, results)
    if too_big is not None:
        raise too_big
    return 0


def _project_apps() -> list[App]:
    apps = project_apps()
    if not apps:
        settings = current()
        where = settings.project_file or f"{settings.root} (no project file)"
        raise UsageError(f"the project has no apps: nothing matches apps = "
                         f"{list(settings.apps)} in {where}",
                         hint="name an APP (a directory, or an example such as 'blinky'), or "
                         "add an app directory with an app.yaml ('hil init' makes apps/hello)")
    return apps


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
