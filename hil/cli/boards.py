"""hil boards: list the boards of the project and the built-in catalog, or show one."""

from __future__ import annotations

import argparse
import json

from hil.boards import BoardCatalog, board_dirs
from hil.ui import human_size, table

NAME = "boards"
HELP = "list known boards (the project's and the built-in ones), or show one board's memory map"
DESCRIPTION = """\
List the boards hil knows: the project's board directories first (`boards` in hil.toml,
default boards/, plus HIL_BOARDS_PATH), then the built-in catalog shipped with hil. A project
board with the name of a built-in one replaces it; the 'from' column says where each board
came from. A board file may start from another with 'extends: <board>'.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("board", nargs="?", help="show this board in detail")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    catalog = BoardCatalog()
    if args.board:
        b = catalog.get(args.board)
        if args.json:
            print(json.dumps(_board_dict(b), indent=2))
            return 0
        print(f"{b.name}: {b.description}")
        print(f"  file:     {b.path} ({b.origin})")
        if b.extends:
            print(f"  extends:  {b.extends}")
        print(f"  target:   {b.triple} ({b.cpu})")
        print(f"  console:  {b.console.driver} at 0x{b.console.base:08X}, {b.console.baud} baud")
        if b.console.pins:
            pins = b.console.pins
            af = f", AF {pins.af}" if pins.af is not None else ""
            print(f"            TX pin {pins.tx}, RX pin {pins.rx} of port 0x{pins.port:08X}{af}")
        print(f"  flash:    {b.flash.tool}")
        if b.qemu:
            print(f"  qemu:     {b.qemu.binary} -M {b.qemu.machine}")
        table(["region", "kind", "origin", "size", "sectors", "app start"], [
            [r.name, r.kind, f"0x{r.origin:08X}", human_size(r.length),
             ", ".join(f"{c}x{human_size(s)}" for s, c in r.sector_layout) or "-",
             f"0x{r.app_start:08X}" if r.app_start is not None else "-"]
            for r in b.regions])
        return 0
    boards = catalog.all()
    if args.json:
        print(json.dumps([_board_dict(b) for b in boards], indent=2))
        return 0
    table(["board", "aliases", "target", "flash via", "qemu", "from", "description"], [
        [b.name, ", ".join(b.aliases) or "-", b.triple, b.flash.tool,
         b.qemu.machine if b.qemu else "-", _origin(b), b.description] for b in boards])
    print(f"\nsearched: {', '.join(str(d) for d in board_dirs())}")
    return 0


def _origin(b) -> str:
    origin = b.origin if b.origin == "built-in" else "project"
    return f"{origin} (extends {b.extends})" if b.extends else origin


def _board_dict(b) -> dict:
    return {
        "name": b.name, "aliases": list(b.aliases), "description": b.description,
        "triple": b.triple, "cpu": b.cpu, "file": str(b.path), "origin": b.origin,
        "extends": b.extends, "flash_tool": b.flash.tool,
        "qemu": {"binary": b.qemu.binary, "machine": b.qemu.machine} if b.qemu else None,
        "regions": [{"name": r.name, "kind": r.kind, "origin": r.origin, "length": r.length,
                     "sectors": [{"size": s, "count": c} for s, c in r.sector_layout],
                     "app_start": r.app_start} for r in b.regions],
    }
