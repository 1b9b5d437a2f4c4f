"""pyOCD targets built from board files: memory map from the board model, algorithm from pyOCD.

pyOCD 0.46 has no built-in target for most STM32F4 parts and vendor packs cannot be fetched
here, so a board naming ``pyocd_family`` gets a ``CoreSightTarget`` subclass whose memory map
is the board's regions (one pyOCD flash region per run of equal sectors, as pyOCD's own F4
targets do) and whose flash algorithm is the one pyOCD ships for a chip of that family
(imported, never copied). A board naming ``pyocd_target`` (built-in) or ``pyocd_pack`` uses
pyOCD's own definition instead.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.boards import Board
from hil.errors import ConfigError

#: Prefix of the target names hil registers in ``pyocd.target.TARGET``.
TARGET_PREFIX = "hil_"


@dataclass(frozen=True)
class Family:
    """A chip family pyOCD can program with one algorithm, and a built-in sibling target."""

    name: str
    algo_module: str  # module under pyocd.target.builtin holding the algorithm
    algo_name: str
    page_size: int  # program page size (fits the algorithm's page buffers)
    sibling: str  # pyOCD built-in target with the same flash layout, for map checks
    vendor: str
    debug_freeze: tuple[tuple[int, int], ...] = ()  # (address, value) written after connect


FAMILIES = {
    # RM0383/RM0390: the STM32F4 flash controller (FLASH_KEYR/CR/SR at 0x40023C00) is the same
    # across the family, so the F412 algorithm programs F401/F411/F446 too.
    "stm32f4": Family(
        name="stm32f4",
        algo_module="target_STM32F412xx",
        algo_name="FLASH_ALGO",
        page_size=0x1000,
        sibling="stm32f412xe",
        vendor="STMicroelectronics",
        # DBGMCU_CR: keep debug alive in sleep/stop/standby, as pyOCD's F4 targets do.
        debug_freeze=((0xE0042004, 0x7),),
    ),
}


def family_for(board: Board) -> Family | None:
    return FAMILIES.get(board.flash.pyocd_family or "")


def flash_algo(board: Board) -> dict[str, Any]:
    """The pyOCD flash algorithm dict for the board's family (imported from pyOCD)."""
    family = family_for(board)
    if family is None:
        raise ConfigError(
            f"board {board.name}: pyOCD has no flash algorithm for family "
            f"'{board.flash.pyocd_family}'",
            path=board.path, key="flash.pyocd_family",
            hint=f"known families: {', '.join(FAMILIES)}; or name a pyocd_target / pyocd_pack",
        )
    module = importlib.import_module(f"pyocd.target.builtin.{family.algo_module}")
    return getattr(module, family.algo_name)


def target_name(board: Board) -> str:
    """The name to pass as pyOCD's ``target_override`` for this board."""
    from pyocd.target import normalise_target_type_name

    if board.flash.pyocd_target:
        return normalise_target_type_name(board.flash.pyocd_target)
    return normalise_target_type_name(TARGET_PREFIX + board.name)


def memory_map(board: Board):  # -> pyocd.core.memory_map.MemoryMap
    """pyOCD memory map of the board: flash runs with the family's algorithm, RAM regions."""
    from pyocd.core.memory_map import FlashRegion, MemoryMap, RamRegion

    family = family_for(board)
    algo = flash_algo(board) if family else None
    regions = []
    for region in board.regions:
        if region.kind == "ram":
            regions.append(RamRegion(start=region.origin, length=region.length,
                                     name=region.name))
            continue
        start = region.origin
        for i, (size, count) in enumerate(region.sector_layout):
            kwargs: dict[str, Any] = {}
            if algo is not None and family is not None:
                kwargs = {"algo": algo, "page_size": min(family.page_size, size)}
            regions.append(FlashRegion(
                start=start, length=size * count, sector_size=size,
                is_boot_memory=(start <= board.app_start < start + size * count),
                name=f"{region.name}" if len(region.sector_layout) == 1 else
                f"{region.name}_{i}",
                **kwargs,
            ))
            start += size * count
    return MemoryMap(*regions)


def _make_target_class(board: Board) -> type:
    from pyocd.coresight.coresight_target import CoreSightTarget

    family = family_for(board)
    mmap = memory_map(board)

    def __init__(self, session):
        CoreSightTarget.__init__(self, session, mmap.clone())

    def post_connect_hook(self):
        for address, value in (family.debug_freeze if family else ()):
            self.write32(address, value)

    return type(
        f"HilTarget_{target_name(board)}",
        (CoreSightTarget,),
        {
            "VENDOR": family.vendor if family else "unknown",
            "MEMORY_MAP": mmap,
            "__init__": __init__,
            "post_connect_hook": post_connect_hook,
            "__doc__": f"pyOCD target for hil board {board.name}, built from {board.path}",
        },
    )


def register(board: Board) -> tuple[str, dict[str, Any]]:
    """Make the board's target known to pyOCD; returns (target_override, session options).

    Idempotent. For a pack, the options carry ``pack``; for a built-in target nothing is
    registered.
    """
    from pyocd.target import TARGET

    options: dict[str, Any] = {}
    name = target_name(board)
    if board.flash.pyocd_pack:
        pack = Path(board.flash.pyocd_pack)
        if not pack.is_absolute() and board.path is not None:
            pack = board.path.parent / pack
        if not pack.exists():
            raise ConfigError(f"CMSIS-Pack {pack} does not exist", path=board.path,
                              key="flash.pyocd_pack",
                              hint="download the vendor .pack file or use pyocd_family")
        if not board.flash.pyocd_target:
            raise ConfigError("a board naming pyocd_pack must also name the part in "
                              "pyocd_target", path=board.path, key="flash.pyocd_target",
                              hint="e.g. pyocd_target: stm32f411retx")
        options["pack"] = [str(pack)]
        return name, options
    if board.flash.pyocd_target:
        if name not in TARGET:
            raise ConfigError(f"pyOCD has no built-in target '{board.flash.pyocd_target}'",
                              path=board.path, key="flash.pyocd_target",
                              hint="run 'pyocd list --targets', or use pyocd_family to build "
                              "the target from the board's memory map")
        return name, options
    flash_algo(board)  # raises ConfigError naming the family when pyOCD has none
    TARGET[name] = _make_target_class(board)
    return name, options


def sector_list(mmap) -> list[tuple[int, int]]:
    """(start, size) of every flash sector of a pyOCD memory map, in address order."""
    out = []
    for region in sorted((r for r in mmap.regions if r.is_flash), key=lambda r: r.start):
        for start in range(region.start, region.end + 1, region.sector_size):
            out.append((start, region.sector_size))
    return out
