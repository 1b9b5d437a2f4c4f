"""The interface of a simulated chip's memory-mapped peripherals (a flash controller, a watchdog).

A ``Peripheral`` is a register block at ``base`` of ``size`` bytes. Both bus masters of the
simulated chip use it: the debugger (pyOCD through the simulated probe's MEM-AP) and the
emulated core (the flash algorithm running in ``hil.flash.sim.cpu``). Contract:

- ``read(offset, size)`` returns the value of a 1-, 2- or 4-byte access at ``offset`` (from
  ``base``), right-aligned; ``write(offset, size, value)`` performs one. Either may raise
  ``BusFault`` where the hardware answers with a bus error.
- ``reset()`` is called on every system reset of the chip.
- A ``FlashController`` also sees every write to the flash array (``program``): the array is
  only ever changed through it, and ``program`` says what the flash holds afterwards.

Addresses the chip maps to no peripheral read as 0 and ignore writes (a reset-state RCC, GPIO
and the like, which no flash algorithm depends on).
"""

from __future__ import annotations


class BusFault(Exception):
    """A bus access the chip rejects (the probe turns it into a FAULT response, the emulated
    core into a HardFault)."""

    def __init__(self, address: int, why: str) -> None:
        super().__init__(f"bus fault at 0x{address:08X}: {why}")
        self.address = address


class Peripheral:
    """One register block; see the module doc for the contract."""

    name = "peripheral"
    base = 0
    size = 0x400

    def contains(self, address: int) -> bool:
        return self.base <= address < self.base + self.size

    def read(self, offset: int, size: int) -> int:
        raise NotImplementedError

    def write(self, offset: int, size: int, value: int) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """A system reset: registers back to their reset values."""


class FlashController(Peripheral):
    """A peripheral that owns the flash array: every write to the array goes through it.

    ``dirty`` is set when the array changed (the chip persists it); ``stats`` counts
    ``erased_sectors`` and ``programmed_bytes``."""

    dirty = False
    stats: dict[str, int]

    def program(self, address: int, size: int, value: int) -> None:
        """A ``size``-byte bus write of ``value`` to flash ``address`` (little-endian): apply
        whatever the controller does with it (program, refuse and set an error flag)."""
        raise NotImplementedError

    def take_erased(self) -> list[tuple[int, int, int]]:
        """(number, start, size) of every sector erased one by one since the last call."""
        return []
