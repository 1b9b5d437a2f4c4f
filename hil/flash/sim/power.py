"""Whether a simulated board is powered, kept beside its simulated flash.

``<simflash dir>/<name>.power`` is a small JSON object written atomically by the ``virtual``
power driver (``hil.power.virtual``):

    {"on": false, "switches": 3, "pid": 1234, "time": 1763884800.0}

``switches`` increases by one on every switch and never goes down, so the process that runs
the board's QEMU (``VirtualBoardExecutor`` in a test run, ``VirtualBoardHost`` under ``hil
rack-host``) notices an off-and-on it polled too late to see: a new value means "stop QEMU,
and boot a fresh one from flash if ``on``". The simulated probe reads it too: an unpowered
target answers no SWD transfer. A board nothing was written for is powered on.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from hil.fsutil import atomic_write


@dataclass(frozen=True)
class PowerState:
    on: bool = True
    switches: int = 0


def power_state_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.power"


def read_power_state(directory: Path, name: str) -> PowerState:
    """The published state; a board nothing was published for is on."""
    try:
        data = json.loads(power_state_path(directory, name).read_text(encoding="utf-8"))
        return PowerState(bool(data.get("on", True)), int(data.get("switches", 0)))
    except (OSError, ValueError, AttributeError, TypeError):
        return PowerState()


def switch_power(directory: Path, name: str, on: bool) -> PowerState:
    """Switch the board on or off (a switch to the state it is in still counts: a second
    ``on`` after a crash of the owner boots the board again)."""
    old = read_power_state(directory, name)
    new = PowerState(on, old.switches + 1)
    directory.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"on": new.on, "switches": new.switches, "pid": os.getpid(),
                          "time": time.time()}).encode()
    atomic_write(power_state_path(directory, name), payload)
    return new
