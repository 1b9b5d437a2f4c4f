"""The ``uhubctl`` power driver: a USB hub port with per-port power switching feeds the board.

    power:
      driver: uhubctl
      location: "1-1.4"    # the hub's location as `uhubctl` (no arguments) lists it
      port: 2              # the hub port the board's USB cable is in
      off_time: 2          # optional: seconds off in a cycle (default 2, uhubctl's own)
      timeout: 30          # optional: seconds uhubctl may take (default 30 + off_time)

Runs ``uhubctl -l LOCATION -p PORT -a on|off|cycle`` (a cycle is uhubctl's own, ``-d
off_time``). uhubctl needs write access to the hub: root, or its udev rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from hil.errors import PowerError
from hil.power import PowerDriver, PowerSpec
from hil.power._common import DEFAULT_TIMEOUT_S, run_program, seconds, tail

if TYPE_CHECKING:
    from hil.rack.inventory import RackEntry

PROGRAM = "uhubctl"
_LOCATION_RE = re.compile(r"\d+(-\d+(\.\d+)*)?")
#: What uhubctl says, and what to do about it.
_HINTS = (
    ("No compatible devices detected",
     "no smart hub at that location: run 'uhubctl' with no arguments to list the hubs it can "
     "switch and their locations (the hub must support per-port power switching)"),
    ("permission problems", "uhubctl may not write to the hub: install uhubctl's udev rule "
     "(see its README) or run as root"),
    ("udev is set up", "uhubctl may not write to the hub: install uhubctl's udev rule (see "
     "its README) or run as root"),
    ("Error initializing USB", "this host gives no USB access (a container without "
     "/dev/bus/usb?)"),
    ("multiple hubs at once", "the location matches more than one hub: give the exact "
     "location 'uhubctl' lists"),
)


@dataclass(frozen=True)
class UhubctlDriver(PowerDriver):
    """Switches one port of a smart USB hub with the uhubctl program."""

    name = "uhubctl"

    rack_id: str
    location: str
    port: int
    off_seconds: float = 2.0
    timeout: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_options(cls, spec: PowerSpec, entry: RackEntry) -> Self:
        r = spec.reader()
        location = r.str("location")
        if not _LOCATION_RE.fullmatch(location):
            raise r.error("location", f"'{location}' is not a USB hub location",
                          hint="write it as uhubctl lists it, e.g. \"1-1.4\" (bus-port.port)")
        port = r.int("port", minimum=1, maximum=255,
                     hint="the hub's port number, as uhubctl lists it (from 1)")
        off_time = seconds(r, "off_time", 2.0, maximum=600.0)
        timeout = seconds(r, "timeout", DEFAULT_TIMEOUT_S + off_time, minimum=0.1)
        r.done()
        return cls(entry.id, location, port, off_time, timeout)

    @property
    def off_time(self) -> float:  # type: ignore[override]
        return self.off_seconds

    def argv(self, action: str) -> list[str]:
        """The uhubctl command line of ``action`` (on, off or cycle)."""
        argv = [PROGRAM, "-l", self.location, "-p", str(self.port), "-a", action]
        if action == "cycle":
            argv += ["-d", f"{self.off_seconds:g}"]
        return argv

    def on(self) -> None:
        self._run("on")

    def off(self) -> None:
        self._run("off")

    def cycle(self) -> None:
        self._run("cycle")

    def describe(self, action: str | None = None) -> str:
        return f"uhubctl {self.location} port {self.port}"

    def _run(self, action: str) -> None:
        what = f"{self.rack_id}: power {action} (uhubctl hub {self.location} port {self.port})"
        result = run_program(self.argv(action), timeout=self.timeout, what=what)
        output = "\n".join(s for s in (result.stdout, result.stderr) if s.strip())
        found = "No compatible devices detected" in output
        if result.returncode != 0 or found:
            hint = next((h for key, h in _HINTS if key in output),
                        "run the same uhubctl command by hand to see why")
            said = tail(output) or "(no output)"
            raise PowerError(f"{what}: uhubctl failed (exit status {result.returncode}): "
                             f"{said}", hint=hint)
