"""hil run: start a board (hardware or QEMU) and attach this terminal to its console."""

from __future__ import annotations

import argparse
import os
import select
import sys
import time
from pathlib import Path

from hil.app import load_app
from hil.boards import load_board
from hil.crash import CrashError
from hil.errors import UsageError
from hil.executors import ON_CHOICES, select_executor
from hil.foreign import app_name, foreign_image, record_foreign, to_image
from hil.image import Image
from hil.paths import state_dir

NAME = "run"
HELP = "run an image on a board (hardware if present, else QEMU) and attach to its console"
DESCRIPTION = """\
Build APP (default: shell) or take --image, start it on the board (hardware when present,
otherwise QEMU; the terminal says which) and connect this terminal to the board's console.
Type to send; Ctrl-] exits. A firmware FAULT line or an emulator lockup is decoded to
function and file:line. The transcript is kept in HIL_STATE_DIR/runs/.

examples:
  hil run --board nucleo-f4
  hil run --board hifive1-revb --image build/hifive1-revb/shell/firmware.hex
  hil run --board nucleo-f4 --build-dir ../zephyr-app/build
"""
EXIT_KEY = b"\x1d"  # Ctrl-]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", nargs="?", default=None, metavar="APP",
                   help="app directory or example name (default: shell)")
    p.add_argument("--board", "-b", required=True, help="board name or alias")
    p.add_argument("--image", type=Path, default=None, help="run this .hex, .elf or .bin")
    p.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                   help="run the firmware of this Zephyr, PlatformIO, CMake or Make build "
                   "directory")
    p.add_argument("--on", choices=ON_CHOICES, default="auto")
    p.add_argument("--require-hardware", action="store_true")
    p.add_argument("--toolchain", "-t", default="gcc")


def run(args: argparse.Namespace) -> int:
    if (args.image is not None or args.build_dir is not None) and args.app is not None:
        given = "--build-dir" if args.build_dir is not None else "--image"
        raise UsageError(f"give either APP or {given}, not both")
    board = load_board(args.board)
    work_dir = state_dir() / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-run"
    # architecture, segments, vector table: checked before anything starts
    foreign = foreign_image(board, args.image, args.build_dir)
    if foreign is not None:
        image = to_image(board, foreign, work_dir / "image")
        record_foreign(board, foreign, image, app_name(foreign, image))
    else:
        from hil.build import build

        image = Image.from_build(build(board, load_app(args.app or "shell"),
                                       toolchain=args.toolchain)).copy_to(work_dir / "image")
    executor = select_executor(board, args.on, args.require_hardware, work_dir=work_dir)
    with executor:
        console = executor.start(image)
        print(f"hil: connected to {console.name}; Ctrl-] exits; transcript "
              f"{console.transcript_path}", file=sys.stderr, flush=True)
        attach(console)
    return 0


def attach(console) -> None:
    """Copy stdin to the console and the console to stdout until Ctrl-] or EOF."""
    stdin = sys.stdin.fileno()
    old = None
    if os.isatty(stdin):
        import termios
        import tty

        old = termios.tcgetattr(stdin)
        tty.setraw(stdin)
    try:
        while True:
            try:
                text = console.read_available(0.02)
            except CrashError as exc:
                text = ""
                _out("\r\n" + str(exc).replace("\n", "\r\n") + "\r\n")
            if text:
                _out(text.replace("\n", "\r\n") if old is not None else text)
            ready, _, _ = select.select([stdin], [], [], 0)
            if ready:
                data = os.read(stdin, 1024)
                if not data or EXIT_KEY in data:
                    data = data.split(EXIT_KEY, 1)[0]
                    if data:
                        console.write(data.replace(b"\r", b"\n") if old is not None else data)
                    _drain(console, raw=old is not None)
                    break
                console.write(data.replace(b"\r", b"\n") if old is not None else data)
    finally:
        if old is not None:
            import termios

            termios.tcsetattr(stdin, termios.TCSADRAIN, old)
        print(file=sys.stderr)


def _drain(console, *, raw: bool, idle: float = 0.3) -> None:
    """Show what the board still sends until it is quiet for ``idle`` seconds."""
    while True:
        try:
            text = console.read_available(idle)
        except CrashError as exc:
            text = "\n" + str(exc) + "\n"
        if not text:
            return
        _out(text.replace("\n", "\r\n") if raw else text)


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
