"""The ``virtual`` power driver: switches a virtual board (``hilsim:`` probe, ``emulator:
qemu``) the way a relay switches a real one.

The state is a file beside the simulated flash (``hil.flash.sim.power``). Off: the simulated
probe answers no SWD transfer (pyOCD's connect fails as with an unpowered target) and the
process that runs the board's QEMU stops it; on: that process boots a fresh QEMU from what
the simulated flash holds, as a real board boots from its flash. The console (the rack
host's pty, a USB-serial adapter's stand-in) is not switched. Nothing here touches a process:
the owner follows the file (``VirtualBoardExecutor.follow_power``, ``VirtualBoardHost.poll``).

    power:
      driver: virtual
      off_time: 0.2        # optional: seconds off in a cycle (default 0.2)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Self

from hil.errors import ConfigError, PowerError
from hil.power import PowerDriver, PowerSpec

if TYPE_CHECKING:
    from hil.rack.inventory import RackEntry


class VirtualDriver(PowerDriver):
    """Power of one virtual board; see the module doc."""

    name = "virtual"

    def __init__(self, rack_id: str, sim_name: str, off_time: float = 0.2) -> None:
        self.rack_id = rack_id
        self.sim_name = sim_name
        self.off_time = off_time  # type: ignore[misc]  # per board, not per class

    @classmethod
    def from_options(cls, spec: PowerSpec, entry: RackEntry) -> Self:
        r = spec.reader()
        off_ms = r.int("off_time_ms", 200, minimum=0, maximum=60_000)
        r.done()
        if not (entry.probe.simulated and entry.emulator == "qemu"):
            raise ConfigError(
                f"the virtual power driver switches only virtual boards, and rack entry "
                f"{entry.id} has probe {entry.probe}"
                f"{'' if entry.emulator else ' and no emulator'}",
                path=spec.path, key=f"{spec.key}.driver",
                hint="a virtual board needs probe: hilsim:<name> and emulator: qemu; a real "
                "board needs a real switch (uhubctl, pdudaemon, command)")
        return cls(entry.id, entry.probe.address, off_ms / 1000.0)

    def _switch(self, on: bool) -> None:
        from hil.flash.sim.power import switch_power
        from hil.flash.sim.store import sim_dir

        try:
            switch_power(sim_dir(), self.sim_name, on)
        except OSError as exc:
            raise PowerError(f"cannot switch virtual board {self.rack_id} "
                             f"{'on' if on else 'off'}: {exc}",
                             hint="check that hil's state directory is writable") from exc

    def on(self) -> None:
        self._switch(True)

    def off(self) -> None:
        self._switch(False)

    def cycle(self) -> None:
        self.off()
        time.sleep(self.off_time)
        self.on()

    @property
    def is_on(self) -> bool:
        from hil.flash.sim.power import read_power_state
        from hil.flash.sim.store import sim_dir

        return read_power_state(sim_dir(), self.sim_name).on

    def describe(self, action: str | None = None) -> str:
        return f"virtual (hilsim:{self.sim_name}, QEMU stopped while off)"
