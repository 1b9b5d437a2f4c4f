"""Images from outside hil: the ELF of a Zephyr, PlatformIO, CMake or Make build directory,
the checks every foreign image passes against the board before anything runs or flashes it,
and the provenance recorded for it.

``--image`` and ``--build-dir`` of ``hil test``, ``hil flash`` and ``hil run`` all come
through :func:`foreign_image`, which resolves and checks without starting QEMU, taking a
lease or touching a probe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.boards import Board
from hil.errors import ConfigError, ImageError, UsageError
from hil.image import ELF_MAGIC, check_image_file, check_image_fits, read_image

#: ELF e_type of an executable (as opposed to ET_REL objects and ET_DYN shared objects).
ET_EXEC = 2
#: Directories of a build tree that hold compiler probes and objects, never the firmware.
_SKIP_DIRS = {"CMakeFiles", "CMakeScratch", "__pycache__"}
#: A plain build directory is searched this deep and this wide, no further.
_MAX_DEPTH = 4
_MAX_FILES = 20000


@dataclass(frozen=True)
class ForeignImage:
    """An image file given from outside, and what kind of build directory it came from."""

    path: Path
    kind: str  # "zephyr", "platformio", "cmake", "make", or "file" (--image)
    build_dir: Path | None = None
    format: str = ""  # "elf", "hex" or "bin" once checked


def foreign_image(board: Board, image: Path | None, build_dir: Path | None, *,
                  boot: bool = True) -> ForeignImage | None:
    """The image ``--image`` or ``--build-dir`` names, checked against ``board``; None when
    neither was given. ``boot``: the image must boot (test, run); a flash-only image may be a
    partial one with no data at the application start (then it has no vector table to check).
    Raises UsageError (both given), ConfigError (no such file, nothing or several
    candidates in the build directory) or ImageError (not for this board)."""
    if image is not None and build_dir is not None:
        raise UsageError("give either --image or --build-dir, not both")
    if build_dir is not None:
        found = resolve_build_dir(build_dir)
    elif image is not None:
        found = ForeignImage(Path(image), "file")
    else:
        return None
    fmt = check_foreign_image(board, found.path, boot=boot)
    return ForeignImage(found.path, found.kind, found.build_dir, fmt)


# ---------------------------------------------------------------- build directories

def resolve_build_dir(directory: Path) -> ForeignImage:
    """The firmware ELF of a build directory: ``zephyr/zephyr.elf`` (Zephyr),
    ``.pio/build/<env>/firmware.elf`` (PlatformIO; one env, or the env directory itself),
    else the one executable ELF of a CMake or Make build tree."""
    directory = Path(directory)
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise ConfigError(f"build directory {what}", path=directory,
                          hint="pass the directory your build wrote (for Zephyr, the one "
                          "holding zephyr/zephyr.elf)")
    for zephyr in (directory / "zephyr" / "zephyr.elf", directory / "zephyr.elf"):
        if zephyr.is_file() and (zephyr.parent.name == "zephyr"):
            return ForeignImage(zephyr, "zephyr", directory)
    pio = _platformio(directory)
    if pio is not None:
        return pio
    candidates = _executables(directory)
    kind = "cmake" if (directory / "CMakeCache.txt").is_file() else "make"
    if len(candidates) == 1:
        return ForeignImage(candidates[0], kind, directory)
    if not candidates:
        raise ConfigError(
            "no executable ELF file in the build directory (searched "
            f"{_MAX_DEPTH} levels deep, skipping CMakeFiles/ and hidden directories)",
            path=directory,
            hint="build the firmware first, or pass the image file itself with --image")
    listing = "\n".join(f"  {c.relative_to(directory)}" for c in candidates)
    raise ConfigError(
        f"{len(candidates)} executable ELF files in the build directory; which is the "
        f"firmware?\n{listing}", path=directory,
        hint=f"pass one with --image, e.g. --image {candidates[0]}")


def _platformio(directory: Path) -> ForeignImage | None:
    """A PlatformIO project (``.pio/build/<env>/``), its ``.pio/build``, or one env dir."""
    if directory.parent.name == "build" and directory.parent.parent.name == ".pio":
        if (directory / "firmware.elf").is_file():
            return ForeignImage(directory / "firmware.elf", "platformio", directory)
    if directory.name == "build" and directory.parent.name == ".pio":
        envs_dir = directory
    elif (directory / ".pio" / "build").is_dir():
        envs_dir = directory / ".pio" / "build"
    else:
        return None
    envs = sorted(p.parent for p in envs_dir.glob("*/firmware.elf") if p.is_file())
    if len(envs) == 1:
        return ForeignImage(envs[0] / "firmware.elf", "platformio", directory)
    if not envs:
        raise ConfigError(f"PlatformIO build directory {envs_dir} has no <env>/firmware.elf",
                          path=directory, hint="build it first: pio run -e ENV")
    names = ", ".join(e.name for e in envs)
    raise ConfigError(
        f"PlatformIO build directory has {len(envs)} environments ({names}); which one?",
        path=directory, hint=f"pass one: --build-dir {envs_dir / envs[0].name}")


def _executables(directory: Path) -> list[Path]:
    """Executable ELF files (ET_EXEC) under ``directory``, objects and shared objects not."""
    found: list[Path] = []
    seen = 0
    root_depth = len(directory.parts)
    for here, dirs, files in os.walk(directory):
        depth = len(Path(here).parts) - root_depth
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")
                         and depth < _MAX_DEPTH)
        for name in sorted(files):
            seen += 1
            if seen > _MAX_FILES:
                return found
            path = Path(here) / name
            if path.is_symlink() or not path.is_file():
                continue
            try:
                with open(path, "rb") as fh:
                    header = fh.read(18)
            except OSError:
                continue
            if header[:4] == ELF_MAGIC and len(header) == 18 and \
                    int.from_bytes(header[16:18], "little" if header[5] != 2 else "big") \
                    == ET_EXEC:
                found.append(path)
    return found


# ---------------------------------------------------------------- checks against the board

def check_foreign_image(board: Board, path: Path, *, boot: bool = True) -> str:
    """Check an image from outside against ``board`` before it runs or is flashed: the
    header checks of ``check_image_file`` (ELF machine, sizes), then every loadable segment
    lies in the board's flash (hil flashes and boots from flash: an image loaded into RAM
    is refused), and on Cortex-M the
    vector table at the application start has its initial stack pointer in RAM and its
    reset vector (Thumb bit set) in flash (unless ``boot`` is false and the image has no
    data there: a partial image, such as a data block written to a later sector). Returns
    "elf", "hex" or "bin"; raises ImageError naming the segment, the address and the
    board."""
    fmt = check_image_file(board, path)
    if fmt == "elf":
        segments = _load_segments(path)
        for seg in segments:
            _check_segment(board, path, seg)
        if board.arch == "arm":
            _check_vectors(board, path, _bytes_at(segments, board.app_start, 8), boot)
    elif fmt == "hex":
        ih = read_image(path)
        if not ih.segments():
            raise ImageError(f"image {path} holds no data")
        check_image_fits(board, ih, name=str(path))
        if board.arch == "arm":
            start = board.app_start
            have = any(a <= start and start + 8 <= b for a, b in ih.segments())
            _check_vectors(board, path, ih.tobinstr(start, start + 7) if have else None,
                           boot)
    elif board.arch == "arm":  # a .bin is written at the application start
        with open(path, "rb") as fh:
            head = fh.read(8)
        _check_vectors(board, path, head if len(head) == 8 else None, boot)
    return fmt


@dataclass(frozen=True)
class _Segment:
    index: int
    address: int  # load address (p_paddr, the LMA)
    size: int  # p_filesz
    sections: tuple[str, ...]
    data: bytes


def _load_segments(path: Path) -> list[_Segment]:
    """PT_LOAD segments that carry bytes (filesz > 0), by their load address."""
    from elftools.elf.elffile import ELFFile

    out = []
    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            sections = [s for s in elf.iter_sections() if s["sh_size"] and s["sh_type"] !=
                        "SHT_NOBITS"]
            for i, seg in enumerate(elf.iter_segments()):
                if seg["p_type"] != "PT_LOAD" or seg["p_filesz"] == 0:
                    continue
                names = tuple(s.name for s in sections if seg.section_in_segment(s))
                out.append(_Segment(i, int(seg["p_paddr"]), int(seg["p_filesz"]), names,
                                    seg.data()))
    except ImageError:
        raise
    except Exception as exc:  # pyelftools raises many kinds on bad input
        raise ImageError(f"{path}: not a readable ELF file: {exc}",
                         hint="pass a .hex or .elf image") from exc
    return out


def _segment_name(seg: _Segment) -> str:
    names = f" ({', '.join(seg.sections)})" if seg.sections else ""
    return f"segment {seg.index}{names}"


def _check_segment(board: Board, path: Path, seg: _Segment) -> None:
    end = seg.address + seg.size - 1
    where = f"{_segment_name(seg)} of {path.name} loads {seg.size} bytes at " \
            f"0x{seg.address:08X}..0x{end:08X}"
    region = board.region_at(seg.address)
    flash = ", ".join(f"{r.name} 0x{r.origin:08X}..0x{r.end - 1:08X}"
                      for r in board.flash_regions())
    hint = f"was the image built for board {board.name}? its flash is {flash}"
    if region is None or not region.contains(seg.address, seg.size):
        raise ImageError(f"{where}, outside the flash of board {board.name}", hint=hint)
    if not region.is_flash:  # hil flashes images and boots them from flash
        raise ImageError(f"{where}, in {region.kind} region {region.name} of board "
                         f"{board.name}, not in its flash: a flashed image cannot hold it",
                         hint="place code in flash and initialised data with "
                         "'> RAM AT > FLASH' so it loads from flash")
    if region is board.app_region and seg.address < board.app_start:
        raise ImageError(f"{where}, below the application start 0x{board.app_start:08X} "
                         f"of board {board.name}", hint=hint)


def _bytes_at(segments: list[_Segment], address: int, size: int) -> bytes | None:
    for seg in segments:
        if seg.address <= address and address + size <= seg.address + seg.size:
            off = address - seg.address
            return seg.data[off:off + size]
    return None


def _check_vectors(board: Board, path: Path, head: bytes | None, boot: bool = True) -> None:
    """Cortex-M boots from the vector table at the application start: word 0 is the initial
    stack pointer (in RAM, or its end), word 1 the reset handler (Thumb bit set, in flash)."""
    start = board.app_start
    if head is None and not boot:
        return  # a partial image written to flash only: nothing there to boot from
    if head is None:
        raise ImageError(f"{path.name} has no vector table at the application start "
                         f"0x{start:08X} of board {board.name}: a Cortex-M core boots from "
                         "the first two words there",
                         hint="link the vector table (.isr_vector / .vectors) first in flash "
                         f"at 0x{start:08X}")
    sp = int.from_bytes(head[0:4], "little")
    reset = int.from_bytes(head[4:8], "little")
    if not any(r.kind == "ram" and r.origin < sp <= r.end for r in board.regions):
        ram = ", ".join(f"{r.name} 0x{r.origin:08X}..0x{r.end - 1:08X}"
                        for r in board.regions if r.kind == "ram")
        raise ImageError(f"{path.name}: initial stack pointer 0x{sp:08X} (vector table word 0 "
                         f"at 0x{start:08X}) is not in the RAM of board {board.name} ({ram})",
                         hint="was the image built for this board? its linker script sets "
                         "the stack top (_estack / __StackTop)")
    if not reset & 1:
        raise ImageError(f"{path.name}: reset vector 0x{reset:08X} (vector table word 1 at "
                         f"0x{start + 4:08X}) has the Thumb bit clear; board {board.name} "
                         "would fault on reset", hint="is the vector table at the start of "
                         "the image? Cortex-M handler addresses are odd")
    handler = reset & ~1
    region = board.region_at(handler)
    if region is None or not region.is_flash:
        raise ImageError(f"{path.name}: reset vector 0x{reset:08X} (vector table word 1 at "
                         f"0x{start + 4:08X}) is not in the flash of board {board.name}",
                         hint="was the image built for this board?")


# ---------------------------------------------------------------- provenance

def external_record(board: Board, found: ForeignImage, artifacts: dict[str, Path],
                    app: str) -> dict[str, Any]:
    """A build record for an image hil did not build: what is known of it (file hashes,
    the compiler named in the ELF's ``.comment``, the kind of build directory)."""
    import hil
    from hil.fsutil import sha256_file

    elf = artifacts.get("elf")
    comment = elf_comment(elf) if elf is not None else []
    compiler = next((c for c in comment if c.startswith("GCC:") or "clang" in c), None)
    return {
        "external": True,
        "board": board.name,
        "board_file": str(board.path) if board.path else None,
        "board_sha256": board.sha256,
        "app": app,
        "source": {"kind": found.kind, "path": str(found.path.resolve()),
                   "build_dir": str(found.build_dir.resolve()) if found.build_dir else None},
        "toolchain": {"name": "external", "compiler": compiler, "comment": comment},
        "artifacts": {role: {"path": str(p), "sha256": sha256_file(p)}
                      for role, p in artifacts.items()},
        "hil_version": hil.__version__,
    }


def elf_comment(elf: Path) -> list[str]:
    """The strings of an ELF's ``.comment`` section (compilers and linkers that made it)."""
    from elftools.elf.elffile import ELFFile

    try:
        with open(elf, "rb") as fh:
            section = ELFFile(fh).get_section_by_name(".comment")
            data = section.data() if section is not None else b""
    except Exception:  # noqa: BLE001 - a foreign ELF without one is fine
        return []
    items = (i.decode(errors="replace").strip() for i in data.split(b"\0"))
    return list(dict.fromkeys(i for i in items if i))


def record_foreign(board: Board, found: ForeignImage, image: Any, app: str) -> Path | None:
    """Write a provenance statement next to the run's copy of a foreign image (``image``, a
    hil.image.Image already copied into the run's directory) and add the image to the audit
    store as an external build, unless the store knows a build of it already. Returns the
    statement's path, or None for an image hil built itself."""
    from hil import audit
    from hil.audit import provenance
    from hil.audit.store import open_store
    from hil.fsutil import sha256_file

    artifacts = {"hex": Path(image.hex)}
    if image.elf is not None:
        artifacts["elf"] = Path(image.elf)
    if found.format == "bin":
        artifacts["bin"] = Path(image.hex).parent / found.path.name
    with open_store() as store:
        known = store.build_of(image.sha256)
        if known is None and image.elf is not None:
            elf_sha = sha256_file(image.elf)
            known = next((store.build_of(img) for img, role in store.images_with_digest(elf_sha)
                          if role.startswith("artifact:")), None)
    if known is not None and not (known.payload.get("build") or {}).get("external"):
        return None  # hil built it: its own provenance stands
    record = external_record(board, found, artifacts, app)
    out_dir = Path(image.hex).parent
    if known is None:
        audit.on_build(out_dir, record)
    else:
        audit.write_provenance(out_dir, record)
    return out_dir / provenance.STATEMENT_FILE


def to_image(board: Board, found: ForeignImage, directory: Path) -> Any:
    """The checked foreign image as a hil.image.Image whose files are copies in
    ``directory`` (the run's own): an ELF converted to HEX, a BIN placed at the board's
    application start as HEX, a HEX as it is (with its ELF when one lies next to it)."""
    import shutil

    from intelhex import IntelHex

    from hil.image import Image

    directory.mkdir(parents=True, exist_ok=True)
    if found.format == "bin":
        bin_copy = directory / found.path.name
        shutil.copyfile(found.path, bin_copy)
        ih = IntelHex()
        ih.frombytes(bin_copy.read_bytes(), offset=board.app_start)
        hex_path = directory / f"{found.path.stem}.hex"
        ih.write_hex_file(str(hex_path))
        return Image.from_path(hex_path)
    return Image.from_path(found.path, work_dir=directory).copy_to(directory)


def app_name(found: ForeignImage, image: Any = None) -> str:
    """The name a foreign image runs under: its build record's app, else its build
    directory's name, else its file name."""
    if image is not None and getattr(image, "app", None):
        return str(image.app)
    if found.build_dir is not None:
        return found.build_dir.resolve().name
    return found.path.stem
