"""Find the cross toolchain for a board, derive its flags, and fingerprint what it executes.

A fingerprint names every binary a build runs (driver, compiler proper, assembler, linker,
objcopy) and every archive it links, with resolved path, version string and SHA-256. Its
``id`` goes into every cache key, so a changed compiler never reuses an old object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from hil import procs
from hil.boards import Board
from hil.errors import ToolchainError
from hil.fsutil import atomic_write, sha256_file
from hil.settings import current

TOOLCHAINS = ("gcc", "clang")

GCC_PREFIX = {"arm": "arm-none-eabi-", "riscv": "riscv64-unknown-elf-"}
GCC_PACKAGE = {"arm": "gcc-arm-none-eabi", "riscv": "gcc-riscv64-unknown-elf"}
CLANG_TARGET = {
    "thumbv7em-none-eabi": "thumbv7em-none-eabi",
    "thumbv7em-none-eabihf": "thumbv7em-none-eabihf",
    "thumbv7m-none-eabi": "thumbv7m-none-eabi",
    "riscv32imac-unknown-none-elf": "riscv32-unknown-none-elf",
}

# Flags every image is built with. Paths are mapped so no build directory leaks into
# objects; -ffunction/data-sections + --gc-sections keep images small.
COMMON_CFLAGS = (
    "-Os", "-g", "-std=c11", "-ffreestanding", "-ffunction-sections", "-fdata-sections",
    "-fno-common", "-Wall", "-Wextra", "-Werror",
)


@dataclass(frozen=True)
class Tool:
    """One executable or archive the build uses."""

    role: str
    path: str
    version: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class Toolchain:
    """A resolved, fingerprinted toolchain for one board's target."""

    name: str  # "gcc" | "clang"
    triple: str
    version: str  # short, e.g. "12.2.1"
    cc: str
    objcopy: str
    cpu_flags: tuple[str, ...]
    tools: tuple[Tool, ...]
    libraries: tuple[Tool, ...]
    link_libs: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        """What the firmware prints as its toolchain: 'gcc 12.2.1'."""
        return f"{self.name} {self.version}"

    @property
    def id(self) -> str:
        """SHA-256 over every tool's and library's identity: the cache key of the toolchain."""
        h = hashlib.sha256()
        for tool in (*self.tools, *self.libraries):
            h.update(f"{tool.role}\0{tool.path}\0{tool.version}\0{tool.sha256}\n".encode())
        h.update("\0".join(self.cpu_flags).encode())
        return h.hexdigest()

    def tool(self, role: str) -> Tool:
        return next(t for t in self.tools if t.role == role)

    def cflags(self) -> list[str]:
        return [*self.cpu_flags, *COMMON_CFLAGS]

    def ldflags(self) -> list[str]:
        flags = [*self.cpu_flags, "-nostdlib", "-nostartfiles", "-Wl,--gc-sections",
                 "-Wl,--build-id=none"]
        if self.name == "clang":
            flags.append("-fuse-ld=lld")
        return flags

    def fingerprint(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "triple": self.triple,
            "id": self.id,
            "tools": {t.role: t.as_dict() for t in self.tools},
            "libraries": {t.role: t.as_dict() for t in self.libraries},
        }


def cpu_flags(board: Board, toolchain: str) -> tuple[str, ...]:
    """The target-selection flags for ``board`` with ``toolchain`` (gcc or clang)."""
    flags: list[str] = []
    if toolchain == "clang":
        flags.append(f"--target={CLANG_TARGET[board.triple]}")
    if board.arch == "arm":
        flags += [f"-mcpu={board.cpu}", "-mthumb"]
        if board.fpu:
            flags.append(f"-mfpu={board.fpu}")
        flags.append(f"-mfloat-abi={board.float_abi}")
    else:
        assert board.march and board.mabi
        flags += [f"-march={board.march}", f"-mabi={board.mabi}", "-mcmodel=medany"]
        if toolchain == "clang":
            flags.append("-mno-relax")
        else:
            # GCC 12 follows ISA spec 20191213, where CSR instructions are the separate
            # Zicsr extension; 2.2 keeps them in I (as Clang 14 does) and still selects the
            # rv32imac/ilp32 multilib, which "-march=rv32imac_zicsr" would not.
            flags.append("-misa-spec=2.2")
    return tuple(flags)


def _which(name: str, package: str, what: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ToolchainError(
            f"{what} '{name}' was not found on PATH",
            hint=f"install it with: sudo apt-get install {package} (or run 'make demo', "
            "which installs every toolchain hil uses); 'hil doctor' lists all tools",
        )
    return path


def _run(args: list[str]) -> str:
    try:
        out = procs.run(args, capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"running '{' '.join(args)}' failed: {exc}") from exc
    return out.stdout.strip()


@lru_cache(maxsize=4096)
def _sha256_cached(path: str, mtime_ns: int, size: int, inode: int) -> str:
    return sha256_file(path)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, remembered per process while its size, mtime and inode stay."""
    st = os.stat(path)
    return _sha256_cached(os.fspath(path), st.st_mtime_ns, st.st_size, st.st_ino)


_BIG = 8 << 20  # files this large (compilers, libLLVM) are worth remembering across runs


def tool_sha256(path: str) -> str:
    """SHA-256 of a toolchain file; large ones are remembered in the cache directory by
    (path, size, mtime, inode), so every hil invocation does not rehash libLLVM."""
    st = os.stat(path)
    if st.st_size < _BIG:
        return file_sha256(path)
    from hil.paths import cache_dir

    key = hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}".encode())
    memo = cache_dir() / "toolhash" / key.hexdigest()[:32]
    try:
        digest = memo.read_text().strip()
        if len(digest) == 64:
            return digest
    except OSError:
        pass
    digest = file_sha256(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(memo, digest)
    except OSError:
        pass  # a read-only cache only costs time
    return digest


def _tool(role: str, path: str, version: str) -> Tool:
    real = os.path.realpath(path)
    return Tool(role, real, version, tool_sha256(real))


@lru_cache(maxsize=32)
def _first_line_version(path: str) -> str:
    return _run([path, "--version"]).splitlines()[0].strip()


@lru_cache(maxsize=32)
def resolve(board_triple: str, arch: str, name: str, flags: tuple[str, ...]) -> Toolchain:
    """Resolve and fingerprint toolchain ``name`` for a target: cached per process, and
    across runs in the cache directory while every file it names keeps its path, size,
    mtime and inode (so a hil run does not start ten compiler processes to learn what the
    last one learnt)."""
    if name not in TOOLCHAINS:
        raise ToolchainError(f"unknown toolchain '{name}'", hint="use gcc or clang")
    memo = _memo_path(board_triple, arch, name, flags)
    found = _load_memo(memo)
    if found is not None:
        return found
    toolchain = _resolve_fresh(board_triple, arch, name, flags)
    _save_memo(memo, toolchain)
    return toolchain


_MEMO_SCHEMA = 1
_LOOKED_UP = {"gcc": ("gcc", "as", "ld", "objcopy"), "clang": ("clang", "ld.lld", "llvm-objcopy")}


def _memo_path(board_triple: str, arch: str, name: str, flags: tuple[str, ...]) -> Path:
    """Where the resolution is remembered: keyed by target, flags and the programs the
    search path finds now (another PATH, another memo)."""
    from hil.paths import cache_dir

    prefix = GCC_PREFIX[arch]
    names = [prefix + "gcc"] + [n if name == "clang" else prefix + n for n in _LOOKED_UP[name]]
    found = [shutil.which(n) or "" for n in names]
    key = json.dumps([_MEMO_SCHEMA, board_triple, arch, name, list(flags), found])
    return cache_dir() / "toolchains" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _load_memo(memo: Path) -> Toolchain | None:
    try:
        data = json.loads(memo.read_text())
        files = data["files"]
        if any(_stat(path) != signature for path, signature in files.items()):
            return None
        tc = data["toolchain"]
        return Toolchain(tc["name"], tc["triple"], tc["version"], tc["cc"], tc["objcopy"],
                         tuple(tc["cpu_flags"]), tuple(Tool(**t) for t in tc["tools"]),
                         tuple(Tool(**t) for t in tc["libraries"]), tuple(tc["link_libs"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or from another version: resolve again


def _save_memo(memo: Path, tc: Toolchain) -> None:
    paths = [tc.cc, tc.objcopy, *(t.path for t in tc.tools + tc.libraries)]
    files = {p: _stat(p) for p in paths}
    data = {"files": files, "toolchain": {
        "name": tc.name, "triple": tc.triple, "version": tc.version, "cc": tc.cc,
        "objcopy": tc.objcopy, "cpu_flags": list(tc.cpu_flags),
        "tools": [dataclasses.asdict(t) for t in tc.tools],
        "libraries": [dataclasses.asdict(t) for t in tc.libraries],
        "link_libs": list(tc.link_libs)}}
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(memo, json.dumps(data))
    except OSError:
        pass  # a read-only cache only costs time


def _resolve_fresh(board_triple: str, arch: str, name: str,
                   flags: tuple[str, ...]) -> Toolchain:
    prefix = GCC_PREFIX[arch]
    gcc = _which(prefix + "gcc", GCC_PACKAGE[arch], "GCC cross compiler")
    gcc_flags = list(flags) if name == "gcc" else _gcc_flags(flags)
    gcc_libgcc = _run([gcc, *gcc_flags, "-print-libgcc-file-name"])
    if not os.path.isfile(gcc_libgcc):
        raise ToolchainError(
            f"libgcc for {' '.join(flags)} not found (gcc printed '{gcc_libgcc}')",
            hint=f"the multilib is missing: reinstall {GCC_PACKAGE[arch]}")
    libs = (_tool("libgcc", gcc_libgcc, _run([gcc, "-dumpversion"])),)
    if name == "gcc":
        cc1 = _run([gcc, "-print-prog-name=cc1"])
        as_ = _run([gcc, "-print-prog-name=as"])
        ld = _run([gcc, "-print-prog-name=ld"])
        if not os.path.isabs(as_):
            as_ = _which(as_ if "/" in as_ else prefix + "as", GCC_PACKAGE[arch], "assembler")
        if not os.path.isabs(ld):
            ld = _which(prefix + "ld", GCC_PACKAGE[arch], "linker")
        objcopy = _which(prefix + "objcopy", GCC_PACKAGE[arch].replace("gcc", "binutils"),
                         "objcopy")
        tools = (
            _tool("cc", gcc, _first_line_version(gcc)),
            _tool("cc1", cc1, _first_line_version(gcc)),
            _tool("as", as_, _first_line_version(as_)),
            _tool("ld", ld, _first_line_version(ld)),
            _tool("objcopy", objcopy, _first_line_version(objcopy)),
        )
        version = _run([gcc, "-dumpversion"])
        return Toolchain("gcc", board_triple, version, gcc, objcopy, flags, tools, libs,
                         ("-lgcc",))
    clang = _which("clang", "clang", "Clang compiler")
    lld = _which("ld.lld", "lld", "LLVM linker")
    objcopy = _which("llvm-objcopy", "llvm", "llvm-objcopy")
    clang_version = _first_line_version(clang)
    tools = (
        _tool("cc", clang, clang_version),
        # clang is its own compiler proper ('clang -cc1'): the same binary, resolved.
        _tool("cc1", clang, clang_version),
        _tool("as", clang, clang_version),  # integrated assembler
        _tool("ld", lld, _first_line_version(lld)),
        _tool("objcopy", objcopy, _first_line_version(objcopy).strip()),
    )
    version = _run([clang, "-dumpversion"])
    # clang's driver binary is small: the compiler proper lives in shared libraries
    shared = tuple(_tool(role, path, clang_version)
                   for role, path in _llvm_shared_libraries(os.path.realpath(clang)))
    return Toolchain("clang", board_triple, version, clang, objcopy, flags, tools,
                     libs + shared, (libs[0].path,))


def _llvm_shared_libraries(binary: str) -> list[tuple[str, str]]:
    """The libclang-cpp / libLLVM shared objects ``binary`` loads, as (role, path)."""
    try:
        out = procs.run(["ldd", binary], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in out.stdout.splitlines():
        name, _, rest = line.strip().partition(" => ")
        if name.startswith(("libclang-cpp", "libLLVM")) and rest:
            path = rest.split(" (")[0].strip()
            if os.path.isfile(path):
                found.append((name.split(".so")[0], path))
    return found


def _gcc_flags(clang_flags: tuple[str, ...]) -> list[str]:
    """The GCC multilib-selection flags matching clang's target flags."""
    out = [f for f in clang_flags if not f.startswith("--target") and f != "-mno-relax"]
    if any(f.startswith("-march=rv") for f in out):
        out.append("-misa-spec=2.2")
    return out


def for_board(board: Board, name: str = "gcc") -> Toolchain:
    """The toolchain ``name`` resolved for ``board``'s target."""
    if name not in TOOLCHAINS:
        raise ToolchainError(f"unknown toolchain '{name}'", hint="use --toolchain gcc or clang")
    return resolve(board.triple, board.arch, name, cpu_flags(board, name))


@dataclass(frozen=True)
class DoctorRow:
    tool: str
    purpose: str
    path: str | None
    version: str | None
    hint: str


DOCTOR_TOOLS = (
    ("arm-none-eabi-gcc", "GCC for Cortex-M boards", "apt-get install gcc-arm-none-eabi"),
    ("arm-none-eabi-objcopy", "objcopy for Cortex-M", "apt-get install binutils-arm-none-eabi"),
    ("riscv64-unknown-elf-gcc", "GCC for RISC-V boards",
     "apt-get install gcc-riscv64-unknown-elf"),
    ("riscv64-unknown-elf-objcopy", "objcopy for RISC-V",
     "apt-get install binutils-riscv64-unknown-elf"),
    ("clang", "Clang (--toolchain clang)", "apt-get install clang"),
    ("ld.lld", "LLVM linker for Clang builds", "apt-get install lld"),
    ("llvm-objcopy", "objcopy for Clang builds", "apt-get install llvm"),
    ("qemu-system-arm", "QEMU for Cortex-M boards (no hardware)",
     "apt-get install qemu-system-arm"),
    ("qemu-system-riscv32", "QEMU for RISC-V boards (no hardware)",
     "apt-get install qemu-system-misc"),
    ("pyocd", "SWD flashing of Cortex-M boards", "pip install pyocd (in pyproject.toml)"),
    ("openocd", "flashing RISC-V boards (J-Link)", "apt-get install openocd"),
    ("ser2net", "serving consoles to other hosts (RFC 2217)", "apt-get install ser2net"),
)


VERSION_FLAGS = {"ser2net": "-v"}


def doctor() -> list[DoctorRow]:
    """Every external tool hil may run: found or missing, version, how to install it."""

    # tools installed with hil's Python packages live next to its interpreter (.venv/bin)
    search = current().tool_path
    rows = []
    for name, purpose, hint in DOCTOR_TOOLS:
        path = shutil.which(name, path=search)
        version = None
        if path:
            try:
                out = procs.run([path, VERSION_FLAGS.get(name, "--version")],
                                     capture_output=True, text=True, timeout=20)
                text = (out.stdout or out.stderr).strip()
                version = text.splitlines()[0] if text else "?"
            except (OSError, subprocess.TimeoutExpired):
                version = "?"
        rows.append(DoctorRow(name, purpose, path, version, hint))
    return rows
