"""A rack board under a lease: wait for a free matching entry, run on it, give it back.

The rack's hardware and virtual boards are shared by every job on every host, so an
executor on them first leases one of the candidate entries (waiting its turn in the queue),
then runs the real executor for that entry, and releases the lease when stopped, whatever
happened. Infrastructure failures count against the entry's health; a clean start resets
the count.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hil.boards import Board
from hil.console import Console
from hil.errors import EmulatorError, HilError, LeaseLost, RecoveryFailed, is_infrastructure
from hil.executors import Choice, Executor, Outcome
from hil.image import Image
from hil.rack.inventory import RackEntry
from hil.rack.leases import Lease, LeaseStore, wait_message
from hil.settings import current
from hil.ui import live

if TYPE_CHECKING:
    from hil.debug import GdbAccess


def lease_wait() -> float | None:
    """Seconds to wait for a free board: HIL_LEASE_WAIT (default 1800; 'inf' forever)."""
    return current().lease_wait


class LeasedExecutor(Executor):
    """One of ``choice.entries``, leased at start and released at stop."""

    inner: Executor | None = None  # the executor of the leased entry, once started

    def __init__(self, board: Board, choice: Choice, *, work_dir: Path, timeout: float = 10.0,
                 rack_path: Path | None = None) -> None:
        super().__init__(board, work_dir=work_dir, timeout=timeout)
        self.choice = choice
        self.kind = choice.kind
        self.rack_path = rack_path
        self.lease: Lease | None = None
        self._store: LeaseStore | None = None
        # the ladder step that brought the board back when its start failed (the verdict
        # says so: a run on a recovered board never reads as a clean one)
        self.recovered_at_start: str | None = None

    @property
    def description(self) -> str:
        if self.inner is not None and self.kind == "qemu" and self.entry is not None \
                and not self.entry.probe.simulated:
            # a virtual board served by another host (remote: probe, rfc2217:// console)
            return (f"virtual board {self.entry.id} (probe {self.entry.probe}, QEMU on its "
                    "rack host)")
        if self.inner is not None:
            return self.inner.description
        ids = ", ".join(e.id for e in self.choice.entries)
        return f"a leased {self.board.name} ({ids})"

    def _announce(self, position: int, total: int) -> None:
        live(wait_message(self.board.name, [e.id for e in self.choice.entries], position,
                          total))

    def start(self, image: Image) -> Console:
        from hil.rack import lease_store, load_rack
        from hil.rack.leases import hold

        self.image = image
        rack = load_rack(self.rack_path)
        self._store = lease_store(rack)
        candidates = [e.id for e in self.choice.entries]
        self.lease = hold(self._store, candidates, ttl=60.0, wait=lease_wait(),
                          purpose=f"hil test {self.board.name}", on_wait=self._announce)
        entry = next(e for e in self.choice.entries if e.id == self.lease.rack_id)
        self.entry = entry
        try:
            try:
                self._start_inner(entry, image)
            except HilError as exc:
                if not (is_infrastructure(exc) and entry.power is not None):
                    raise
                # the flash or boot failed on a board with power control: power-cycle it
                # and start again (the recovery ladder's top for a start)
                self._store.report_failure(entry.id, str(exc).splitlines()[0])
                self.recovered_at_start = self._ladder(entry, self).climb_start(
                    exc, lambda: self._start_inner(entry, image))
        except BaseException as exc:
            if is_infrastructure(exc) and not isinstance(exc, RecoveryFailed):
                # the probe, console or emulator: the entry's health
                self._store.report_failure(entry.id, str(exc).splitlines()[0])
            self.stop()
            raise
        self._store.report_ok(entry.id)
        self.outcome = Outcome("running")
        return self.console

    def _start_inner(self, entry: RackEntry, image: Image) -> None:
        if self.inner is not None:
            self.inner.stop()
        self.inner = self._make_inner(entry)
        self.inner.debug = self.debug
        self._console = self.inner.start(image)

    def _ladder(self, entry: RackEntry, executor: Executor,
                ready: str | None = None):  # -> hil.recovery.RecoveryLadder
        from hil.power import driver_for
        from hil.recovery import RecoveryLadder, Timeouts

        return RecoveryLadder(executor, entry, store=self._store,
                              timeouts=Timeouts.for_console(self.timeout), ready=ready or "",
                              power=driver_for(entry))

    def _make_inner(self, entry: RackEntry) -> Executor:
        work = self.work_dir / entry.id
        if entry.probe.simulated:
            from hil.executors.virtual import VirtualBoardExecutor

            return VirtualBoardExecutor(self.board, entry, work_dir=work, timeout=self.timeout)
        from hil.executors.hardware import HardwareExecutor

        return HardwareExecutor(self.board, entry, work_dir=work, timeout=self.timeout)

    def _running(self) -> Executor | None:
        return self.inner

    def recover(self, cause: BaseException, *, ready: str | None = None) -> str | None:
        """The recovery ladder (hil.recovery) on the leased board; RecoveryFailed marks it
        unhealthy. None when nothing can be tried (not started, lease lost)."""
        if self.inner is None or self.entry is None or self._console is None or \
                (self.lease is not None and self.lease.lost):
            return None
        return self._ladder(self.entry, self.inner, ready).climb(cause)

    def reset(self) -> None:
        if self.inner is None:
            raise EmulatorError(f"{self.description}: reset before start")
        if self.lease is not None and self.lease.lost:
            raise LeaseLost(f"the lease on {self.lease.rack_id} was lost: {self.lease.lost}")
        self.inner.reset()

    def stop(self) -> None:
        try:
            if self.inner is not None:
                self.inner.stop()
                self.outcome = self.inner.outcome
        finally:
            if self.lease is not None:
                self.lease.release()
                self.lease = None
            if self._store is not None:
                self._store.close()
                self._store = None

    def check(self) -> None:
        if self.inner is not None:
            self.inner.check()

    def debug_access(self) -> GdbAccess:
        if self.inner is None:
            return super().debug_access()
        return self.inner.debug_access()
