"""Crash reports: parse a firmware ``FAULT`` line or a QEMU lockup dump, and map the PC to code.

The firmware's fault handlers (hil/runtime/fault_*.c) print one line:

    FAULT BusFault CFSR=00008200 HFSR=00000000 MMFAR=00000000 BFAR=fffffff0 PC=080007be ...
    FAULT trap mcause=00000005 mepc=2001095e mtval=fffffff0 ra=2001096c

QEMU ends a Cortex-M that cannot take its HardFault with ``qemu: fatal: Lockup: ...`` and a
register dump (R00..R15, XPSR) on stderr. Both become a ``Crash``; ``Symbolizer`` turns its PC
into ``function`` and ``file:line`` with the ELF's symbol table and DWARF line table.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from hil.errors import TestFailure

FAULT_LINE = re.compile(r"^FAULT\s+(?P<name>\S+)(?P<regs>(?:\s+[A-Za-z0-9_]+=[0-9a-fA-F]+)*)\s*$")
_REG = re.compile(r"([A-Za-z][A-Za-z0-9_]*)=([0-9a-fA-F]+)")
LOCKUP = re.compile(r"qemu: fatal: (?P<what>.*)")
# The keys that hold the faulting PC and the return address, by report kind.
_PC_KEYS = ("PC", "mepc", "R15")
_RA_KEYS = ("LR", "ra", "R14")


@dataclass(frozen=True)
class Location:
    """Where an address lies in the image: function (+offset) and source line, when known."""

    address: int
    function: str | None = None
    offset: int = 0
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        text = f"0x{self.address:08x}"
        if self.function:
            text += f" in {self.function}+0x{self.offset:x}"
        if self.file:
            text += f" at {self.file}:{self.line}" if self.line else f" at {self.file}"
        return text


@dataclass(frozen=True)
class Crash:
    """One crash: its kind (fault name, ``trap`` or ``lockup``), registers and decoded PC."""

    kind: str
    registers: dict[str, int]
    source: str  # "firmware" (FAULT line) or "emulator" (QEMU lockup dump)
    raw: str
    pc_location: Location | None = None
    lr_location: Location | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pc(self) -> int | None:
        return next((self.registers[k] for k in _PC_KEYS if k in self.registers), None)

    @property
    def return_address(self) -> int | None:
        return next((self.registers[k] for k in _RA_KEYS if k in self.registers), None)

    @property
    def function(self) -> str | None:
        return self.pc_location.function if self.pc_location else None

    def symbolized(self, elf: Path | None) -> Crash:
        """A copy with PC and return address decoded through ``elf`` (unchanged if None)."""
        if elf is None or not Path(elf).is_file():
            return self
        sym = Symbolizer.for_elf(Path(elf))
        pc, ra = self.pc, self.return_address
        return replace(self,
                       pc_location=sym.locate(pc) if pc is not None else None,
                       lr_location=sym.locate(ra) if ra is not None else None)

    def describe(self) -> str:
        """One or two lines for humans: what crashed and where."""
        head = {"firmware": "firmware fault", "emulator": "emulator"}.get(self.source, "crash")
        text = f"{head}: {self.kind}"
        if self.pc_location is not None:
            text += f" at PC {self.pc_location}"
        elif self.pc is not None:
            text += f" at PC 0x{self.pc:08x}"
        if self.lr_location is not None and self.lr_location.function:
            text += f"\n  called from {self.lr_location}"
        regs = " ".join(f"{k}={v:08x}" for k, v in self.registers.items()
                        if k not in _PC_KEYS + _RA_KEYS and not re.fullmatch(r"R\d+", k))
        if regs:
            text += f"\n  {regs}"
        return text


class CrashError(TestFailure):
    """The firmware crashed (FAULT line) or the emulator locked up: a test failure, not a
    timeout. ``crash`` holds the registers and the decoded PC."""

    def __init__(self, crash: Crash, *, transcript: Path | None = None,
                 last_lines: list[str] | None = None) -> None:
        text = crash.describe()
        if crash.source == "emulator" and crash.extra.get("message"):
            text += f"\n  qemu: {crash.extra['message']}"
        for line in last_lines or ():
            text += f"\n    | {line}"
        if transcript:
            text += f"\n  transcript: {transcript}"
        super().__init__(text)
        self.crash = crash
        self.transcript = transcript

    @property
    def function(self) -> str | None:
        return self.crash.function


def parse_fault_line(line: str) -> Crash | None:
    """A firmware ``FAULT ...`` line as a Crash, or None if the line is not one."""
    m = FAULT_LINE.match(line.strip())
    if not m:
        return None
    regs = {k: int(v, 16) for k, v in _REG.findall(m.group("regs"))}
    return Crash(kind=m.group("name"), registers=regs, source="firmware", raw=line.strip())


def parse_qemu_fatal(text: str) -> Crash | None:
    """QEMU's ``qemu: fatal:`` message and register dump (stderr text) as a Crash."""
    m = LOCKUP.search(text)
    if not m:
        return None
    what = m.group("what").strip()
    dump = text[m.end():]
    regs: dict[str, int] = {}
    for key, value in _REG.findall(dump):
        if re.fullmatch(r"R\d\d", key):
            regs[f"R{int(key[1:])}"] = int(value, 16)
        elif key in ("XPSR", "PC", "pc", "mepc", "mcause", "mtval"):
            regs[key] = int(value, 16)
    kind = "lockup" if what.lower().startswith("lockup") else "fatal"
    return Crash(kind=kind, registers=regs, source="emulator", raw=text[m.start():].strip(),
                 extra={"message": what})


class Symbolizer:
    """Address -> function and file:line for one ELF (pyelftools; loaded once per file)."""

    def __init__(self, elf: Path) -> None:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        self.elf = elf
        funcs: list[tuple[int, int, str]] = []
        lines: list[tuple[int, str, int]] = []
        with open(elf, "rb") as fh:
            ef = ELFFile(fh)
            self.is_arm = ef["e_machine"] == "EM_ARM"
            for section in ef.iter_sections():
                if not isinstance(section, SymbolTableSection):
                    continue
                for s in section.iter_symbols():
                    if s["st_info"]["type"] == "STT_FUNC" and s.name:
                        addr = s["st_value"] & ~1 if self.is_arm else s["st_value"]
                        funcs.append((addr, max(int(s["st_size"]), 1), s.name))
            if ef.has_dwarf_info():
                dwarf = ef.get_dwarf_info()
                for cu in dwarf.iter_CUs():
                    prog = dwarf.line_program_for_CU(cu)
                    if prog is None:
                        continue
                    header = prog.header
                    files = header["file_entry"]
                    dirs = header["include_directory"]
                    version = header["version"]
                    for entry in prog.get_entries():
                        st = entry.state
                        if st is None or st.end_sequence:
                            continue
                        index = st.file if version >= 5 else st.file - 1
                        if not 0 <= index < len(files):
                            continue
                        fe = files[index]
                        name = fe.name.decode(errors="replace")
                        dir_index = fe.dir_index if version >= 5 else fe.dir_index - 1
                        if "/" not in name and 0 <= dir_index < len(dirs):
                            name = dirs[dir_index].decode(errors="replace") + "/" + name
                        lines.append((st.address, name, st.line))
        funcs.sort()
        lines.sort(key=lambda t: t[0])
        self._funcs = funcs
        self._func_starts = [f[0] for f in funcs]
        self._lines = lines
        self._line_addrs = [x[0] for x in lines]

    @staticmethod
    @lru_cache(maxsize=32)
    def _cached(path: str, mtime: float) -> Symbolizer:
        return Symbolizer(Path(path))

    @classmethod
    def for_elf(cls, elf: Path) -> Symbolizer:
        return cls._cached(str(elf), elf.stat().st_mtime)

    def locate(self, address: int) -> Location:
        addr = address & ~1 if self.is_arm else address
        function, offset = None, 0
        i = bisect.bisect_right(self._func_starts, addr) - 1
        if i >= 0:
            start, size, name = self._funcs[i]
            if start <= addr < start + size:
                function, offset = name, addr - start
        file, line = None, None
        j = bisect.bisect_right(self._line_addrs, addr) - 1
        if j >= 0 and function is not None and self._lines[j][0] >= addr - offset:
            _, file, line = self._lines[j]
        return Location(address, function, offset, file, line)
