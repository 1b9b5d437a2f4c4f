"""The image stage: ELF to Intel HEX and BIN, memory use per region, the fit check, and
``Image``, the value this stage hands to flashers and executors.

The HEX and BIN hold exactly the ELF's loadable bytes at their load addresses (LMA), the
bytes a flasher writes. Conversion uses pyelftools and intelhex, no external tool.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from hil.boards import Board, Region
from hil.errors import ConfigError, ImageError

if TYPE_CHECKING:
    from intelhex import IntelHex

    from hil.build import BuildResult

BIN_FILL = 0xFF  # erased flash
ELF_MAGIC = b"\x7fELF"
#: ELF e_machine of each board architecture, and names of machines users meet.
EM_ARM, EM_RISCV = 40, 243
ARCH_MACHINE = {"arm": EM_ARM, "riscv": EM_RISCV}
_MACHINE_NAMES = {EM_ARM: "Arm", EM_RISCV: "RISC-V", 3: "x86", 62: "x86-64", 183: "AArch64",
                  8: "MIPS", 20: "PowerPC", 94: "Xtensa", 105: "MSP430", 83: "AVR"}
_ARCH_NAMES = {"arm": "an Arm Cortex-M", "riscv": "a RISC-V"}
#: A HEX record of 16 data bytes is 45 characters with CRLF (2.8x); 4x leaves room for
#: shorter records, and the slack for address and end records of a tiny image.
HEX_PER_BYTE = 4
HEX_SLACK = 64 * 1024
#: An ELF also carries symbols and debug info: bound it loosely, its loadable bytes tightly.
ELF_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Chunk:
    """Bytes to be written at a load address, from one ELF section."""

    section: str
    address: int
    data: bytes


@dataclass(frozen=True)
class RegionUse:
    name: str
    kind: str
    origin: int
    length: int
    used: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.length if self.length else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "origin": self.origin,
                "length": self.length, "used": self.used}


@dataclass(frozen=True)
class SectionPlacement:
    name: str
    vma: int
    lma: int
    size: int
    loaded: bool  # has bytes in the image (PROGBITS), as opposed to NOBITS


def read_sections(elf_path: Path) -> list[SectionPlacement]:
    """Allocated sections with their run (VMA) and load (LMA) addresses."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        segments = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        out = []
        for sec in elf.iter_sections():
            if not sec["sh_flags"] & SH_FLAGS.SHF_ALLOC or sec["sh_size"] == 0:
                continue
            out.append(SectionPlacement(sec.name, sec["sh_addr"], _lma(sec, segments),
                                        sec["sh_size"], sec["sh_type"] != "SHT_NOBITS"))
        return out


def _lma(section, segments) -> int:
    """A section's load address: its run address moved by its segment's paddr - vaddr."""
    for seg in segments:
        if seg.section_in_segment(section):
            return int(section["sh_addr"] - seg["p_vaddr"] + seg["p_paddr"])
    return int(section["sh_addr"])


def load_chunks(elf_path: Path) -> list[Chunk]:
    """The loadable bytes of an ELF, by section, at their load addresses."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        segments = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        chunks = []
        for sec in elf.iter_sections():
            if (not sec["sh_flags"] & SH_FLAGS.SHF_ALLOC or sec["sh_type"] == "SHT_NOBITS"
                    or sec["sh_size"] == 0):
                continue
            chunks.append(Chunk(sec.name, _lma(sec, segments), sec.data()))
        return sorted(chunks, key=lambda c: c.address)


def entry_point(elf_path: Path) -> int:
    from elftools.elf.elffile import ELFFile

    with open(elf_path, "rb") as f:
        return int(ELFFile(f).header["e_entry"])


def check_placement(board: Board, elf_path: Path) -> None:
    """Every loaded byte must land in a flash region of the board (ImageError otherwise)."""
    for chunk in load_chunks(elf_path):
        end = chunk.address + len(chunk.data)
        region = board.region_at(chunk.address)
        if region is None or not region.contains(chunk.address, len(chunk.data)):
            raise ImageError(
                f"section {chunk.section} has data at 0x{chunk.address:08X}..0x{end - 1:08X}, "
                f"outside every memory region of board {board.name} "
                f"({_regions_text(board)})",
                hint="check the section's placement in your linker script or sources",
            )
        if not region.is_flash:
            raise ImageError(
                f"section {chunk.section} loads data into {region.kind} region {region.name} "
                f"at 0x{chunk.address:08X}: a flashed image cannot hold it",
                hint="place initialised data with '> RAM AT > FLASH' so it loads from flash",
            )


def _regions_text(board: Board) -> str:
    return ", ".join(f"{r.name} 0x{r.origin:08X}..0x{r.end - 1:08X}" for r in board.regions)


def region_use(board: Board, elf_path: Path) -> list[RegionUse]:
    """Bytes used per region: run addresses of all sections plus load copies in flash."""
    used = {r.name: 0 for r in board.regions}
    for sec in read_sections(elf_path):
        region = board.region_at(sec.vma)
        if region:
            used[region.name] += sec.size
        if sec.loaded and sec.lma != sec.vma:
            load_region = board.region_at(sec.lma)
            if load_region:
                used[load_region.name] += sec.size
    return [RegionUse(r.name, r.kind, r.origin, r.length, used[r.name]) for r in board.regions]


def to_intelhex(elf_path: Path) -> IntelHex:
    from intelhex import IntelHex

    ih = IntelHex()
    for chunk in load_chunks(elf_path):
        ih.puts(chunk.address, chunk.data)
    ih.start_addr = {"EIP": entry_point(elf_path)}
    return ih


def write_hex(elf_path: Path, hex_path: Path) -> None:
    """Write the ELF's loadable bytes as Intel HEX, laid out as GNU objcopy lays it out.

    Records hold 16 bytes, restart at each section and never cross a 64 KiB boundary;
    addresses below 1 MiB use segment records (02), others extended linear ones (04);
    the entry point ends the file as a start address (03 below 1 MiB, else 05). Matching
    objcopy byte for byte lets a team diff hil's HEX against the one its old build made.
    """
    lines: list[str] = []
    extbase = segbase = 0
    for chunk in load_chunks(elf_path):
        offset = 0
        while offset < len(chunk.data):
            where = chunk.address + offset
            if where > segbase + extbase + 0xFFFF:
                if extbase == 0 and where <= 0xFFFFF:
                    segbase = where & 0xF0000
                    lines.append(_record(0x02, 0, (segbase >> 4).to_bytes(2, "big")))
                else:
                    if segbase:
                        lines.append(_record(0x02, 0, b"\0\0"))
                        segbase = 0
                    extbase = where & 0xFFFF0000
                    lines.append(_record(0x04, 0, (extbase >> 16).to_bytes(2, "big")))
            rec_addr = where - extbase - segbase
            now = min(16, len(chunk.data) - offset, 0x10000 - rec_addr)
            lines.append(_record(0x00, rec_addr, chunk.data[offset:offset + now]))
            offset += now
    start = entry_point(elf_path)
    if start and start <= 0xFFFFF:
        cs_ip = ((start & 0xF0000) >> 4).to_bytes(2, "big") + (start & 0xFFFF).to_bytes(2, "big")
        lines.append(_record(0x03, 0, cs_ip))
    elif start:
        lines.append(_record(0x05, 0, start.to_bytes(4, "big")))
    lines.append(":00000001FF")
    hex_path.write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))  # CRLF, as objcopy


def _record(kind: int, address: int, data: bytes) -> str:
    raw = bytes([len(data), address >> 8 & 0xFF, address & 0xFF, kind]) + data
    checksum = (-sum(raw)) & 0xFF
    return ":" + (raw + bytes([checksum])).hex().upper()


def write_bin(elf_path: Path, bin_path: Path) -> int:
    """Write the loadable bytes from the lowest load address, gaps filled with 0xFF.

    Returns the base address (where the first byte of the BIN goes)."""
    chunks = load_chunks(elf_path)
    if not chunks:
        raise ImageError(f"{elf_path}: the image has no loadable bytes",
                         hint="check that the sources define a vector table / entry point")
    base = chunks[0].address
    end = max(c.address + len(c.data) for c in chunks)
    image = bytearray([BIN_FILL]) * (end - base)
    for c in chunks:
        image[c.address - base: c.address - base + len(c.data)] = c.data
    bin_path.write_bytes(bytes(image))
    return base


def check_image_file(board: Board, path: Path) -> str:
    """Cheap checks of an image file before anything reads it whole, takes a lease or
    touches a probe: it is a regular, non-empty file; a .bin fits the flash from the app
    start and a HEX could (by its size alone); an ELF is 32-bit little-endian for the
    board's architecture and loads no more than the board's flash. Returns the format:
    "elf", "hex" or "bin". Raises ConfigError (not a file) or ImageError (wrong image)."""
    import os
    import stat

    from hil.errors import ConfigError

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("image file does not exist", path=path,
                          hint=f"build it first: hil build --board {board.name} APP") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the image: {exc.strerror}", path=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError("is a directory, not an image file", path=path,
                          hint="pass the .hex, .elf or .bin file itself, e.g. "
                          f"build/{board.name}/APP/firmware.hex")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError("is not a regular file", path=path,
                          hint="pass a .hex, .elf or .bin file")
    if info.st_size == 0:
        raise ImageError(f"image {path} is empty (0 bytes)",
                         hint=f"rebuild it: hil build --board {board.name} APP")
    with open(path, "rb") as fh:
        header = fh.read(64)
    flash_total = sum(r.length for r in board.flash_regions())
    suffix = path.suffix.lower()
    if header.startswith(ELF_MAGIC):
        if suffix == ".bin":
            raise ImageError(f"{path} is an ELF file, not a raw binary",
                             hint="pass it with its .elf name: hil reads its load addresses")
        check_elf_header(board, path, header)
        if info.st_size > ELF_MAX_BYTES:
            raise ImageError(f"ELF {path} is {info.st_size} bytes: too large to be firmware "
                             f"for board {board.name}", hint="pass the image hil build wrote")
        _check_elf_load_size(board, path, flash_total)
        return "elf"
    if suffix == ".bin":
        room = board.app_region.end - board.app_start
        if info.st_size > room:
            raise ImageError(
                f"image {path} is {info.st_size} bytes, but board {board.name} has "
                f"{room} bytes of flash from its application start 0x{board.app_start:08X}",
                hint="was the image built for this board? a .bin is written at the "
                "application start")
        return "bin"
    if suffix in (".elf", ".axf", ".out"):
        raise ImageError(f"{path} is not an ELF file (no ELF magic number)",
                         hint="pass a .hex, .elf or .bin image")
    limit = HEX_PER_BYTE * flash_total + HEX_SLACK
    if info.st_size > limit:
        raise ImageError(
            f"HEX image {path} is {info.st_size} bytes: more than a HEX of the "
            f"{flash_total} bytes of flash of board {board.name} can be ({limit} bytes)",
            hint="was the image built for this board?")
    return "hex"


def check_elf_header(board: Board, path: Path, header: bytes) -> None:
    """The ELF's class, byte order and machine must be the board's (ImageError otherwise)."""
    if len(header) < 20:
        raise ImageError(f"{path}: truncated ELF header ({len(header)} bytes)")
    cls, data = header[4], header[5]
    if cls != 1:
        what = "a 64-bit" if cls == 2 else f"an ELF class {cls}"
        raise ImageError(
            f"{path} is {what} ELF, but board {board.name} ({board.cpu}) runs 32-bit "
            "images", hint=f"build the image for this board: hil build --board {board.name}")
    if data != 1:
        raise ImageError(
            f"{path} is a big-endian ELF, but board {board.name} ({board.cpu}) is "
            "little-endian", hint=f"build the image for this board: hil build --board "
            f"{board.name}")
    machine = int.from_bytes(header[18:20], "little")
    if machine != ARCH_MACHINE[board.arch]:
        name = _MACHINE_NAMES.get(machine, f"machine {machine}")
        article = "an" if name[0] in "AEIOUx" else "a"
        raise ImageError(
            f"{path} is {article} {name} ELF for {_ARCH_NAMES[board.arch]} board: board "
            f"{board.name} has a {board.cpu} core",
            hint=f"build the image for this board (hil build --board {board.name} APP), or "
            "flash it to the board it was built for")


def _check_elf_load_size(board: Board, path: Path, flash_total: int) -> None:
    """An ELF loading more bytes than the board's flash holds is refused before its data is
    read (segment headers only)."""
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            loaded = sum(int(seg["p_filesz"]) for seg in ELFFile(f).iter_segments()
                         if seg["p_type"] == "PT_LOAD")
    except Exception as exc:  # pyelftools raises many kinds on bad input
        raise ImageError(f"{path}: not a readable ELF file: {exc}",
                         hint="pass a .hex or .elf image") from exc
    if loaded > flash_total:
        raise ImageError(
            f"ELF {path} loads {loaded} bytes, more than the {flash_total} bytes of flash "
            f"of board {board.name}", hint="was the image built for this board?")


def read_image(path: Path) -> IntelHex:
    """Load a HEX or ELF as an IntelHex of its loadable bytes."""
    from intelhex import IntelHex

    with open(path, "rb") as fh:
        is_elf = fh.read(4) == ELF_MAGIC
    if path.suffix.lower() in (".hex", ".ihex") and not is_elf:
        ih = IntelHex()
        try:
            ih.loadhex(str(path))
        except Exception as exc:  # intelhex raises its own hierarchy and ValueError
            raise ImageError(f"{path}: not a valid Intel HEX file: {exc}") from exc
        return ih
    try:
        return to_intelhex(path)
    except Exception as exc:
        raise ImageError(f"{path}: not a readable ELF file: {exc}",
                         hint="pass a .hex or .elf image") from exc


def image_ranges(ih: IntelHex) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges of an image."""
    return [(s, e) for s, e in ih.segments()]


def check_image_fits(board: Board, ih: IntelHex, name: str = "image") -> None:
    """Every byte of a HEX image must be inside one of the board's flash regions."""
    for start, end in ih.segments():
        region = board.region_at(start)
        if region is None or not region.is_flash or end > region.end:
            where = region.name if region else "no region"
            flash = ", ".join(f"{r.name} 0x{r.origin:08X}..0x{r.end - 1:08X}"
                              for r in board.flash_regions())
            raise ImageError(
                f"{name} has data at 0x{start:08X}..0x{end - 1:08X} that is not inside a flash "
                f"region of board {board.name} (starts in {where}; flash: {flash})",
                hint="was the image built for this board? rebuild with hil build --board "
                f"{board.name}",
            )


# GNU ld:  "region `SRAM' overflowed by 1234 bytes" + "section `.bss' will not fit in region `SRAM'"
# LLD:     "section '.bss' will not fit in region 'SRAM': overflowed by 1234 bytes"
_GNU_REGION = re.compile(r"region [`'](?P<region>[^'`]+)' overflowed by (?P<bytes>\d+) bytes")
_GNU_SECTION = re.compile(r"section [`'](?P<section>[^'`]+)' will not fit in region "
                          r"[`'](?P<region>[^'`]+)'")
_LLD = re.compile(r"section '(?P<section>[^']+)' will not fit in region '(?P<region>[^']+)': "
                  r"overflowed by (?P<bytes>\d+) bytes")


def overflow_from_linker(output: str, board: Board) -> ImageError | None:
    """Turn a linker's region-overflow message into an ImageError naming region, section,
    and bytes over; None when the output is not about an overflow."""
    m = _LLD.search(output)
    if m:
        section, region, over = m["section"], m["region"], int(m["bytes"])
    else:
        r = _GNU_REGION.search(output)
        if not r:
            return None
        region, over = r["region"], int(r["bytes"])
        s = _GNU_SECTION.search(output)
        section = s["section"] if s else "?"
    reg: Region | None = board.region_named(region)
    size = f" ({reg.length} bytes)" if reg else ""
    return ImageError(
        f"image does not fit board {board.name}: section {section} overflows region "
        f"{region}{size} by {over} bytes",
        hint="make the code or data smaller (or the stack/heap in app.yaml), or check the "
        "region length in the board file",
    )


# ---------------------------------------------------------------- the image as a value

@dataclass(frozen=True)
class Image:
    """An image to run: the HEX that would be flashed, its ELF (for symbols) when known."""

    hex: Path
    elf: Path | None = None
    sha256: str = ""
    toolchain: str | None = None
    app: str | None = None

    @classmethod
    def from_build(cls, result: BuildResult) -> Image:
        """From a hil.build.BuildResult."""
        return cls(hex=Path(result.hex), elf=Path(result.elf), sha256=result.hex_sha256,
                   toolchain=_toolchain_label(result.record or {}), app=result.app.name)

    @classmethod
    def from_path(cls, path: Path, *, work_dir: Path | None = None) -> Image:
        """From an existing ``.hex`` or ``.elf`` (built elsewhere). An ELF is converted to
        HEX in ``work_dir``; a HEX finds ``firmware.elf``/``<stem>.elf`` and ``build.json``
        next to it when they exist."""
        path = Path(path).resolve()
        if not path.is_file():
            raise ConfigError("image file does not exist", path=path,
                              hint="pass a .hex or .elf file")
        with open(path, "rb") as fh:
            magic = fh.read(4)
        elf: Path | None
        if magic == ELF_MAGIC:
            elf = path
            hex_path = (work_dir or path.parent) / f"{path.stem}.hex"
            hex_path.parent.mkdir(parents=True, exist_ok=True)
            write_hex(elf, hex_path)
        elif magic[:1] == b":":
            hex_path = path
            elf = next((p for p in (path.with_suffix(".elf"), path.parent / "firmware.elf")
                        if p.is_file()), None)
        else:
            raise ConfigError("not an Intel HEX or ELF file", path=path,
                              hint="hil runs the HEX it would flash; give a .hex or .elf")
        toolchain = app = None
        record_path = hex_path.parent / "build.json"
        if record_path.is_file():
            try:
                record = json.loads(record_path.read_text())
                toolchain = _toolchain_label(record)
                app = (record.get("app") or {}).get("name") if isinstance(
                    record.get("app"), dict) else record.get("app")
            except (OSError, ValueError):
                pass
        if toolchain is None and elf is not None:
            toolchain = _elf_toolchain(elf)
        sha = hashlib.sha256(hex_path.read_bytes()).hexdigest()
        return cls(hex=hex_path, elf=elf, sha256=sha, toolchain=toolchain, app=app)

    def copy_to(self, directory: Path) -> Image:
        """The same image with its HEX and ELF copied into ``directory``: a run keeps the
        exact files it ran, unaffected by a later build into the same output directory."""
        directory.mkdir(parents=True, exist_ok=True)
        hex_copy = directory / self.hex.name
        if hex_copy.resolve() != self.hex.resolve():
            shutil.copyfile(self.hex, hex_copy)
        elf_copy = None
        if self.elf is not None:
            elf_copy = directory / self.elf.name
            if elf_copy.resolve() != self.elf.resolve():
                shutil.copyfile(self.elf, elf_copy)
        return replace(self, hex=hex_copy, elf=elf_copy)


def _elf_toolchain(elf: Path) -> str | None:
    """The compiler named in the ELF's .comment section ("GCC: (...) 12.2.1", "clang 14")."""
    from elftools.elf.elffile import ELFFile

    try:
        with open(elf, "rb") as fh:
            section = ELFFile(fh).get_section_by_name(".comment")
            data = section.data() if section is not None else b""
    except Exception:  # noqa: BLE001 - a foreign ELF without it is fine
        return None
    for item in data.split(b"\0"):
        text = item.decode(errors="replace").strip()
        if text.startswith("GCC:"):
            return "gcc " + text.rsplit(" ", 1)[-1]
        if "clang version" in text:
            return "clang " + text.split("clang version", 1)[1].split()[0]
    return None


def _toolchain_label(record: dict) -> str | None:
    tc = record.get("toolchain")
    if isinstance(tc, dict):
        name = tc.get("name") or tc.get("kind") or ""
        version = tc.get("version") or ""
        label = tc.get("label") or f"{name} {version}".strip()
        return label or None
    return str(tc) if tc else None
