"""Boards as data: the board file schema and the frozen board model everyone reads.

One ``Board`` holds one typed memory map; the linker script, the size check, the pyOCD
target, the simulated flash and the QEMU command line all read it, so no address is
written twice.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from hil.errors import ConfigError
from hil.peripherals import (
    MAX_CLOCK_HZ,
    Console,
    Led,
    Timer,
    parse_console,
    parse_led,
    parse_timer,
)
from hil.schema import BOARD_NAME_RE, Reader, parse_yaml, read_config

SCHEMA_VERSION = 1

TRIPLES = {
    "thumbv7em-none-eabi": "arm",
    "thumbv7em-none-eabihf": "arm",
    "thumbv7m-none-eabi": "arm",
    "riscv32imac-unknown-none-elf": "riscv",
}
FLASH_TOOLS = ("pyocd", "openocd")
FLOAT_ABIS = ("soft", "softfp", "hard")
#: Upper bounds of board-file numbers, far above any real board and far below what costs
#: memory or time (the console's are in hil.peripherals).
MAX_SWD_HZ = 200_000_000
MAX_SECTORS = 65536  # per sector run and per region


@dataclass(frozen=True)
class Sector:
    """One erase sector of a flash region."""

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class Region:
    """A memory region: flash (with its sectors and app start) or RAM."""

    name: str
    kind: str  # "flash" | "ram"
    origin: int
    length: int
    access: str = "rwx"
    sector_layout: tuple[tuple[int, int], ...] = ()  # (size, count) runs
    app_start: int | None = None

    @property
    def end(self) -> int:
        """One past the last byte."""
        return self.origin + self.length

    @property
    def is_flash(self) -> bool:
        return self.kind == "flash"

    def contains(self, address: int, size: int = 1) -> bool:
        return self.origin <= address and address + size <= self.end

    @cached_property
    def sectors(self) -> tuple[Sector, ...]:
        out = []
        address = self.origin
        for size, count in self.sector_layout:
            for _ in range(count):
                out.append(Sector(address, size))
                address += size
        return tuple(out)

    def sector_at(self, address: int) -> Sector | None:
        for sector in self.sectors:
            if sector.start <= address < sector.end:
                return sector
        return None


@dataclass(frozen=True)
class ChipId:
    """Where the chip's device id is read and what it must be (STM32: DBGMCU_IDCODE)."""

    address: int
    mask: int
    value: int


@dataclass(frozen=True)
class FlashSpec:
    """How the board is flashed: pyOCD (target name, pack or family) or OpenOCD."""

    tool: str
    pyocd_target: str | None = None
    pyocd_family: str | None = None
    pyocd_pack: str | None = None
    chip_id: ChipId | None = None
    connect_mode: str = "halt"
    reset_type: str = "sw"
    frequency: int = 4_000_000
    openocd_config: tuple[str, ...] = ()


@dataclass(frozen=True)
class QemuSpec:
    binary: str
    machine: str
    args: tuple[str, ...] = ()
    fixtures: tuple[str, ...] = ()  # test fixtures the machine emulates (e.g. uart-loopback)


@dataclass(frozen=True)
class Board:
    """The frozen model of one board file."""

    name: str
    description: str
    triple: str
    cpu: str
    fpu: str | None
    float_abi: str
    march: str | None
    mabi: str | None
    cpu_clock_hz: int
    regions: tuple[Region, ...]
    console: Console
    flash: FlashSpec
    qemu: QemuSpec | None
    led: Led | None = None
    timer: Timer | None = None  # None on Arm: SysTick is part of the CPU
    aliases: tuple[str, ...] = ()
    stack_size: int = 4096
    heap_size: int = 0
    path: Path | None = field(default=None, compare=False)
    sha256: str = field(default="", compare=False)
    origin: str = field(default="", compare=False)  # "built-in", "project", a directory
    extends: str | None = field(default=None, compare=False)

    @property
    def arch(self) -> str:
        return TRIPLES[self.triple]

    @property
    def app_region(self) -> Region:
        """The flash region holding the application start."""
        for region in self.regions:
            if region.is_flash and region.app_start is not None:
                return region
        raise AssertionError("validated boards always have an app start")  # pragma: no cover

    @property
    def app_start(self) -> int:
        start = self.app_region.app_start
        assert start is not None
        return start

    @property
    def ram_region(self) -> Region:
        """The RAM region used for .data, .bss, heap and stack (the first RAM region)."""
        return next(r for r in self.regions if r.kind == "ram")

    def region_named(self, name: str) -> Region | None:
        return next((r for r in self.regions if r.name == name), None)

    def region_at(self, address: int) -> Region | None:
        return next((r for r in self.regions if r.contains(address)), None)

    def flash_regions(self) -> Iterator[Region]:
        return (r for r in self.regions if r.is_flash)


# --------------------------------------------------------------------------- loading


def board_dirs() -> list[Path]:
    """The directories searched for board files, first wins: the project's board
    directories (and HIL_BOARDS_PATH), then the built-in catalog."""
    from hil.catalog import BOARDS_DIR
    from hil.settings import current

    dirs = list(current().board_dirs)
    builtin = BOARDS_DIR.resolve()
    return [d for d in dirs if d.resolve() != builtin] + [BOARDS_DIR]


def load_board_file(path: Path) -> Board:
    """Parse and validate one board file (no ``extends:``); raises ConfigError."""
    raw = read_config(path)
    return parse_board(parse_yaml(raw, path), path, hashlib.sha256(raw).hexdigest())


def parse_board(data: object, path: Path, digest: str = "") -> Board:
    top = Reader(data, path)
    version = top.int("schema")
    if version != SCHEMA_VERSION:
        raise top.error(
            "schema",
            f"unsupported board schema version {version}",
            hint=f"this hil reads schema {SCHEMA_VERSION}; set 'schema: {SCHEMA_VERSION}'",
        )
    name = top.name("name", top.str("name"), BOARD_NAME_RE, "board")
    aliases = top.str_list("aliases", ())
    for i, alias in enumerate(aliases):
        top.name(f"aliases[{i}]", alias, BOARD_NAME_RE, "board")
    description = top.str("description", "")

    target = top.sub("target")
    assert target is not None
    triple = target.str("triple", choices=tuple(TRIPLES))
    arch = TRIPLES[triple]
    cpu = target.str("cpu")
    fpu = target.str("fpu", None)
    float_abi = target.str("float_abi", "hard" if triple.endswith("eabihf") else "soft",
                           choices=FLOAT_ABIS)
    march = target.str("march", None)
    mabi = target.str("mabi", None)
    clock = target.int("clock_hz", minimum=1, maximum=MAX_CLOCK_HZ)
    if arch == "riscv" and (march is None or mabi is None):
        raise target.error("march", "RISC-V boards need 'march' and 'mabi'",
                           hint="e.g. march: rv32imac, mabi: ilp32")
    if triple.endswith("eabihf") and (float_abi != "hard" or fpu is None):
        raise target.error("float_abi", f"{triple} is the hard-float ABI: it needs "
                           "'float_abi: hard' and an 'fpu'",
                           hint="use thumbv7em-none-eabi for a soft-float build")
    target.done()

    regions = tuple(_parse_region(r) for r in top.items("memory"))
    _check_regions(top, regions)

    console_reader = top.sub("console")
    assert console_reader is not None
    console = parse_console(console_reader)
    led_reader = top.sub("led", required=False)
    led = parse_led(led_reader) if led_reader else None
    timer_reader = top.sub("timer", required=False)
    timer = parse_timer(timer_reader) if timer_reader else None
    if arch == "riscv" and timer is None:
        raise top.error("timer", "RISC-V boards need a 'timer' (the CLINT's mtime counter)",
                        hint="e.g. timer: {driver: clint, mtime: 0x0200BFF8, hz: 32768}")
    if arch == "arm" and timer is not None:
        raise top.error("timer", "Arm boards use the core's SysTick; 'timer' is for RISC-V",
                        hint="remove 'timer'")
    flash = _parse_flash(top.sub("flash"), arch)
    qemu_reader = top.sub("qemu", required=False)
    qemu = None
    if qemu_reader:
        qemu = QemuSpec(
            binary=qemu_reader.str("binary"),
            machine=qemu_reader.str("machine"),
            args=qemu_reader.str_list("args", ()),
            fixtures=qemu_reader.str_list("fixtures", ()),
        )
        qemu_reader.done()
    stack = top.size("stack", 4096, minimum=256)
    heap = top.size("heap", 0)
    top.done()

    return Board(
        name=name,
        description=description,
        triple=triple,
        cpu=cpu,
        fpu=fpu,
        float_abi=float_abi,
        march=march,
        mabi=mabi,
        cpu_clock_hz=clock,
        regions=regions,
        console=console,
        led=led,
        timer=timer,
        flash=flash,
        qemu=qemu,
        aliases=aliases,
        stack_size=stack,
        heap_size=heap,
        path=path,
        sha256=digest,
    )


def _parse_region(r: Reader) -> Region:
    name = r.str("name")
    kind = r.str("kind", choices=("flash", "ram"))
    origin = r.address("origin")
    length = r.size("length", minimum=1)
    access = r.str("access", "rx" if kind == "flash" else "rwx")
    if not access or any(c not in "rwx" for c in access):
        raise r.error("access", f"'{access}' is not an access mode",
                      hint="use letters from r, w, x, such as rx or rwx")
    if origin + length > 1 << 32:
        raise r.error(
            "length",
            f"region {name} at 0x{origin:08X} with length 0x{length:X} wraps past 4 GiB "
            f"(ends at 0x{origin + length:X})",
            hint="check origin and length against the reference manual",
        )
    layout: tuple[tuple[int, int], ...] = ()
    app_start = None
    if kind == "flash":
        runs = []
        for i, run in enumerate(r.items("sectors")):
            size = run.size("size", minimum=1)
            count = run.int("count", minimum=1, maximum=MAX_SECTORS)
            run.done()
            runs.append((size, count))
            del i
        layout = tuple(runs)
        if sum(count for _, count in layout) > MAX_SECTORS:
            raise r.error("sectors", f"region {name} has more than {MAX_SECTORS} sectors",
                          hint="check the sector sizes against the reference manual")
        total = sum(size * count for size, count in layout)
        if total != length:
            raise r.error(
                "sectors",
                f"sectors of region {name} add up to {total} bytes (0x{total:X}) but its "
                f"length is {length} (0x{length:X})",
                hint="list every sector run so their sizes add up to the region length",
            )
        app_start = r.address("app_start", origin)
        if not origin <= app_start < origin + length:
            raise r.error(
                "app_start",
                f"application start 0x{app_start:08X} is outside flash region {name} "
                f"(0x{origin:08X}..0x{origin + length - 1:08X})",
                hint="set app_start to an address inside the region",
            )
    r.done()
    return Region(name, kind, origin, length, access, layout, app_start)


def _check_regions(top: Reader, regions: tuple[Region, ...]) -> None:
    if not regions:
        raise top.error("memory", "no memory regions", hint="list the flash and RAM regions")
    seen: dict[str, int] = {}
    for i, region in enumerate(regions):
        if region.name in seen:
            raise top.error(f"memory[{i}].name", f"duplicate region name '{region.name}'",
                            hint="give every region its own name")
        seen[region.name] = i
    ordered = sorted(enumerate(regions), key=lambda item: item[1].origin)
    for (_, a), (j, b) in itertools.pairwise(ordered):
        if b.origin < a.end:
            raise top.error(
                f"memory[{j}]",
                f"region {b.name} (0x{b.origin:08X}..0x{b.end - 1:08X}) overlaps region "
                f"{a.name} (0x{a.origin:08X}..0x{a.end - 1:08X})",
                hint="check origin and length of both regions against the reference manual",
            )
    if not any(r.is_flash for r in regions):
        raise top.error("memory", "no flash region", hint="add a region with kind: flash")
    if not any(r.kind == "ram" for r in regions):
        raise top.error("memory", "no RAM region", hint="add a region with kind: ram")


def _parse_flash(r: Reader | None, arch: str) -> FlashSpec:
    assert r is not None
    tool = r.str("tool", choices=FLASH_TOOLS)
    if tool == "pyocd" and arch != "arm":
        raise r.error("tool", "pyOCD flashes Arm Cortex-M only",
                      hint="use 'tool: openocd' with an OpenOCD config for this board")
    chip_id = None
    chip = r.sub("chip_id", required=False)
    if chip:
        chip_id = ChipId(
            address=chip.address("address"),
            mask=chip.address("mask", 0xFFFFFFFF),
            value=chip.address("value"),
        )
        chip.done()
    spec = FlashSpec(
        tool=tool,
        pyocd_target=r.str("pyocd_target", None),
        pyocd_family=r.str("pyocd_family", None),
        pyocd_pack=r.str("pyocd_pack", None),
        chip_id=chip_id,
        connect_mode=r.str("connect_mode", "halt",
                           choices=("halt", "pre-reset", "under-reset", "attach")),
        reset_type=r.str("reset_type", "sw", choices=("hw", "sw", "sw_sysresetreq",
                                                      "sw_vectreset", "sw_emulated")),
        frequency=r.int("frequency", 4_000_000, minimum=1000, maximum=MAX_SWD_HZ),
        openocd_config=r.str_list("openocd_config", ()),
    )
    if tool == "pyocd" and not (spec.pyocd_target or spec.pyocd_family or spec.pyocd_pack):
        raise r.error("pyocd_family", "a pyOCD board needs pyocd_target, pyocd_family or "
                      "pyocd_pack", hint="e.g. pyocd_family: stm32f4")
    if tool == "openocd" and not spec.openocd_config:
        raise r.error("openocd_config", "an OpenOCD board needs its config files",
                      hint="e.g. openocd_config: [board/sifive-hifive1-revb.cfg]")
    r.done()
    return spec


def _merge(base: object, override: object) -> object:
    """``override`` over ``base``: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return override


NOT_INHERITED = ("name", "aliases", "extends")


@dataclass
class _BoardFile:
    path: Path
    data: object
    origin: str
    raw: bytes


class BoardCatalog:
    """Every board found in the search path, by name and alias.

    The first directory that defines a board name wins, so a project's board replaces a
    built-in one of the same name. A board file may say ``extends: <board>``: it starts
    from that board's file (all keys but name, aliases and extends) and overrides keys,
    mappings merged key by key, lists and scalars replaced whole.
    """

    def __init__(self, dirs: list[Path] | None = None) -> None:
        self.dirs = board_dirs() if dirs is None else dirs
        self._boards: dict[str, Board] | None = None

    def _origin(self, directory: Path) -> str:
        from hil.catalog import BOARDS_DIR

        return "built-in" if directory.resolve() == BOARDS_DIR.resolve() else str(directory)

    def _files(self) -> dict[str, _BoardFile]:
        """Board name -> the file that defines it (first directory wins)."""
        files: dict[str, _BoardFile] = {}
        for directory in self.dirs:
            if not directory.is_dir():
                continue
            in_this_dir: dict[str, Path] = {}
            for path in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
                raw = read_config(path)  # a regular UTF-8 file of sane size, or ConfigError
                data = parse_yaml(raw, path)
                name = Reader(data, path).str("name") if isinstance(data, dict) else None
                if not isinstance(name, str):
                    Reader(data, path)  # raises: expected a mapping
                    raise ConfigError("is required", path=path, key="name")
                if name in in_this_dir:
                    raise ConfigError(
                        f"board name '{name}' is already defined in {in_this_dir[name]}",
                        path=path, key="name",
                        hint="board names must be unique within a directory; rename one")
                in_this_dir[name] = path
                if name not in files:  # an earlier directory's board of that name wins
                    files[name] = _BoardFile(path, data, self._origin(directory), raw)
        return files

    def _resolve(self, name: str, files: dict[str, _BoardFile],
                 chain: tuple[str, ...] = ()) -> tuple[dict, bytes]:
        """The merged data of board ``name`` (its extends chain applied) and the bytes of
        every file in the chain."""
        f = files[name]
        data = dict(f.data) if isinstance(f.data, dict) else {}
        parent = data.get("extends")
        if parent is None:
            return data, f.raw
        if not isinstance(parent, str):
            raise ConfigError("expected the name of a board", path=f.path, key="extends")
        if parent in chain or parent == name:
            cycle = " -> ".join((*chain, name, parent))
            raise ConfigError(f"'extends' makes a cycle: {cycle}", path=f.path, key="extends",
                              hint="a board may extend another board, never itself")
        if parent not in files:
            known = ", ".join(sorted(files))
            raise ConfigError(f"extends unknown board '{parent}'", path=f.path, key="extends",
                              hint=f"known boards: {known}")
        base, base_raw = self._resolve(parent, files, (*chain, name))
        base = {k: v for k, v in base.items() if k not in NOT_INHERITED}
        merged = _merge(base, {k: v for k, v in data.items() if k != "extends"})
        assert isinstance(merged, dict)
        return merged, base_raw + b"\0" + f.raw

    def _load(self) -> dict[str, Board]:
        if self._boards is not None:
            return self._boards
        files = self._files()
        boards: dict[str, Board] = {}
        names: dict[str, Path] = {}
        for name in sorted(files):
            f = files[name]
            data, raw = self._resolve(name, files)
            board = parse_board(data, f.path, hashlib.sha256(raw).hexdigest())
            parent = f.data.get("extends") if isinstance(f.data, dict) else None
            board = replace(board, origin=f.origin, extends=parent)
            for key in (board.name, *board.aliases):
                if key in names and boards[key].name != board.name:
                    raise ConfigError(
                        f"board alias '{key}' is already used by {names[key]}",
                        path=f.path, key="aliases",
                        hint="aliases must be unique across all board directories; "
                        "rename one")
                names[key] = f.path
                boards[key] = board
        self._boards = boards
        return boards

    def get(self, name: str) -> Board:
        boards = self._load()
        if name in boards:
            return boards[name]
        import difflib

        close = difflib.get_close_matches(name, list(boards), n=1)
        hint = f"did you mean '{close[0]}'?" if close else (
            f"known boards: {', '.join(self.names())}; add a board file to the project's "
            "boards/ directory")
        raise ConfigError(f"unknown board '{name}'", hint=hint)

    def names(self) -> list[str]:
        """Canonical board names (no aliases), sorted."""
        return sorted({b.name for b in self._load().values()})

    def all(self) -> list[Board]:
        return [self.get(n) for n in self.names()]


def load_board(name: str) -> Board:
    """Load one board by name or alias from the board search path."""
    return BoardCatalog().get(name)
