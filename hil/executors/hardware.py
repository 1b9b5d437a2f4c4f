"""The hardware executor: a real board of the rack, flashed through its probe.

The console is the rack entry's device path or pyserial URL, opened before the flash so the
boot banner is not lost. Flashing goes through ``hil.flash`` (``make_flasher``); the Flasher
interface has no bare reset, so ``reset()`` flashes the same image again with reset.

``present_hardware`` lists the rack's present boards of a type, ``find_hardware`` takes the
first: a non-virtual entry whose console device exists (a ``host:port`` console URL must
accept a connection) and whose probe is connected. An entry leased by another job counts as
present unprobed (connecting to its console could drop that job's session); probes served by
another host (``remote:``) are taken as present and checked when flashing.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from hil.boards import Board
from hil.console import Console
from hil.errors import ConfigError, HilError, NoHardwareError
from hil.executors import Executor, Outcome
from hil.flash.probe_id import ProbeId
from hil.image import Image
from hil.rack.inventory import Rack, RackEntry

if TYPE_CHECKING:
    from hil.debug import GdbAccess
    from hil.debug.gdbserver import PyOCDGdbServer
    from hil.flash import Flasher

_URL = re.compile(r"^(?P<scheme>[a-z0-9+]+)://(?P<host>[^:/]+):(?P<port>\d+)")


def _console_present(console: str) -> tuple[bool, str]:
    m = _URL.match(console)
    if m:
        try:
            with socket.create_connection((m["host"], int(m["port"])), timeout=0.5):
                return True, ""
        except OSError as exc:
            return False, f"console {console} unreachable ({exc.strerror or exc})"
    if "://" in console:
        return True, ""  # other pyserial URLs (loop://, spy://...): cannot check, assume yes
    if os.path.exists(console):
        return True, ""
    return False, f"console device {console} does not exist"


def _probe_present(probe: ProbeId) -> tuple[bool, str]:
    if probe.remote:
        return True, ""
    from hil.flash.probes import list_probes

    try:
        found = list_probes(with_rack=False)
    except Exception as exc:  # noqa: BLE001 - pyOCD backends raise anything
        return False, f"cannot list probes ({exc})"
    if any(probe.matches(p.unique_id) for p in found):
        return True, ""
    return False, f"probe {probe} not connected"


def _leased_ids(rack: Rack) -> set[str]:
    try:
        from hil.rack import lease_store

        with lease_store(rack) as store:
            return set(store.leases())
    except HilError:  # no lease database reachable: probe every entry
        return set()


def find_hardware(board: Board, *,
                  rack_path: Path | None = None) -> tuple[RackEntry | None, str]:
    """(first present rack entry for ``board``, "") or (None, why none is present)."""
    present, why = present_hardware(board, rack_path=rack_path)
    return (present[0], "") if present else (None, why)


def present_hardware(board: Board, *,
                     rack_path: Path | None = None) -> tuple[list[RackEntry], str]:
    """(every present real rack entry for ``board``, "") or ([], why none is present)."""
    from hil.rack.inventory import load_rack

    rack = load_rack(rack_path)
    entries = rack.entries_for_board(board.name)
    real = [e for e in entries if not e.is_virtual]
    if not real:
        if not rack.path:
            return [], "the project has no rack file"
        if entries:
            return [], f"{rack.path} lists only virtual {board.name} boards"
        return [], f"{rack.path} lists no {board.name}"
    reasons = []
    present = []
    leased = _leased_ids(rack)
    for entry in real:
        if not entry.console:
            reasons.append(f"{entry.id}: no console in the rack entry")
            continue
        if entry.id in leased:
            # in use by another job: present. Do not connect to its console: a ser2net
            # with kickolduser would drop that job's session.
            present.append(entry)
            continue
        ok, why = _console_present(entry.console)
        if ok:
            ok, why = _probe_present(entry.probe)
        if ok:
            present.append(entry)
        else:
            reasons.append(f"{entry.id}: {why}")
    if present:
        return present, ""
    return [], "; ".join(reasons)


class HardwareExecutor(Executor):
    """A real board: flash + reset through its probe, console over its serial port."""

    kind = "hardware"

    def __init__(self, board: Board, entry: RackEntry | None, *, work_dir: Path,
                 timeout: float = 10.0) -> None:
        super().__init__(board, work_dir=work_dir, timeout=timeout)
        if entry is None:
            raise NoHardwareError(f"no rack entry for a {board.name} board")
        if not entry.console:
            raise ConfigError(f"rack entry {entry.id} has no console", key="console",
                              hint="set its device path or pyserial URL in rack.yaml")
        self.entry: RackEntry = entry
        self.console_url: str = entry.console
        self._flasher: Flasher | None = None
        self._gdbserver: PyOCDGdbServer | None = None

    @property
    def description(self) -> str:
        return f"hardware {self.entry.id} (probe {self.entry.probe}, console {self.entry.console})"

    def start(self, image: Image) -> Console:
        from hil.flash import flash_and_record, make_flasher

        self.image = image
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._console = Console(self.console_url, baudrate=self.board.console.baud,
                                timeout=self.timeout, transcript=self.work_dir / "console.log",
                                name=f"{self.board.name} on {self.entry.id}", elf=image.elf)
        self._console.open()  # before the reset, so the boot banner is not lost
        self._flasher = make_flasher(self.board, self.entry.probe, rack_entry=self.entry.id)
        try:
            flash_and_record(self._flasher, image.hex, reset=True)
        except HilError:
            self.stop()
            raise
        self.outcome = Outcome("running")
        return self._console

    def reset(self) -> None:
        if self._flasher is None or self.image is None:
            raise NoHardwareError(f"{self.description}: not started")
        if self._gdbserver is not None:  # it holds the probe: the reset needs it
            self._gdbserver.stop()
            self._gdbserver = None
        self.console.discard()
        self.console.note("reset")
        reset = getattr(self._flasher, "reset", None)
        if callable(reset):
            reset()
        else:  # the Flasher interface has no reset yet: an unchanged image flashes nothing
            from hil.flash import record_failed_flash

            try:
                self._flasher.flash(self.image.hex, reset=True)
            except BaseException as exc:  # the board may now hold part of it: say so
                record_failed_flash(self._flasher, self.image.hex, exc)
                raise

    def debug_access(self) -> GdbAccess:
        """Start ``pyocd gdbserver`` on the entry's probe (the core halts when it
        connects); in HALT mode gdb resets and halts it again at once."""
        from hil.debug import HALT, GdbAccess
        from hil.debug.gdbserver import PyOCDGdbServer

        if self._gdbserver is None or self._gdbserver.port is None:
            self._gdbserver = PyOCDGdbServer(self.board, self.entry.probe,
                                             log_path=self.work_dir / "gdbserver.log")
            self._gdbserver.start()
        assert self._gdbserver.port is not None
        elf = self.image.elf if self.image is not None else None
        return GdbAccess("127.0.0.1", self._gdbserver.port, elf, "pyocd gdbserver",
                         arch=self.board.arch,
                         after_connect=("monitor reset halt",) if self.debug == HALT else ())

    # ------------------------------------------------------------------ recovery steps
    def _started(self) -> Flasher:
        if self._flasher is None or self.image is None:
            raise NoHardwareError(f"{self.description}: not started")
        return self._flasher

    def swd_reset(self, timeout: float) -> None:
        self._started().reset()

    def connect_under_reset(self, timeout: float) -> None:
        self._started().reset(under_reset=True)

    def reflash(self, timeout: float) -> None:
        from hil.flash import flash_and_record

        flasher = self._started()
        assert self.image is not None
        flash_and_record(flasher, self.image.hex, reset=True)

    def stop(self) -> None:
        if self._gdbserver is not None:
            self._gdbserver.stop()
            self._gdbserver = None
        if self._console is not None:
            self._console.close()
        if self.outcome.state == "running":
            self.outcome = Outcome("stopped")
