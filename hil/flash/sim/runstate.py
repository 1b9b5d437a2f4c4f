"""What a simulated core is doing, published for the process that emulates its CPU.

The simulated probe (``hil.flash.sim.chip``) models the debug port and executes only code
pyOCD runs from RAM (flash algorithms), not the firmware: the firmware itself runs in QEMU,
possibly in another process (``hil rack host`` on a rack host, while
``pyocd server`` serves the probe). The chip therefore publishes its run state in
``<simflash dir>/<name>.run``, a small JSON object written atomically:

    {"resets": 7, "running": true, "pid": 1234, "time": 1763884800.0}

``resets`` increases by one on every reset of the core (SYSRESETREQ, VECTRESET, nRESET
released, the probe's reset) and never goes down; ``running`` says whether the core executes
the firmware (False while halted by the debugger, held in reset or running a flash
algorithm). The emulating process polls it with ``read_run_state``: a new ``resets`` value
means "boot again from flash", ``running`` False means "pause". Nothing is written while
nothing changes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from hil.fsutil import atomic_write


@dataclass(frozen=True)
class RunState:
    resets: int = 0
    running: bool = True  # never published: powered on, running what the flash holds


def run_state_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.run"


def read_run_state(directory: Path, name: str) -> RunState:
    """The published state; a board nothing was published for is powered on and running."""
    try:
        data = json.loads(run_state_path(directory, name).read_text(encoding="utf-8"))
        return RunState(int(data.get("resets", 0)), bool(data.get("running", False)))
    except (OSError, ValueError, AttributeError):
        return RunState()


def _write(directory: Path, name: str, state: RunState) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"resets": state.resets, "running": state.running,
                          "pid": os.getpid(), "time": time.time()}).encode()
    atomic_write(run_state_path(directory, name), payload)


def publish_reset(directory: Path, name: str, running: bool) -> None:
    """The core was reset; ``running`` False when it stays halted (vector catch, nRESET)."""
    old = read_run_state(directory, name)
    _write(directory, name, RunState(old.resets + 1, running))


def publish_running(directory: Path, name: str, running: bool) -> None:
    """The core was halted (False) or resumed (True) without a reset."""
    old = read_run_state(directory, name)
    if old.running != running:
        _write(directory, name, RunState(old.resets, running))
