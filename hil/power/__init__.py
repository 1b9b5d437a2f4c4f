"""Power control of rack boards: one small interface, drivers chosen by name.

A rack entry may say how its board's power is switched::

    power:
      driver: uhubctl        # uhubctl | pdudaemon | command | virtual | a site's own
      location: "1-1.4"      # the driver's own keys
      port: 2

The driver name is looked up in the ``hil.power`` entry-point group, so a site adds its own
relay driver from its own distribution::

    [project.entry-points."hil.power"]
    myrelay = "mysite.relay:RelayDriver"

A driver class is built by ``from_options(spec, entry)`` (which checks the keys, raising
``ConfigError`` naming the bad key) and then switches the board with ``on()``, ``off()`` and
``cycle()``. Switching errors are ``PowerError`` (an infrastructure failure: the rig, not the
firmware). Nothing here knows a particular driver.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from hil.errors import ConfigError, PowerError
from hil.schema import Reader

if TYPE_CHECKING:
    from hil.rack.inventory import RackEntry

GROUP = "hil.power"
ACTIONS = ("on", "off", "cycle")
# hil's own drivers (pyproject.toml): used only when the installed metadata predates them
# (an editable install not reinstalled), so the built-ins never vanish.
BUILTIN = {
    "uhubctl": "hil.power.uhubctl:UhubctlDriver",
    "pdudaemon": "hil.power.pdudaemon:PdudaemonDriver",
    "command": "hil.power.command:CommandDriver",
    "virtual": "hil.power.virtual:VirtualDriver",
}


@dataclass(frozen=True)
class PowerSpec:
    """The ``power:`` mapping of a rack entry: the driver's name and its own keys."""

    driver: str
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    path: Path | None = None  # the rack file it was read from (for error messages)
    key: str = "power"  # its key there, e.g. ``boards[0].power``

    def reader(self) -> Reader:
        """The driver's keys for typed reading: errors name the rack file and the key; the
        driver calls ``done()`` so an unknown key is an error too."""
        return Reader(self.options, self.path or Path("rack.yaml"), self.key)


class PowerDriver(ABC):
    """Switches one board's power. ``cycle()`` defaults to off, a pause, on."""

    name: ClassVar[str] = ""
    off_time: ClassVar[float] = 1.0  # seconds off in a cycle: lets the board's rails drain

    @classmethod
    @abstractmethod
    def from_options(cls, spec: PowerSpec, entry: RackEntry) -> Self:
        """Build the driver for ``entry`` without I/O (it also runs when the rack file is
        read); a bad key is a ConfigError from ``spec.reader()`` naming the file and key."""

    @abstractmethod
    def on(self) -> None: ...

    @abstractmethod
    def off(self) -> None: ...

    def cycle(self) -> None:
        import time

        self.off()
        time.sleep(self.off_time)
        self.on()

    def describe(self, action: str | None = None) -> str:
        """One line for status output and transcripts, e.g. ``uhubctl 1-1.4 port 2``;
        ``action`` (on, off, cycle): what is about to be done, for drivers whose means
        differ per action."""
        return self.name


def entry_points() -> dict[str, metadata.EntryPoint]:
    """The power drivers by name: the ``hil.power`` group, first one of a name wins."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    for name, value in BUILTIN.items():
        found.setdefault(name, metadata.EntryPoint(name, value, GROUP))
    return found


def names() -> tuple[str, ...]:
    return tuple(sorted(entry_points()))


def driver_class(name: str) -> type[PowerDriver]:
    """The driver class registered as ``name``; ConfigError naming the known ones if none."""
    eps = entry_points()
    if name not in eps:
        raise ConfigError(f"unknown power driver '{name}'",
                          hint=f"known drivers: {', '.join(names())} (a site adds its own "
                          f"through the '{GROUP}' entry-point group)")
    ep = eps[name]
    try:
        cls = ep.load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"power driver '{name}' ({ep.value}) cannot be loaded: "
                          f"{exc}", hint="check the entry point of the distribution that "
                          "registers it") from exc
    if not (isinstance(cls, type) and issubclass(cls, PowerDriver)):
        raise ConfigError(f"power driver '{name}' ({ep.value}) is not a PowerDriver")
    return cls


def driver_for(entry: RackEntry) -> PowerDriver | None:
    """The power driver of a rack entry, or None when the entry has no ``power:``."""
    if entry.power is None:
        return None
    return driver_class(entry.power.driver).from_options(entry.power, entry)


__all__ = ["ACTIONS", "GROUP", "PowerDriver", "PowerError", "PowerSpec", "driver_class",
           "driver_for", "names"]
