"""Board facts live in board files (issue 12, item 4): the console's pins, alternate function
and clock gates, the LED's port and clock gate and the RISC-V timer come from the board file
through hil_board.h, and the C runtime holds no board address of its own.

The drivers' register writes are checked by compiling the real runtime drivers for the host
with HIL_REG32 pointed at a register file that records every access."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hil.app import load_app
from hil.boards import Board, load_board, load_board_file
from hil.build import board_header, build
from hil.errors import ConfigError
from hil.toolchain import for_board

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "hil" / "runtime"
F405 = ROOT / "tests" / "fixtures" / "boards" / "f405-usart3.yaml"
SHELL = ROOT / "firmware_examples" / "shell"


def macros(header: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+) (.+)$", header, re.MULTILINE))


def header_of(board: Board) -> str:
    return board_header(board, load_app(SHELL), for_board(board, "gcc"))


# --------------------------------------------------------------------------- hil_board.h


def test_header_carries_the_console_pins_and_clock_gates_of_a_yaml_only_board():
    m = macros(header_of(load_board_file(F405)))
    assert m["HIL_CONSOLE_STM32_USART"] == "1"
    assert m["HIL_CONSOLE_BASE"] == "0x40004800u"  # USART3
    assert (m["HIL_CONSOLE_CLKEN_REG"], m["HIL_CONSOLE_CLKEN_BIT"]) == ("0x40023840u", "18u")
    assert m["HIL_CONSOLE_PORT"] == "0x40020400u"  # GPIOB
    assert (m["HIL_CONSOLE_TX_PIN"], m["HIL_CONSOLE_RX_PIN"]) == ("10u", "11u")
    assert m["HIL_CONSOLE_AF"] == "7u"
    assert (m["HIL_CONSOLE_PORT_CLKEN_REG"], m["HIL_CONSOLE_PORT_CLKEN_BIT"]) == \
        ("0x40023830u", "1u")
    assert not any(name.startswith(("HIL_LED_", "HIL_TIMER_")) for name in m)


def test_header_carries_the_led_and_the_riscv_timer():
    f4 = macros(header_of(load_board("nucleo-f4")))
    assert (f4["HIL_LED_BASE"], f4["HIL_LED_PIN"]) == ("0x40020000u", "5u")
    assert (f4["HIL_LED_CLKEN_REG"], f4["HIL_LED_CLKEN_BIT"]) == ("0x40023830u", "0u")
    lm3s = macros(header_of(load_board("lm3s6965evb")))
    assert (lm3s["HIL_LED_CLKEN_REG"], lm3s["HIL_LED_CLKEN_BIT"]) == ("0x400FE108u", "5u")
    hifive = macros(header_of(load_board("hifive1-revb")))
    assert hifive["HIL_TIMER_MTIME"] == "0x0200BFF8u"
    assert hifive["HIL_TIMER_HZ"] == "32768u"
    # 32768 Hz is a power of two: ms = ticks * 1000 >> 15, exactly
    assert (hifive["HIL_TIMER_MS_MUL"], hifive["HIL_TIMER_MS_SHIFT"]) == ("1000u", "15")
    assert "HIL_CONSOLE_CLKEN_REG" not in hifive  # the FE310 UART has no clock gate


def test_header_carries_the_console_receive_interrupt():
    """console.irq becomes HIL_CONSOLE_IRQ (NVIC IRQ or PLIC source); the PLIC's address
    comes along on the FE310; a board without irq gets neither (the runtime polls)."""
    f4 = macros(header_of(load_board("nucleo-f4")))
    assert f4["HIL_CONSOLE_IRQ"] == "38u" and "HIL_PLIC_BASE" not in f4  # USART2
    assert macros(header_of(load_board("nucleo-f446re")))["HIL_CONSOLE_IRQ"] == "38u"
    assert macros(header_of(load_board("lm3s6965evb")))["HIL_CONSOLE_IRQ"] == "5u"  # UART0
    hifive = macros(header_of(load_board("hifive1-revb")))
    assert (hifive["HIL_CONSOLE_IRQ"], hifive["HIL_PLIC_BASE"]) == ("3u", "0x0C000000u")
    f405 = macros(header_of(load_board_file(F405)))
    assert "HIL_CONSOLE_IRQ" not in f405 and "HIL_PLIC_BASE" not in f405


@pytest.mark.parametrize("hz", [pytest.param(1_000_000, id="1MHz"),
                                pytest.param(10_000_000, id="10MHz-qemu"),
                                pytest.param(100_000_000, id="100MHz-max"),
                                pytest.param(32768, id="32768Hz")])
def test_timer_scale_converts_ticks_to_milliseconds(hz, tmp_path):
    data = yaml.safe_load((ROOT / "boards" / "hifive1-revb.yaml").read_text())
    data["timer"]["hz"] = hz
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(data))
    m = macros(header_of(load_board_file(path)))
    mul, shift = int(m["HIL_TIMER_MS_MUL"].rstrip("u")), int(m["HIL_TIMER_MS_SHIFT"])
    for seconds in (1, 3600, 86400 * 40):  # up to 40 days: below the 32-bit ms wrap
        ticks = hz * seconds
        exact = seconds * 1000
        error = exact * hz / (2000 * (1 << 32)) + 1  # mul's rounding, and the floor
        assert ((ticks * mul) % (1 << 64)) >> shift == pytest.approx(exact, abs=error)


def test_runtime_c_holds_no_board_address():
    """Every 32-bit constant left in the runtime's C is in the Armv7-M System Control Space
    (SCB, SysTick: part of the CPU core, not of a board)."""
    found = []
    for path in sorted(RUNTIME.glob("*.[chS]")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for literal in re.findall(r"0x([0-9A-Fa-f]{5,8})", line):
                if not 0xE000E000 <= int(literal, 16) <= 0xE000EFFF:
                    found.append(f"{path.name}:{n}: {line.strip()}")
    assert found == []


# --------------------------------------------------------------------------- the drivers

HARNESS = r"""
#include <stdio.h>
#include "hil.h"

static uint32_t addrs[64], values[64];
static unsigned used;

volatile uint32_t *hil_test_reg(uint32_t addr)
{
    for (unsigned i = 0; i < used; i++) {
        if (addrs[i] == addr) {
            return &values[i];
        }
    }
    if (used == 64) {
        fprintf(stderr, "too many registers\n");
        return NULL;
    }
    addrs[used] = addr;
    return &values[used++];
}

int main(void)
{
    hil_console_init();
    hil_led_init();
#ifdef HARNESS_RX_IRQ
    hil_console_rx_irq_enable();
#endif
    for (unsigned i = 0; i < used; i++) {
        printf("%08x %08x\n", (unsigned)addrs[i], (unsigned)values[i]);
    }
    return 0;
}
"""


def registers_after_init(board: Board, tmp_path: Path, *, rx_irq: bool = False) -> dict[int, int]:
    """Run the runtime's console and LED init for ``board`` on the host (then, with
    ``rx_irq``, the console's receive-interrupt enable); the registers they leave behind, all
    starting at 0 (as on reset, and as QEMU reads unmodelled ones)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler")
    (tmp_path / "hil_board.h").write_text(header_of(board))
    (tmp_path / "harness.c").write_text(HARNESS)
    sources = [tmp_path / "harness.c", RUNTIME / "led.c",
               *sorted(RUNTIME.glob("console_*.c"))]
    decl = tmp_path / "decl.h"
    decl.write_text("#include <stdint.h>\nvolatile uint32_t *hil_test_reg(uint32_t addr);\n")
    exe = tmp_path / "harness"
    subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror",
                    "-DHIL_REG32(a)=(*hil_test_reg((uint32_t)(a)))", "-include", str(decl),
                    *(["-DHARNESS_RX_IRQ"] if rx_irq else []),
                    f"-I{tmp_path}", f"-I{RUNTIME}", *map(str, sources), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {int(a, 16): int(v, 16) for a, v in (line.split() for line in out.splitlines())}


def field(value: int, shift: int, width: int) -> int:
    return (value >> shift) & ((1 << width) - 1)


def test_stm32_usart_console_on_usart3_pb10_pb11_from_yaml_alone(tmp_path):
    regs = registers_after_init(load_board_file(F405), tmp_path)
    assert regs[0x40023840] == 1 << 18  # RCC_APB1ENR: USART3EN only
    assert regs[0x40023830] == 1 << 1  # RCC_AHB1ENR: GPIOBEN only
    moder = regs[0x40020400]
    assert field(moder, 20, 2) == 0b10 and field(moder, 22, 2) == 0b10  # PB10, PB11: AF mode
    assert moder & ~(0xF << 20) == 0
    afrh = regs[0x40020424]
    assert field(afrh, 8, 4) == 7 and field(afrh, 12, 4) == 7  # PB10, PB11: AF7
    assert afrh & ~(0xFF << 8) == 0
    assert 0x40020000 not in regs and 0x40020020 not in regs  # GPIOA untouched
    assert regs[0x40004808] == 139  # USART3 BRR: 16 MHz / 115200, rounded
    assert regs[0x4000480C] == (1 << 13) | (1 << 3) | (1 << 2)  # CR1: UE | TE | RE


def test_nucleo_console_and_led_registers_are_as_before_the_move(tmp_path):
    """The values the drivers wrote when PA2/PA3 and PA5 were written in C."""
    regs = registers_after_init(load_board("nucleo-f4"), tmp_path)
    assert regs[0x40023840] == 1 << 17  # USART2EN
    assert regs[0x40023830] == 1 << 0  # GPIOAEN
    # MODER: PA2/PA3 alternate function (0xA << 4), PA5 output (1 << 10)
    assert regs[0x40020000] == (0xA << 4) | (1 << 10)
    assert regs[0x40020020] == 0x77 << 8  # AFRL: PA2, PA3 = AF7
    assert regs[0x40020018] == 1 << (5 + 16)  # BSRR: LED off (reset PA5)
    assert regs[0x40004408] == 139


def test_stellaris_console_and_led_registers(tmp_path):
    regs = registers_after_init(load_board("lm3s6965evb"), tmp_path)
    assert regs[0x400FE104] == 1 << 0  # RCGC1: UART0
    assert regs[0x400FE108] == (1 << 0) | (1 << 5)  # RCGC2: GPIOA (console), GPIOF (LED)
    assert regs[0x40004420] == 0x3 and regs[0x4000451C] == 0x3  # PA0/PA1: AFSEL, DEN
    assert regs[0x40025400] == 1 and regs[0x4002551C] == 1  # PF0: DIR, DEN


def test_sifive_console_pins_go_to_iof0(tmp_path):
    regs = registers_after_init(load_board("hifive1-revb"), tmp_path)
    assert regs[0x10012038] == (1 << 16) | (1 << 17)  # IOF_EN: UART0 pins (and not the LED)
    assert regs[0x1001203C] == 0  # IOF_SEL: IOF0
    assert regs[0x10013018] == 138  # DIV: 16 MHz / 115200 - 1


@pytest.mark.parametrize(("board_name", "register", "value"), [
    pytest.param("nucleo-f4", 0x4000440C, (1 << 13) | (1 << 5) | (1 << 3) | (1 << 2),
                 id="stm32-usart-cr1-rxneie"),  # UE | RXNEIE | TE | RE
    pytest.param("lm3s6965evb", 0x4000C038, (1 << 4) | (1 << 6),
                 id="pl011-imsc-rx-and-timeout"),  # RXIM | RTIM: a lone byte interrupts too
    pytest.param("hifive1-revb", 0x10013010, 1 << 1, id="sifive-ie-rxwm"),
])
def test_console_receive_interrupt_enable(board_name, register, value, tmp_path):
    (tmp_path / "init").mkdir()
    (tmp_path / "irq").mkdir()
    before = registers_after_init(load_board(board_name), tmp_path / "init")
    after = registers_after_init(load_board(board_name), tmp_path / "irq", rx_irq=True)
    assert after[register] == value
    assert {a: v for a, v in after.items() if a != register} == \
        {a: v for a, v in before.items() if a != register}


# --------------------------------------------------------------------------- builds


@pytest.mark.slow
@pytest.mark.parametrize("toolchain", ["gcc", "clang"])
def test_yaml_only_board_builds_the_shell(toolchain, tmp_path):
    board = load_board_file(F405)
    result = build(board, SHELL, toolchain=toolchain, out=tmp_path / "out")
    assert result.hex.is_file()
    assert macros((tmp_path / "out" / "hil_board.h").read_text())["HIL_CONSOLE_BASE"] == \
        "0x40004800u"


# --------------------------------------------------------------------------- schema errors

BASE = yaml.safe_load(F405.read_text())
HIFIVE = yaml.safe_load((ROOT / "boards" / "hifive1-revb.yaml").read_text())
LM3S = yaml.safe_load((ROOT / "boards" / "lm3s6965evb.yaml").read_text())


def _pins(**kv):
    return lambda d: d["console"]["pins"].update(kv)


INVALID = [
    pytest.param(BASE, lambda d: d["console"].pop("pins"),
                 "console.pins: is required for driver stm32-usart", id="stm32-without-pins"),
    pytest.param(BASE, lambda d: d["console"].pop("clock_enable"),
                 "console.clock_enable: is required for driver stm32-usart",
                 id="stm32-without-clock-gate"),
    pytest.param(BASE, _pins(tx=16), "console.pins.tx: must be at most 15, got 16",
                 id="stm32-pin-16"),
    pytest.param(BASE, _pins(rx=-1), "console.pins.rx: must be at least 0", id="negative-pin"),
    pytest.param(BASE, _pins(af=16), "console.pins.af: must be at most 15, got 16", id="af-16"),
    pytest.param(BASE, lambda d: d["console"]["pins"].pop("af"),
                 "console.pins.af: is required for driver stm32-usart", id="stm32-without-af"),
    pytest.param(BASE, _pins(rx=10), "console.pins.rx: TX and RX are both pin 10",
                 id="tx-equals-rx"),
    pytest.param(BASE, _pins(port=0x1_0000_0000),
                 "console.pins.port: address 0x100000000 is outside the 32-bit address space",
                 id="port-past-4GiB"),
    pytest.param(BASE, _pins(port=0x40020402),
                 "console.pins.port: address 0x40020402 is not 4-byte aligned",
                 id="port-unaligned"),
    pytest.param(BASE, lambda d: d["console"]["clock_enable"].update(bit=32),
                 "console.clock_enable.bit: must be at most 31, got 32", id="clock-bit-32"),
    pytest.param(BASE, lambda d: d["console"]["clock_enable"].update(register="RCC"),
                 "console.clock_enable.register: expected an address", id="register-not-number"),
    pytest.param(BASE, lambda d: d["console"]["clock_enable"].update(enable=True),
                 "console.clock_enable.enable: unknown key", id="clock-unknown-key"),
    pytest.param(BASE, _pins(clock_enable=None),
                 "console.pins.clock_enable: is required for driver stm32-usart",
                 id="stm32-port-without-clock-gate"),
    pytest.param(BASE, lambda d: d.update(timer={"driver": "clint", "mtime": 0x200BFF8,
                                                 "hz": 32768}),
                 "timer: Arm boards use the core's SysTick", id="timer-on-arm"),
    pytest.param(LM3S, _pins(af=1), "console.pins.af: the pins of pl011 are routed by "
                 "Stellaris GPIO (AFSEL/DEN), which has no alternate function number",
                 id="stellaris-af"),
    pytest.param(LM3S, _pins(tx=8), "console.pins.tx: must be at most 7, got 8",
                 id="stellaris-pin-8"),
    pytest.param(LM3S, lambda d: d["led"].pop("clock_enable"),
                 "led.clock_enable: is required for driver stellaris-gpio",
                 id="led-without-clock-gate"),
    pytest.param(HIFIVE, lambda d: d["console"].update(clock_enable={"register": 0, "bit": 0}),
                 "console.clock_enable: sifive-uart has no clock-enable bit to set",
                 id="sifive-clock-gate"),
    pytest.param(HIFIVE, _pins(af=2), "console.pins.af: must be at most 1, got 2",
                 id="sifive-iof-2"),
    pytest.param(HIFIVE, lambda d: d["led"].update(pin=32), "led.pin: must be at most 31",
                 id="sifive-led-pin-32"),
    pytest.param(HIFIVE, lambda d: d.pop("timer"), "timer: RISC-V boards need a 'timer'",
                 id="riscv-without-timer"),
    pytest.param(HIFIVE, lambda d: d["timer"].update(hz=999), "timer.hz: must be at least 1000",
                 id="timer-too-slow"),
    pytest.param(HIFIVE, lambda d: d["timer"].update(hz=100_000_001),
                 "timer.hz: must be at most 100000000", id="timer-too-fast"),
    pytest.param(BASE, lambda d: d["console"].update(irq=480),
                 "console.irq: must be at most 479, got 480", id="nvic-irq-480"),
    pytest.param(BASE, lambda d: d["console"].update(irq=-1),
                 "console.irq: must be at least 0", id="nvic-irq-negative"),
    pytest.param(BASE, lambda d: d["console"].update(irq="USART3"),
                 "console.irq: expected an integer, got a string", id="irq-a-name"),
    pytest.param(BASE, lambda d: d["console"].update(irq=39, plic=0x0C000000),
                 "console.plic: stm32-usart interrupts go through the Cortex-M NVIC",
                 id="plic-on-arm"),
    pytest.param(HIFIVE, lambda d: d["console"].update(irq=0),
                 "console.irq: must be at least 1, got 0", id="plic-source-0"),
    pytest.param(HIFIVE, lambda d: d["console"].pop("plic"),
                 "console.plic: is required for driver sifive-uart", id="plic-missing"),
    pytest.param(HIFIVE, lambda d: d["console"].pop("irq"),
                 "console.plic: is only used with 'irq'", id="plic-without-irq"),
    pytest.param(HIFIVE, lambda d: d["console"].update(plic=0x0C000002),
                 "console.plic: address 0x0C000002 is not 4-byte aligned", id="plic-unaligned"),
    pytest.param(HIFIVE, lambda d: d["timer"].update(mtime=0x200BFFA),
                 "timer.mtime: address 0x0200BFFA is not 4-byte aligned", id="mtime-unaligned"),
]


@pytest.mark.parametrize(("base", "change", "message"), INVALID)
def test_bad_peripheral_facts_name_file_and_key(base, change, message, tmp_path):
    data = copy.deepcopy(base)
    change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as exc:
        load_board_file(path)
    assert f"{path}: {message}" in str(exc.value)


def test_hil_boards_shows_the_console_pins(monkeypatch, capsys):
    from hil.cli import main

    monkeypatch.setenv("HIL_BOARDS_PATH", str(F405.parent))
    assert main(["boards", "f405-usart3"]) == 0
    assert "TX pin 10, RX pin 11 of port 0x40020400, AF 7" in capsys.readouterr().out
