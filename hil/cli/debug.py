"""hil debug: start an image halted at reset where hil test would run it, and hand it to gdb."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from hil.app import load_app
from hil.boards import Board, load_board
from hil.cli import _args
from hil.errors import Cancelled, UsageError
from hil.executors import ON_CHOICES, Choice, choose_executor, make_executor
from hil.flash.probe_id import ProbeId
from hil.foreign import app_name, foreign_image, record_foreign, to_image
from hil.image import Image
from hil.paths import state_dir
from hil.settings import current

NAME = "debug"
HELP = "start an image halted at reset (hardware if present, else QEMU) for gdb"
DESCRIPTION = """\
Build APP (default: shell) or take --image / --build-dir, start it where 'hil test' would
(real hardware of the rack when present, else a virtual board of the rack, else the board's
plain QEMU machine; --on chooses), halted at its reset vector, and print the gdb-multiarch
command line that attaches to it:

  QEMU or a virtual board  QEMU's gdbstub on a loopback port (hil binds it and hands it to
                           QEMU, so no other process can take it); QEMU starts with -S
  hardware                 'pyocd gdbserver' on the rack entry's probe (or --probe), a
                           child process on a loopback port; the gdb command resets and
                           halts the core ('monitor reset halt')

The board's console is shown here (typed lines go to the board when this is a terminal)
and kept in HIL_STATE_DIR/runs/. The session lasts until Ctrl-C (or --timeout SECONDS);
then QEMU or the gdbserver is stopped and a rack board's lease released. A rack board is
leased for the whole session, as 'hil test' leases it.

An image without an ELF (a .hex or .bin) still starts; gdb then has no symbols.

examples:
  hil debug --board nucleo-f4                      # the shell example, in QEMU or on a board
  hil debug --board nucleo-f4 blinky --on qemu
  hil debug --board hifive1-revb --image build/hifive1-revb/shell/firmware.elf
  hil debug --board nucleo-f4 --build-dir ../zephyr-app/build
  hil debug --board nucleo-f4 --probe stlink:066DFF48 myapp   # a probe outside the rack

then, in another terminal, the printed command, e.g.:
  gdb-multiarch -q build/nucleo-f4/shell/firmware.elf -ex 'target remote 127.0.0.1:PORT'
  (gdb) break main
  (gdb) continue
"""
EPILOG = """\
exit codes:
   0  the session ended (Ctrl-C or --timeout)
   1  the firmware locked the emulator up (the decoded crash is printed)
   2  usage or configuration error      3  the emulator or gdbserver failed
   4  hardware required, not present    5  build failed   10-14  flashing errors
  20  timed out waiting for a lease
 130  Ctrl-C before the session began (while building, leasing, flashing)
 143, 129  cancelled by SIGTERM, SIGHUP
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", nargs="?", default=None, metavar="APP",
                   help="app directory or example name (default: shell)")
    p.add_argument("--board", "-b", required=True, help="board name or alias")
    p.add_argument("--image", type=Path, default=None,
                   help="debug this .elf (or .hex/.bin, without symbols) instead of building")
    p.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                   help="debug the firmware of this Zephyr, PlatformIO, CMake or Make build "
                   "directory")
    p.add_argument("--on", choices=ON_CHOICES, default=None,
                   help="hardware, qemu, or auto: hardware if present, else QEMU (default: "
                   "the project's test.on, else auto)")
    p.add_argument("--require-hardware", action="store_true",
                   help="never fall back to QEMU (exit 4 when the board is not present)")
    p.add_argument("--probe", default=None, metavar="ID",
                   help="debug on this probe (stlink:SERIAL, hilsim:NAME, ...): its rack "
                   "entry when the rack has one, else the bare probe (flashed, then served "
                   "by pyocd gdbserver; no console)")
    p.add_argument("--toolchain", "-t", default=None,
                   help="toolchain for building APP (default: the project's first)")
    p.add_argument("--timeout", type=_args.timeout, default=None, metavar="SECONDS",
                   help="end the session after this long (default: at Ctrl-C)")


def run(args: argparse.Namespace) -> int:
    from hil.debug import HALT

    if (args.image is not None or args.build_dir is not None) and args.app is not None:
        given = "--build-dir" if args.build_dir is not None else "--image"
        raise UsageError(f"give either APP or {given}, not both")
    if args.probe and (args.on or args.require_hardware):
        raise UsageError("--probe names where to run: leave out --on and --require-hardware")
    board = load_board(args.board)
    probe = _probe(args.probe)
    # where it runs is decided and said before anything is built, as in hil test
    choice = _probe_choice(board, probe) if probe is not None else \
        choose_executor(board, args.on or current().test_on, args.require_hardware)
    if choice is not None:
        print(f"hil: {choice.describe(board)}", file=sys.stderr, flush=True)
    work_dir = state_dir() / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-debug"
    image, source_root = _image(args, board, work_dir)
    dirs = _source_dirs(source_root)
    serving = [False]  # Ctrl-C before the session began is a cancel (exit 130), after not
    try:
        if choice is None:
            assert probe is not None
            _debug_bare_probe(board, probe, image, work_dir, args.timeout, serving, dirs)
            return 0
        executor = make_executor(board, choice, work_dir=work_dir, debug=HALT)
        with executor:
            print(f"hil: starting {image.elf or image.hex} halted at reset",
                  file=sys.stderr, flush=True)
            console = executor.start(image)
            access = replace(executor.debug_access(), source_dirs=dirs)
            print(access.describe(), file=sys.stderr)
            print(f"hil: on {executor.description}; its console follows (transcript "
                  f"{console.transcript_path}); {_until(args.timeout)}", file=sys.stderr,
                  flush=True)
            from hil.debug.session import serve

            serving[0] = True
            serve(console, seconds=args.timeout)
    except Cancelled as exc:
        if exc.signum != signal.SIGINT or not serving[0]:
            raise
        print("hil: debug session ended (Ctrl-C)", file=sys.stderr)
        return 0
    print("hil: debug session ended (--timeout)", file=sys.stderr)
    return 0


def _until(seconds: float | None) -> str:
    return "Ctrl-C ends the session" if seconds is None else \
        f"the session ends in {seconds:g} s (--timeout) or at Ctrl-C"


def _image(args: argparse.Namespace, board: Board, work_dir: Path) -> tuple[Image, Path | None]:
    """The image as hil run takes it, and the source root of an app hil built."""
    foreign = foreign_image(board, args.image, args.build_dir)
    if foreign is not None:
        image = to_image(board, foreign, work_dir / "image")
        record_foreign(board, foreign, image, app_name(foreign, image))
        return image, None
    from hil.build import _source_root, build

    app = load_app(args.app or "shell")
    toolchain = args.toolchain or current().toolchains[0]
    print(f"hil: building {app.name} for {board.name} ({toolchain})", file=sys.stderr,
          flush=True)
    image = Image.from_build(build(board, app, toolchain=toolchain))
    return image, _source_root(app)


def _source_dirs(source_root: Path | None) -> tuple[Path, ...]:
    from hil.debug import source_dirs

    return source_dirs(source_root.parent) if source_root is not None else source_dirs()


def _probe(text: str | None) -> ProbeId | None:
    if not text:
        return None
    from hil.errors import ConfigError

    try:
        return ProbeId.parse(text)
    except ConfigError as exc:
        raise UsageError(f"--probe {text}: {exc.message}", hint=exc.hint) from None


def _probe_choice(board: Board, probe: ProbeId) -> Choice | None:
    """The rack entry of ``probe`` as a choice (leased like hil test's), or None when the
    rack has none."""
    from hil.rack.inventory import load_rack

    rack = load_rack()
    entries = [e for e in rack.entries if e.probe.matches(probe)]
    if not entries:
        return None
    entry = entries[0]
    if entry.board != board.name:
        raise UsageError(f"--probe {probe} is rack entry {entry.id} in {rack.path}, a "
                         f"{entry.board}, not a {board.name}",
                         hint=f"use --board {entry.board}, or another probe")
    reason = f"--probe {probe}: rack entry {entry.id}"
    if entry.is_virtual:
        return Choice("qemu", reason, entries=(entry,))
    return Choice("hardware", reason, entry, entries=(entry,))


def _debug_bare_probe(board: Board, probe: ProbeId, image: Image, work_dir: Path,
                      seconds: float | None, serving: list[bool],
                      dirs: tuple[Path, ...]) -> None:
    """A probe outside the rack: flash through it, then serve it with pyocd gdbserver."""
    from hil.debug import GdbAccess, hold
    from hil.debug.gdbserver import PyOCDGdbServer
    from hil.flash import flash_and_record, make_flasher

    print(f"hil: {board.name}: probe {probe} (not in the rack: no lease, no console)",
          file=sys.stderr, flush=True)
    print(f"hil: flashing {image.hex} through {probe}", file=sys.stderr, flush=True)
    flash_and_record(make_flasher(board, probe), image.hex, reset=True)
    print(f"hil: starting pyocd gdbserver on {probe}", file=sys.stderr, flush=True)
    with PyOCDGdbServer(board, probe, log_path=work_dir / "gdbserver.log") as server:
        assert server.port is not None
        access = GdbAccess("127.0.0.1", server.port, image.elf, "pyocd gdbserver",
                           arch=board.arch, source_dirs=dirs,
                           after_connect=("monitor reset halt",))
        print(access.describe(), file=sys.stderr)
        print(f"hil: {_until(seconds)}", file=sys.stderr, flush=True)
        serving[0] = True
        hold(seconds)
    print("hil: debug session ended: gdbserver stopped", file=sys.stderr)
