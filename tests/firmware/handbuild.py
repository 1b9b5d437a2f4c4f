"""Stand-in for ``hil.build.build`` while it does not exist: compiles an app by hand.

It follows the build contract (generated ``hil_board.h``, a linker script rendered from the
board's memory map, the compile and link flags of each toolchain) closely enough to test the
firmware. Only the tests use it, and only when ``hil.build`` cannot be imported.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from intelhex import IntelHex

from hil.boards import Board

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "hil" / "runtime"

CONSOLE_MACROS = {
    "stm32-usart": "HIL_CONSOLE_STM32_USART",
    "sifive-uart": "HIL_CONSOLE_SIFIVE_UART",
    "pl011": "HIL_CONSOLE_PL011",
}
LED_MACROS = {
    "stm32f4-gpio": "HIL_LED_STM32F4_GPIO",
    "sifive-gpio": "HIL_LED_SIFIVE_GPIO",
    "stellaris-gpio": "HIL_LED_STELLARIS_GPIO",
}
CPU_MACROS = {
    "cortex-m4": "HIL_CPU_CORTEX_M4",
    "cortex-m3": "HIL_CPU_CORTEX_M3",
    "sifive-e31": "HIL_CPU_RV32IMAC",
}
COMMON_CFLAGS = [
    "-Os", "-g", "-std=c11", "-ffreestanding", "-ffunction-sections", "-fdata-sections",
    "-fno-common", "-Wall", "-Wextra", "-Werror",
]


@dataclass(frozen=True)
class HandBuilt:
    elf: Path
    hex: Path
    bin: Path


def _size(text: object, default: int) -> int:
    if text is None:
        return default
    if isinstance(text, int):
        return text
    s = str(text).strip().upper()
    for suffix, mult in (("K", 1024), ("M", 1024 * 1024)):
        if s.endswith(suffix):
            return int(s[:-1], 0) * mult
    return int(s, 0)


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}")


def _version(cmd: list[str]) -> str:
    out = subprocess.run(cmd + ["-dumpversion"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def board_header(board: Board, app: dict, toolchain: str, tool_version: str) -> str:
    ram = board.ram_region
    lines = [
        "/* generated */",
        "#ifndef HIL_BOARD_H",
        "#define HIL_BOARD_H",
        f'#define HIL_BOARD_NAME "{board.name}"',
        f'#define HIL_APP_NAME "{app["name"]}"',
        f'#define HIL_APP_VERSION "{app.get("version", "0.0.0")}"',
        f'#define HIL_TOOLCHAIN "{toolchain} {tool_version}"',
        f"#define HIL_ARCH_{board.arch.upper()} 1",
        f"#define {CPU_MACROS[board.cpu]} 1",
        f"#define HIL_CPU_CLOCK_HZ {board.cpu_clock_hz}u",
        f"#define {CONSOLE_MACROS[board.console.driver]} 1",
        f"#define HIL_CONSOLE_BASE 0x{board.console.base:08X}u",
        f"#define HIL_CONSOLE_BAUD {board.console.baud}u",
        f"#define HIL_CONSOLE_CLOCK_HZ {board.console.clock_hz}u",
    ]
    if board.led is not None:
        lines += [
            f"#define {LED_MACROS[board.led.driver]} 1",
            f"#define HIL_LED_BASE 0x{board.led.base:08X}u",
            f"#define HIL_LED_PIN {board.led.pin}u",
            f"#define HIL_LED_ACTIVE_LOW {int(board.led.active_low)}",
        ]
    lines += [
        f"#define HIL_APP_START 0x{board.app_start:08X}u",
        f"#define HIL_RAM_ORIGIN 0x{ram.origin:08X}u",
        f"#define HIL_RAM_LENGTH 0x{ram.length:X}u",
        "#endif",
        "",
    ]
    return "\n".join(lines)


def linker_script(board: Board, stack: int, heap: int) -> str:
    flash = board.app_region
    ram = board.ram_region
    start = board.app_start
    arm = board.arch == "arm"
    first = "KEEP(*(.vectors))" if arm else "KEEP(*(.text.init))"
    entry = "Reset_Handler" if arm else "_start"
    return f"""ENTRY({entry})
MEMORY
{{
  FLASH (rx) : ORIGIN = 0x{start:08X}, LENGTH = 0x{flash.end - start:X}
  RAM (rwx) : ORIGIN = 0x{ram.origin:08X}, LENGTH = 0x{ram.length:X}
}}
SECTIONS
{{
  .text : {{ {first} *(.text .text.*) . = ALIGN(4); }} > FLASH
  .rodata : {{ *(.rodata .rodata.* .srodata .srodata.*) . = ALIGN(4); }} > FLASH
  .ARM.exidx : {{ *(.ARM.exidx .ARM.exidx.*) }} > FLASH
  .data : {{ . = ALIGN(4); _sdata = .; *(.data .data.* .sdata .sdata.*) . = ALIGN(4); _edata = .; }} > RAM AT > FLASH
  _sidata = LOADADDR(.data);
  .bss (NOLOAD) : {{ . = ALIGN(4); _sbss = .; *(.bss .bss.* .sbss .sbss.* COMMON) . = ALIGN(4); _ebss = .; }} > RAM
  .noinit (NOLOAD) : {{ *(.noinit .noinit.*) }} > RAM
  .heap (NOLOAD) : {{ . = ALIGN(8); _sheap = .; . += {heap}; _eheap = .; }} > RAM
  .stack (NOLOAD) : {{ . = ALIGN(8); _sstack = .; . += {stack}; }} > RAM
  _estack = ORIGIN(RAM) + LENGTH(RAM);
  __global_pointer$ = _sdata + 0x800;
}}
"""


def _toolchain(board: Board, toolchain: str) -> tuple[list[str], list[str], list[str]]:
    """(compiler command with target flags, extra link flags, libgcc args)."""
    if board.arch == "arm":
        cpu = ["-mcpu=" + board.cpu, "-mthumb"]
        if board.float_abi == "hard":
            cpu += ["-mfpu=" + (board.fpu or "fpv4-sp-d16"), "-mfloat-abi=hard"]
        else:
            cpu += ["-mfloat-abi=soft"]
        gcc = ["arm-none-eabi-gcc", *cpu]
        if toolchain == "gcc":
            return gcc, [], ["-lgcc"]
        libgcc = subprocess.run(gcc + ["-print-libgcc-file-name"], capture_output=True,
                                text=True, check=True).stdout.strip()
        return ["clang", "--target=" + board.triple, *cpu], ["-fuse-ld=lld"], [libgcc]
    rv = ["-march=rv32imac", "-mabi=ilp32", "-mcmodel=medany"]
    gcc = ["riscv64-unknown-elf-gcc", *rv]
    if toolchain == "gcc":
        return gcc, [], ["-lgcc"]
    libgcc = subprocess.run(gcc[:3] + ["-print-libgcc-file-name"], capture_output=True,
                            text=True, check=True).stdout.strip()
    return (["clang", "--target=riscv32-unknown-none-elf", *rv, "-mno-relax"],
            ["-fuse-ld=lld"], [libgcc])


def hand_build(board: Board, app_dir: Path, toolchain: str, out: Path) -> HandBuilt:
    """Compile and link app_dir for board into out; return the image paths."""
    app_dir = app_dir.resolve()
    app = yaml.safe_load((app_dir / "app.yaml").read_text())
    out.mkdir(parents=True, exist_ok=True)
    cc, ldflags, libgcc = _toolchain(board, toolchain)
    gen = out / "gen"
    gen.mkdir(exist_ok=True)
    (gen / "hil_board.h").write_text(board_header(board, app, toolchain, _version(cc[:1])))
    stack = _size(app.get("stack"), board.stack_size)
    heap = _size(app.get("heap"), board.heap_size)
    (out / "firmware.ld").write_text(linker_script(board, stack, heap))

    sources: list[Path] = sorted(RUNTIME_DIR.glob("*.c")) + sorted(RUNTIME_DIR.glob("*.S"))
    for pattern in app.get("sources", ["*.c", "*.S"]):
        sources += sorted(app_dir.glob(pattern))
    includes = [RUNTIME_DIR, app_dir] + [app_dir / d for d in app.get("include", [])] + [gen]
    inc_flags = [f"-I{p}" for p in includes]
    objects = []
    for i, src in enumerate(sources):
        obj = out / f"{i:02d}_{src.stem}.o"
        # compile from the source's directory with a relative name: no absolute paths leak
        _run(cc + COMMON_CFLAGS + inc_flags + ["-c", src.name, "-o", str(obj)], cwd=src.parent)
        objects.append(str(obj))
    elf = out / "firmware.elf"
    _run(cc + ldflags + ["-nostdlib", "-nostartfiles", "-Wl,--gc-sections",
                         "-T", str(out / "firmware.ld"), "-o", str(elf), *objects, *libgcc])
    objcopy = "arm-none-eabi-objcopy" if board.arch == "arm" else "riscv64-unknown-elf-objcopy"
    bin_path = out / "firmware.bin"
    _run([objcopy, "-O", "binary", str(elf), str(bin_path)])
    hex_path = out / "firmware.hex"
    ih = IntelHex()
    ih.loadbin(str(bin_path), offset=board.app_start)
    ih.write_hex_file(str(hex_path))
    return HandBuilt(elf=elf, hex=hex_path, bin=bin_path)
