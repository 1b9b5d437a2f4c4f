"""Helpers of the run/test tests (a module with its own name: ``conftest`` is ambiguous
when several test directories are collected in one run)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from hil.image import Image

BOARDS = ["nucleo-f4", "nucleo-f446re", "lm3s6965evb", "hifive1-revb"]


def write_app(directory: Path, main_c: str, name: str | None = None) -> Path:
    """A one-file firmware app in ``directory`` (built with hil's runtime)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.c").write_text(main_c)
    (directory / "app.yaml").write_text(f"name: {name or directory.name}\nversion: 0.1.0\n")
    return directory


def bad_stack_image(image: Image, out: Path) -> Image:
    """``image`` with its initial stack pointer moved to unmapped memory: the first push
    faults, the fault cannot be stacked, and a Cortex-M locks up."""
    from intelhex import IntelHex

    ih = IntelHex(str(image.hex))
    start = ih.minaddr()
    ih.puts(start, struct.pack("<I", 0x30000000))
    ih.write_hex_file(str(out))
    return Image(hex=out, elf=image.elf, sha256="", toolchain=image.toolchain, app="bad-stack")


def qemu_pids_for(path: Path) -> list[int]:
    """PIDs of live processes whose command line mentions ``path`` (a /proc scan)."""
    pids = []
    needle = str(path).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and b"qemu-system" in cmdline and state != b"Z":
            pids.append(int(entry))
    return pids
