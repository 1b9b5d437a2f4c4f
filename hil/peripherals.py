"""The board's peripherals as data: console UART, LED and timer, and the C macros they become.

Every address the firmware runtime touches outside the CPU core comes from here (through
the generated ``hil_board.h``): the UART and GPIO bases, the clock-enable register and bit
of each, the console pins and their alternate function, the timer's address and rate. The
C drivers in ``hil/runtime`` hold register offsets and bit layouts of a peripheral kind,
never where a board put it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.schema import Reader

CONSOLE_DRIVERS = ("stm32-usart", "sifive-uart", "pl011")
LED_DRIVERS = ("stm32f4-gpio", "sifive-gpio", "stellaris-gpio")
TIMER_DRIVERS = ("clint",)
MAX_CLOCK_HZ = 10_000_000_000
MAX_BAUD = 100_000_000
MAX_QEMU_SERIAL = 15  # QEMU gets one '-serial' option per console index below qemu_serial
MAX_TIMER_HZ = 100_000_000
#: The interrupt controller a console driver's receive interrupt goes through, and the range
#: of its numbers: the Armv7-M NVIC takes external IRQs 0..479 (its address is architectural,
#: not a board fact); a SiFive PLIC numbers sources from 1 (0 means "no interrupt").
CONSOLE_IRQ = {"stm32-usart": ("nvic", 0, 479), "pl011": ("nvic", 0, 479),
               "sifive-uart": ("plic", 1, 1023)}


@dataclass(frozen=True)
class _Gpio:
    """What a GPIO controller kind allows: pins per port, alternate functions, clock gate."""

    what: str  # names the controller in error messages
    pins: int
    afs: int  # number of alternate functions (0: the controller has no AF number)
    clock_gate: bool  # the port has a clock-enable bit the driver must set


#: The GPIO controller that routes a console driver's pins, and the LED drivers' controllers.
_STM32_GPIO = _Gpio("STM32 GPIO (MODER/AFR)", pins=16, afs=16, clock_gate=True)
_STELLARIS_GPIO = _Gpio("Stellaris GPIO (AFSEL/DEN)", pins=8, afs=0, clock_gate=True)
_SIFIVE_GPIO = _Gpio("SiFive GPIO (IOF_EN/IOF_SEL)", pins=32, afs=2, clock_gate=False)
CONSOLE_GPIO = {"stm32-usart": _STM32_GPIO, "pl011": _STELLARIS_GPIO,
                "sifive-uart": _SIFIVE_GPIO}
LED_GPIO = {"stm32f4-gpio": _STM32_GPIO, "stellaris-gpio": _STELLARIS_GPIO,
            "sifive-gpio": _SIFIVE_GPIO}
#: Console drivers that cannot work without their clock gate and pins (the STM32 USART is
#: unclocked and unrouted at reset); the others set them only when the board file says.
_CONSOLE_NEEDS_SETUP = ("stm32-usart",)
_CONSOLE_HAS_CLOCK_GATE = ("stm32-usart", "pl011")


@dataclass(frozen=True)
class ClockEnable:
    """One clock-enable bit: set bit ``bit`` of the 32-bit register at ``register``."""

    register: int
    bit: int


@dataclass(frozen=True)
class ConsolePins:
    """The GPIO port the console's TX and RX pins are on and how they are routed to it."""

    port: int
    tx: int
    rx: int
    af: int | None = None  # alternate function number (STM32 AF, SiFive IOF)
    clock_enable: ClockEnable | None = None  # the GPIO port's clock gate


@dataclass(frozen=True)
class Console:
    driver: str
    base: int
    baud: int
    clock_hz: int
    qemu_serial: int
    clock_enable: ClockEnable | None = None  # the UART's clock gate
    pins: ConsolePins | None = None
    irq: int | None = None  # receive interrupt: NVIC IRQ number or PLIC source
    plic: int | None = None  # the PLIC's base address (sifive-uart with irq)


@dataclass(frozen=True)
class Led:
    driver: str
    base: int  # the GPIO port
    pin: int
    active_low: bool = False
    clock_enable: ClockEnable | None = None  # the GPIO port's clock gate


@dataclass(frozen=True)
class Timer:
    """The millisecond time source of boards without an architectural one (RISC-V CLINT)."""

    driver: str
    mtime: int
    hz: int
    mtimecmp: int | None = None


# --------------------------------------------------------------------------- parsing


def _register(r: Reader, name: str) -> int:
    """A 4-byte aligned 32-bit register or peripheral address."""
    value: int = r.address(name)
    if value % 4:
        raise r.error(name, f"address 0x{value:08X} is not 4-byte aligned",
                      hint="peripheral registers are 32-bit words: check the reference manual")
    return value


def _clock_enable(r: Reader, name: str, driver: str, allowed: bool) -> ClockEnable | None:
    sub = r.sub(name, required=False)
    if sub is None:
        return None
    if not allowed:
        raise r.error(name, f"{driver} has no clock-enable bit to set",
                      hint=f"remove '{name}'")
    gate = ClockEnable(register=_register(sub, "register"),
                       bit=sub.int("bit", minimum=0, maximum=31))
    sub.done()
    return gate


def _pin(r: Reader, name: str, gpio: _Gpio) -> int:
    pin: int = r.int(name, minimum=0, maximum=gpio.pins - 1,
                     hint=f"{gpio.what} ports have pins 0..{gpio.pins - 1}")
    return pin


def _require(r: Reader, name: str, driver: str, example: str) -> None:
    if not r.has(name):
        raise r.error(name, f"is required for driver {driver}", hint=f"add e.g. {example}")


def parse_console(r: Reader) -> Console:
    driver = r.str("driver", choices=CONSOLE_DRIVERS)
    gpio = CONSOLE_GPIO[driver]
    if driver in _CONSOLE_NEEDS_SETUP:
        _require(r, "clock_enable", driver, "clock_enable: {register: 0x40023840, bit: 17}")
        _require(r, "pins", driver, "pins: {port: 0x40020000, tx: 2, rx: 3, af: 7, "
                 "clock_enable: {register: 0x40023830, bit: 0}}")
    console = Console(
        driver=driver,
        base=_register(r, "base"),
        baud=r.int("baud", 115200, minimum=1, maximum=MAX_BAUD),
        clock_hz=r.int("clock_hz", minimum=1, maximum=MAX_CLOCK_HZ),
        qemu_serial=r.int("qemu_serial", 0, minimum=0, maximum=MAX_QEMU_SERIAL,
                          hint="the index of the board's console UART among the QEMU "
                          "machine's serial ports (0 is the first)"),
        clock_enable=_clock_enable(r, "clock_enable", driver,
                                   driver in _CONSOLE_HAS_CLOCK_GATE),
        pins=_console_pins(r, driver, gpio),
        **_console_irq(r, driver),
    )
    r.done()
    return console


def _console_irq(r: Reader, driver: str) -> dict[str, int | None]:
    """The optional receive interrupt (``irq``) and, behind a PLIC, its base (``plic``).
    Without ``irq`` the runtime polls the UART while it waits for input."""
    kind, low, high = CONSOLE_IRQ[driver]
    if not r.has("irq"):
        if r.has("plic"):
            raise r.error("plic", "is only used with 'irq'", hint="add irq: or remove 'plic'")
        return {}
    what = ("the UART's NVIC IRQ number (the position in the reference manual's vector "
            "table, not counting the 16 core exceptions)" if kind == "nvic"
            else "the UART's PLIC interrupt source number")
    irq = r.int("irq", minimum=low, maximum=high, hint=what)
    if kind == "nvic":
        if r.has("plic"):
            raise r.error("plic", f"{driver} interrupts go through the Cortex-M NVIC, which "
                          "has no board address", hint="remove 'plic'")
        return {"irq": irq}
    _require(r, "plic", driver, "plic: 0x0C000000")
    return {"irq": irq, "plic": _register(r, "plic")}


def _console_pins(r: Reader, driver: str, gpio: _Gpio) -> ConsolePins | None:
    p = r.sub("pins", required=False)
    if p is None:
        return None
    if gpio.clock_gate:
        _require(p, "clock_enable", driver, "clock_enable: {register: 0x40023830, bit: 0}")
    if gpio.afs:
        _require(p, "af", driver, "af: 7")
    elif p.has("af"):
        raise p.error("af", f"the pins of {driver} are routed by {gpio.what}, which has no "
                      "alternate function number", hint="remove 'af'")
    af = None
    if gpio.afs:
        af = p.int("af", minimum=0, maximum=gpio.afs - 1,
                   hint=f"{gpio.what} has alternate functions 0..{gpio.afs - 1}")
    pins = ConsolePins(
        port=_register(p, "port"),
        tx=_pin(p, "tx", gpio),
        rx=_pin(p, "rx", gpio),
        af=af,
        clock_enable=_clock_enable(p, "clock_enable", gpio.what, gpio.clock_gate),
    )
    if pins.tx == pins.rx:
        raise p.error("rx", f"TX and RX are both pin {pins.tx}",
                      hint="give the console's receive pin")
    p.done()
    return pins


def parse_led(r: Reader) -> Led:
    driver = r.str("driver", choices=LED_DRIVERS)
    gpio = LED_GPIO[driver]
    if gpio.clock_gate:
        _require(r, "clock_enable", driver, "clock_enable: {register: 0x40023830, bit: 0}")
    led = Led(
        driver=driver,
        base=_register(r, "base"),
        pin=_pin(r, "pin", gpio),
        active_low=r.bool("active_low", False),
        clock_enable=_clock_enable(r, "clock_enable", driver, gpio.clock_gate),
    )
    r.done()
    return led


def parse_timer(r: Reader) -> Timer:
    r.raw("mtimecmp", None)  # optional: 'mtimecmp:' with no value is accepted as absent
    timer = Timer(
        driver=r.str("driver", choices=TIMER_DRIVERS),
        mtime=_register(r, "mtime"),
        hz=r.int("hz", minimum=1000, maximum=MAX_TIMER_HZ,
                 hint="the mtime counter's input clock (32768 on the FE310)"),
        mtimecmp=_register(r, "mtimecmp") if r.has("mtimecmp") else None,
    )
    r.done()
    return timer


# --------------------------------------------------------------------------- C macros


def _hex(value: int) -> str:
    return f"0x{value:08X}u"


def _gate(prefix: str, gate: ClockEnable | None) -> list[tuple[str, str]]:
    if gate is None:
        return []
    return [(f"{prefix}_CLKEN_REG", _hex(gate.register)), (f"{prefix}_CLKEN_BIT", f"{gate.bit}u")]


def ms_scale(hz: int) -> tuple[int, int]:
    """(mul, shift) with ``ms = (ticks * mul) >> shift`` for a counter at ``hz``: exact for a
    power-of-two rate, else off by the rounding of mul, a relative error of at most
    hz / (2000 * 2**32) (1.2 ppm at 10 MHz, below a crystal's tolerance). With shift 32 the
    64-bit product wraps exactly when a 32-bit millisecond count does; no 64-bit division
    (no libgcc)."""
    if hz & (hz - 1) == 0:
        return 1000, hz.bit_length() - 1
    return round(1000 * (1 << 32) / hz), 32


def macros(console: Console, led: Led | None, timer: Timer | None) -> list[tuple[str, str]]:
    """The ``#define`` name/value pairs of the console, LED and timer facts."""
    c = console
    out = [
        (f"HIL_CONSOLE_{c.driver.upper().replace('-', '_')}", "1"),
        ("HIL_CONSOLE_BASE", _hex(c.base)),
        ("HIL_CONSOLE_BAUD", f"{c.baud}u"),
        ("HIL_CONSOLE_CLOCK_HZ", f"{c.clock_hz}u"),
        *_gate("HIL_CONSOLE", c.clock_enable),
    ]
    if c.irq is not None:
        out.append(("HIL_CONSOLE_IRQ", f"{c.irq}u"))
    if c.plic is not None:
        out.append(("HIL_PLIC_BASE", _hex(c.plic)))
    if c.pins is not None:
        out += [("HIL_CONSOLE_PORT", _hex(c.pins.port)),
                ("HIL_CONSOLE_TX_PIN", f"{c.pins.tx}u"),
                ("HIL_CONSOLE_RX_PIN", f"{c.pins.rx}u")]
        if c.pins.af is not None:
            out.append(("HIL_CONSOLE_AF", f"{c.pins.af}u"))
        out += _gate("HIL_CONSOLE_PORT", c.pins.clock_enable)
    if led is not None:
        out += [
            (f"HIL_LED_{led.driver.upper().replace('-', '_')}", "1"),
            ("HIL_LED_BASE", _hex(led.base)),
            ("HIL_LED_PIN", f"{led.pin}u"),
            ("HIL_LED_ACTIVE_LOW", str(int(led.active_low))),
            *_gate("HIL_LED", led.clock_enable),
        ]
    if timer is not None:
        mul, shift = ms_scale(timer.hz)
        out += [(f"HIL_TIMER_{timer.driver.upper()}", "1"),
                ("HIL_TIMER_MTIME", _hex(timer.mtime))]
        if timer.mtimecmp is not None:
            out.append(("HIL_TIMER_MTIMECMP", _hex(timer.mtimecmp)))
        out += [("HIL_TIMER_HZ", f"{timer.hz}u"),
                ("HIL_TIMER_MS_MUL", f"{mul}u"),
                ("HIL_TIMER_MS_SHIFT", str(shift))]
    return out
