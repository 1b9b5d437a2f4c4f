"""Persistent simulated flash: ``state_dir()/simflash/<name>.bin`` plus ``<name>.json``.

The ``.bin`` holds every flash region of the board back to back, in board order (erased bytes
are 0xFF); the ``.json`` names the board and where each region sits in the ``.bin``. Any later
process (a test, a virtual board booting QEMU from what pyOCD wrote) reads it with
``SimFlashStore.open(name)`` and ``segments()`` / ``to_intelhex()`` / ``write_hex()``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hil.boards import Board
from hil.errors import ConfigError
from hil.flash.probe_id import check_sim_name
from hil.fsutil import atomic_write
from hil.paths import state_dir


def sim_dir() -> Path:
    return state_dir() / "simflash"


def take_probe(name: str):
    """Lock ``<state>/simflash/<name>.lock`` for this process (a USB probe is opened by one
    process at a time); returns the open lock file, to ``release_probe`` later. Raises
    ProbeLostError naming the holder when another process has it."""
    import fcntl

    from hil.errors import ProbeLostError

    directory = sim_dir()
    directory.mkdir(parents=True, exist_ok=True)
    f = open(directory / f"{name}.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise ProbeLostError(f"simulated probe hilsim:{name} is in use by {holder}",
                             hint="wait for the other flash or debug session to end") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}")
    f.flush()
    return f


def release_probe(f) -> None:
    import fcntl

    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()


@dataclass
class FlashArea:
    """One flash region of the simulated chip, backed by a slice of the store's buffer."""

    name: str
    origin: int
    length: int
    offset: int  # into the .bin

    @property
    def end(self) -> int:
        return self.origin + self.length


class SimFlashStore:
    """The flash contents of one simulated board, loaded in memory and saved atomically."""

    def __init__(self, name: str, board_name: str, areas: list[FlashArea], data: bytearray,
                 directory: Path, generation: int = 0) -> None:
        self.name = name
        self.generation = generation  # incremented by every save: "has the flash changed?"
        self.board_name = board_name
        self.areas = areas
        self.data = data
        self.directory = directory

    # ------------------------------------------------------------------ paths
    @staticmethod
    def paths(name: str, directory: Path | None = None) -> tuple[Path, Path]:
        d = directory or sim_dir()
        return d / f"{name}.bin", d / f"{name}.json"

    @property
    def bin_path(self) -> Path:
        return self.paths(self.name, self.directory)[0]

    @property
    def meta_path(self) -> Path:
        return self.paths(self.name, self.directory)[1]

    # ------------------------------------------------------------------ construction
    @staticmethod
    def read_metadata(name: str, directory: Path | None = None) -> dict | None:
        """The metadata beside a persisted flash, or None when there is none (or it is bad)."""
        meta = SimFlashStore.paths(name, directory)[1]
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("board"), str) else None

    @classmethod
    def for_board(cls, name: str, board: Board, directory: Path | None = None) -> SimFlashStore:
        """Load the persisted flash of ``name`` (erased if none, or if its layout changed)."""
        check_sim_name(name)
        directory = directory or sim_dir()
        areas = []
        offset = 0
        for region in board.flash_regions():
            areas.append(FlashArea(region.name, region.origin, region.length, offset))
            offset += region.length
        data = bytearray(b"\xff" * offset)
        bin_path, _ = cls.paths(name, directory)
        meta = cls.read_metadata(name, directory)
        generation = 0
        if meta and meta.get("board") == board.name and bin_path.exists():
            saved = bin_path.read_bytes()
            if len(saved) == offset:
                data[:] = saved
                generation = int(meta.get("generation", 0))
        return cls(name, board.name, areas, data, directory, generation)

    @classmethod
    def open(cls, name: str, directory: Path | None = None) -> SimFlashStore:
        """Open the persisted flash of a simulated probe for reading (no board needed)."""
        directory = directory or sim_dir()
        meta = cls.read_metadata(name, directory)
        if meta is None:
            raise ConfigError(f"simulated probe hilsim:{name} has never been flashed "
                              f"(no {cls.paths(name, directory)[1]})",
                              hint=f"flash it first: hil flash --probe hilsim:{name} ...")
        areas = [FlashArea(a["name"], a["origin"], a["length"], a["offset"])
                 for a in meta["regions"]]
        data = bytearray(cls.paths(name, directory)[0].read_bytes())
        return cls(name, meta["board"], areas, data, directory, int(meta.get("generation", 0)))

    # ------------------------------------------------------------------ access
    def area_at(self, address: int) -> FlashArea | None:
        for area in self.areas:
            if area.origin <= address < area.end:
                return area
        return None

    def read(self, address: int, size: int) -> bytes:
        area = self.area_at(address)
        if area is None or address + size > area.end:
            raise ValueError(f"0x{address:08X}+{size} is outside the simulated flash")
        start = area.offset + address - area.origin
        return bytes(self.data[start:start + size])

    def segments(self) -> list[tuple[int, bytes]]:
        """(address, bytes) runs of programmed (non-0xFF) data, 16-byte aligned and merged."""
        out: list[tuple[int, bytes]] = []
        for area in self.areas:
            blob = bytes(self.data[area.offset:area.offset + area.length])
            run_start = None
            for pos in range(0, area.length, 16):
                chunk = blob[pos:pos + 16]
                used = chunk.count(0xFF) != len(chunk)
                if used and run_start is None:
                    run_start = pos
                elif not used and run_start is not None:
                    out.append((area.origin + run_start, blob[run_start:pos]))
                    run_start = None
            if run_start is not None:
                out.append((area.origin + run_start, blob[run_start:]))
        return out

    def to_intelhex(self):  # -> intelhex.IntelHex
        from intelhex import IntelHex

        ih = IntelHex()
        for address, blob in self.segments():
            ih.frombytes(blob, offset=address)
        return ih

    def write_hex(self, path: Path) -> Path:
        """Write the programmed contents as Intel HEX (what QEMU's -device loader takes)."""
        self.to_intelhex().write_hex_file(str(path))
        return path

    def save(self) -> None:
        """Write .bin then .json atomically (readers never see a half-written flash)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.generation += 1
        meta = {
            "generation": self.generation,
            "board": self.board_name,
            "probe": f"hilsim:{self.name}",
            "regions": [vars(a) for a in self.areas],
        }
        for path, payload in ((self.bin_path, bytes(self.data)),
                              (self.meta_path, json.dumps(meta, indent=1).encode())):
            atomic_write(path, payload)
