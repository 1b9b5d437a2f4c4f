"""The recovery ladder: bring a hung rack board back before giving up on it.

When a test on a rack board hits an infrastructure failure (emulator or console gone, probe
not answering) or waits in silence (a ``ConsoleTimeout`` with not one byte received:
``needs_recovery``), ``RecoveryLadder.climb`` tries, in order and only as far as needed:

1. ``reconnect-console``: close and reopen the console; the board is back if the hil shell
   answers ``ping`` (another firmware cannot show it runs without a reset: the step fails);
2. ``swd-reset``: reset through the probe (pyOCD); a virtual board's QEMU gets QMP
   ``system_reset``, which a stopped (wedged) QEMU cannot answer;
3. ``connect-under-reset``: connect with nRESET held, then reset (virtual: QMP again);
4. ``power-cycle``: only when the rack entry has ``power:`` (virtual driver: QEMU killed,
   a fresh one booted from the simulated flash);
5. ``reflash``: flash the image again, with reset.

After each reset step the board must print its READY line. Each step has its own timeout
(``Timeouts``), and the console is open before any reset, so no boot output is lost. Each
step is written to the console transcript, the audit store (a ``recovery`` record: board,
step, outcome, seconds) and the board's health history (``recovery`` events). If no step
brings the board back, it is marked unhealthy with the reason and ``RecoveryFailed`` (an
InfrastructureError) is raised, so the test plan moves the job to another board.

The executor supplies the steps (``reconnect_console``, ``swd_reset``,
``connect_under_reset``, ``follow_power``, ``reflash``: see ``hil.executors``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hil.errors import HilError, InfrastructureError, LeaseError, RecoveryFailed, is_infrastructure
from hil.ui import live

if TYPE_CHECKING:
    from hil.executors import Executor
    from hil.power import PowerDriver
    from hil.rack.inventory import RackEntry
    from hil.rack.leases import LeaseStore

STEPS = ("reconnect-console", "swd-reset", "connect-under-reset", "power-cycle", "reflash")
READY = r"^READY\r?$"


def needs_recovery(exc: BaseException) -> bool:
    """Whether ``exc`` may be a hung or lost board rather than wrong firmware: an
    infrastructure failure (not a lease problem), or a console wait with nothing received."""
    from hil.console import ConsoleTimeout

    if isinstance(exc, ConsoleTimeout):
        return exc.silent
    return is_infrastructure(exc) and not isinstance(exc, (LeaseError, RecoveryFailed))


@dataclass(frozen=True)
class Timeouts:
    """Seconds each step may take, its action and the wait for the board's answer."""

    reconnect: float = 5.0
    swd_reset: float = 10.0
    under_reset: float = 10.0
    power_cycle: float = 20.0
    reflash: float = 120.0

    @classmethod
    def for_console(cls, timeout: float) -> Timeouts:
        """Steps bounded by the run's console timeout (``--timeout``), within the defaults:
        the READY line after a reset is one console wait."""
        t = max(float(timeout), 1.0)
        return cls(reconnect=min(t, cls.reconnect), swd_reset=min(t, cls.swd_reset),
                   under_reset=min(t, cls.under_reset),
                   power_cycle=min(t, cls.power_cycle) + 2.0, reflash=cls.reflash)

    def of(self, step: str) -> float:
        return {"reconnect-console": self.reconnect, "swd-reset": self.swd_reset,
                "connect-under-reset": self.under_reset, "power-cycle": self.power_cycle,
                "reflash": self.reflash}[step]


class StepFailed(InfrastructureError):
    """One step of the ladder did not bring the board back (the climb goes on)."""


class RecoveryLadder:
    """Climbs the steps for one started rack board; see the module doc."""

    def __init__(self, executor: Executor, entry: RackEntry, *, store: LeaseStore | None,
                 timeouts: Timeouts, ready: str = READY, power: PowerDriver | None = None,
                 announce: Callable[[str], None] | None = None) -> None:
        self.executor = executor
        self.entry = entry
        self.store = store
        self.timeouts = timeouts
        self.ready = ready or READY
        self.power = power
        self.announce = announce or _stderr
        self.tried: list[tuple[str, bool, float, str]] = []  # step, ok, seconds, detail

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps this board has (no power-cycle without ``power:``)."""
        return tuple(s for s in STEPS if s != "power-cycle" or self.power is not None)

    def climb(self, cause: BaseException) -> str:
        """Try the steps in order; the name of the one after which the board answered.
        Raises RecoveryFailed (board marked unhealthy) when none did; Cancelled passes."""
        return self._climb(cause, self.steps, self._step)

    def climb_start(self, cause: BaseException, restart: Callable[[], object]) -> str:
        """After a start (flash and boot) failed: power-cycle, then ``restart`` (flash and
        boot again); only for a board with ``power:`` (without it, a failed flash counts
        against the board's health and the job moves on). Raises RecoveryFailed."""
        if self.power is None:
            raise RecoveryFailed(f"{self.entry.id}: no power control to recover a failed "
                                 "start with") from cause
        power = self.power

        def step(_name: str, _deadline: float) -> None:
            power.off()
            time.sleep(power.off_time)
            power.on()
            restart()

        return self._climb(cause, ("power-cycle",), step)

    def _climb(self, cause: BaseException, steps: tuple[str, ...],
               run: Callable[[str, float], None]) -> str:
        first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        self.announce(f"hil: {self.entry.id}: {first}; trying to recover the board")
        self._note(f"recovery: {first}")
        for step in steps:
            timeout = self.timeouts.of(step)
            t0 = time.monotonic()
            try:
                run(step, t0 + timeout)
                ok, detail = True, ""
            except HilError as exc:
                ok, detail = False, str(exc).splitlines()[0]
            seconds = time.monotonic() - t0
            self._record(step, ok, seconds, detail, first)
            if ok:
                self._note(f"recovered by {step}")
                self.announce(f"hil: {self.entry.id}: recovered by {step} "
                              f"({seconds:.1f} s)")
                return step
        reason = (f"recovery failed: {first}; tried {', '.join(s for s, *_ in self.tried)}, "
                  "the board never answered")
        if self.store is not None:
            self.store.mark_unhealthy(self.entry.id, reason)
        self._note(reason)
        raise RecoveryFailed(f"{self.entry.id}: {reason}",
                             hint=f"it is out of service: check it, then 'hil rack reset "
                             f"{self.entry.id}'") from cause

    # ------------------------------------------------------------------ steps
    def _step(self, step: str, deadline: float) -> None:
        ex = self.executor
        if step == "reconnect-console":
            ex.reconnect_console()
            self._answers_ping(deadline)
            return
        self._console_open()
        ex.console.discard()
        ex.console.note(f"recovery: {step}")
        if step == "swd-reset":
            ex.swd_reset(_left(deadline))
        elif step == "connect-under-reset":
            ex.connect_under_reset(_left(deadline))
        elif step == "power-cycle":
            assert self.power is not None
            self.power.off()
            ex.follow_power()
            time.sleep(self.power.off_time)
            self.power.on()
            ex.follow_power()
        else:
            ex.reflash(_left(deadline))
        ex.console.wait_ready(_left(deadline), pattern=self.ready)

    def _console_open(self) -> None:
        """The console is opened before any reset: boot output is never lost."""
        if not self.executor.console.is_open:
            try:
                self.executor.reconnect_console()
            except HilError:
                pass  # a board whose console comes back only with it (virtual: power on)

    def _answers_ping(self, deadline: float) -> None:
        console = self.executor.console
        if not (console.banner or "").startswith("hil-shell"):
            raise StepFailed("the firmware is not the hil shell: only a reset shows whether "
                             "it runs")
        reply = console.command("ping", _left(deadline))
        if reply != ["pong"]:
            raise StepFailed(f"ping answered {reply!r}, not pong")

    # ------------------------------------------------------------------ records
    def _note(self, text: str) -> None:
        console = self.executor._console
        if console is not None:
            console.note(text)
            console.flush()

    def _record(self, step: str, ok: bool, seconds: float, detail: str, cause: str) -> None:
        self.tried.append((step, ok, seconds, detail))
        outcome = "the board answered" if ok else f"failed: {detail}"
        self._note(f"recovery step {step}: {outcome} ({seconds:.1f} s)")
        if not ok:
            self.announce(f"hil: {self.entry.id}: recovery step {step} failed "
                          f"({seconds:.1f} s): {detail}")
        if self.store is not None:
            try:
                self.store.record_health_event(self.entry.id, "recovery", ok=ok, step=step,
                                               detail=detail or f"{seconds:.1f} s")
            except HilError as exc:
                self.announce(f"hil: warning: recovery step not in the health history: {exc}")
        image = self.executor.image
        if image is None or not image.sha256:
            return
        from hil import audit

        try:
            audit.record_recovery(image_sha256=image.sha256, board=self.executor.board.name,
                                  rack_id=self.entry.id, step=step, ok=ok, seconds=seconds,
                                  cause=cause, detail=detail or None)
        except HilError as exc:
            self.announce(f"hil: warning: recovery step not recorded in the audit trail: {exc}")


def _left(deadline: float) -> float:
    """Seconds left until ``deadline`` (a little at least, so a wait can still look)."""
    return round(max(deadline - time.monotonic(), 0.2), 1)


def _stderr(text: str) -> None:
    live(text)
