"""The sane range of every number a user gives hil (options, environment, fault specs).

One ``Limit`` per kind of number: finite, within ``low..high``, an integer where a count is
meant. ``parse`` reads text (an option or an environment variable), ``check`` a value a
library caller passes; both name the range in their error, so a user sees what is allowed.
hil.cli wraps ``parse`` as the argparse ``type`` of every numeric option (hil/cli/_args.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hil.errors import ConfigError, UsageError

FOREVER = ("inf", "forever")  # how a wait without end is written


@dataclass(frozen=True)
class Limit:
    """A number between ``low`` and ``high`` (inclusive unless ``low_open``), in ``unit``."""

    what: str
    low: float
    high: float
    unit: str = ""
    integer: bool = False
    low_open: bool = False  # low itself is not allowed (a TTL of exactly 0 s)
    forever: bool = False  # 'inf'/'forever' is allowed and means None (no end)

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.low_open:
            text = f"more than {_fmt(self.low)} and at most {_fmt(self.high)}{unit}"
        else:
            text = f"{_fmt(self.low)}..{_fmt(self.high)}{unit}"
        if self.forever:
            text += " (or 'forever')"
        return text

    def problem(self, value: float | None) -> str | None:
        """Why ``value`` is out of range, or None when it is fine."""
        if value is None:
            return None if self.forever else "no value"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value} is not a finite number"
        if self.integer and value != int(value):
            return f"{_fmt(value)} is not a whole number"
        if value < self.low or (self.low_open and value == self.low) or value > self.high:
            return f"{_fmt(value)} is out of range"
        return None

    def check(self, value: float | None, name: str) -> float | int | None:
        """``value`` unchanged when in range; UsageError naming ``name`` and the range."""
        why = self.problem(value)
        if why:
            raise UsageError(f"{name}: {why}: {self.what} must be {self.describe()}")
        return value

    def parse(self, text: str) -> float | int | None:
        """The number written in ``text``; ValueError saying why and the range otherwise."""
        stripped = text.strip()
        if self.forever and stripped.lower() in FOREVER:
            return None
        value = _number(stripped, self.integer)
        if value is None:
            raise ValueError(f"'{_short(text)}' is not a number: {self.what} must be "
                             f"{self.describe()}")
        why = self.problem(value)
        if why:
            detail = "" if why.endswith("out of range") else f" ({why})"
            raise ValueError(f"{_short(text)}: {self.what} must be {self.describe()}{detail}")
        return int(value) if self.integer else float(value)

    def from_env(self, name: str, text: str) -> float | int | None:
        """The number in environment variable ``name``; ConfigError naming it otherwise."""
        try:
            return self.parse(text)
        except ValueError as exc:
            raise ConfigError(str(exc), key=name,
                              hint=f"set {name} to a number in range, or unset it") from None


def _number(text: str, integer: bool) -> float | int | None:
    """``text`` as an int (0x.. allowed) when ``integer``, else as a float; None if neither."""
    if integer:
        try:
            return int(text, 0)
        except ValueError:
            pass  # 4e6 is a fine way to write a clock rate: problem() checks it is whole
    try:
        return float(text)
    except ValueError:
        return None


def _fmt(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) < 1e15):
        return str(int(value))
    return f"{value:g}"


def _short(text: str, width: int = 40) -> str:
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= width else text[:width] + "..."


DAY = 86400.0

# leases: a TTL of 0 would hand out a lease that has already expired
LEASE_TTL = Limit("a lease TTL", 1.0, 7 * DAY, "seconds")
LEASE_TTL_ANY = Limit("a lease TTL", 0.0, 7 * DAY, "seconds", low_open=True)  # library callers
LEASE_WAIT = Limit("a wait for a board", 0.0, 7 * DAY, "seconds", forever=True)
# console and run timeouts
TIMEOUT = Limit("a timeout", 0.0, DAY, "seconds", low_open=True)
# SWD/JTAG clock: below 1 kHz no probe runs, above 100 MHz no target follows
FREQUENCY = Limit("the SWD clock", 1_000, 100_000_000, "Hz", integer=True)
JOBS = Limit("the number of parallel jobs", 1, 1024, integer=True)
RETRIES = Limit("the number of retries", 0, 100, integer=True)
WORKERS = Limit("the number of workers", 1, 256, integer=True)
RECORDS = Limit("the number of records", 1, 1_000_000_000, integer=True)
# fault injection (hil/flash/sim/faults.py)
SIM_SLOW = Limit("the delay of 'slow'", 0.0, 600.0, "seconds")
SIM_COUNT = Limit("the count of 'disconnect_after'", 0, 2**32 - 1, "DAP transfers",
                  integer=True)
SIM_SECTOR = Limit("a sector number", 0, 11, integer=True)  # STM32F4 nWRP bits
ADDRESS32 = Limit("an address", 0, 2**32 - 1, integer=True)
DEVICE_ID = Limit("a device id", 0, 2**32 - 1, integer=True)
PORT = Limit("a TCP port", 1, 65535, integer=True)
LISTEN_PORT = Limit("a TCP port to listen on (0: any free one)", 0, 65535, integer=True)
IDLE_CHECKS = Limit("the idle-check period", 1.0, 7 * DAY, "seconds")
