"""Executors: one interface for "a running board", on QEMU or on real hardware.

Contract of an ``Executor`` (a context manager; the constructor does no I/O):

1. ``start(image)`` boots ``image`` (flash + reset on hardware; spawn the emulator in QEMU)
   and returns the open ``Console``; raises EmulatorError, ConsoleError, FlashError,
   NoHardwareError.
2. ``console`` is that console while running; ``reset()`` restarts the image from the
   beginning (the console stays the same object, with its input discarded).
3. ``stop()`` (or leaving the ``with`` block) ends everything: no process, port or lease is left
   behind, whatever happened before. ``outcome`` then says how the run ended.
4. With a debug mode (``debug``, set before ``start``: ``hil.debug.HALT`` or ``LISTEN``),
   ``debug_access()`` halts the running target and returns where gdb reaches it
   (``hil.debug.GdbAccess``); the gdbstub or gdbserver ends with ``stop()``.

Rack boards can be recovered when hung (``recover``, the ladder of ``hil.recovery``); the
steps are the executor's ``reconnect_console``, ``swd_reset``, ``connect_under_reset``,
``follow_power`` (after a power switch) and ``reflash``, each raising a HilError when it
cannot be done.

``select_executor`` picks one from ``--on auto|hardware|qemu`` and says on the terminal which
and why; ``choose_executor`` is the same decision without constructing anything.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

from hil.boards import Board
from hil.errors import ConfigError, InfrastructureError, NoHardwareError, UsageError
from hil.image import Image

if TYPE_CHECKING:
    from hil.console import Console
    from hil.debug import GdbAccess
    from hil.rack.inventory import RackEntry

ON_CHOICES = ("auto", "hardware", "qemu")


@dataclass
class Outcome:
    """How a run ended: ``stopped`` (by us), ``crashed``, ``died`` or ``running``."""

    state: str = "running"
    detail: str = ""
    exit_code: int | None = None


class Executor(ABC):
    """A running board; see the module doc for the contract."""

    kind: str = ""
    debug: str | None = None  # hil.debug.HALT or LISTEN: reachable from gdb (set before start)
    halted_for_debug = False  # debug_access() stopped it for gdb (reset to run it again)

    def __init__(self, board: Board, *, work_dir: Path, timeout: float = 10.0) -> None:
        self.board = board
        self.work_dir = Path(work_dir)
        self.timeout = timeout
        self.image: Image | None = None
        self.entry: RackEntry | None = None  # the rack entry it runs on (None: plain QEMU)
        self.outcome = Outcome("not started")
        self._console: Console | None = None

    @property
    @abstractmethod
    def description(self) -> str:
        """For humans: ``QEMU (netduinoplus2)``, ``hardware f4-a (stlink:...)``."""

    @property
    def outcome(self) -> Outcome:
        """How the run ended; an executor that runs another one reports that one's, so a
        crash or death of QEMU shows here at once."""
        inner = self._running()
        if inner is not None and inner.outcome.state != "not started":
            return inner.outcome
        return self._outcome

    @outcome.setter
    def outcome(self, value: Outcome) -> None:
        self._outcome = value

    def _running(self) -> Executor | None:
        """The executor this one delegates to, if any (leased and virtual boards)."""
        return None

    @property
    def console(self) -> Console:
        if self._console is None:
            raise UsageError(f"{self.description}: not started")
        return self._console

    @abstractmethod
    def start(self, image: Image) -> Console: ...

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def debug_access(self) -> GdbAccess:
        """Halt the target and say where gdb reaches it (needs ``debug`` set at start);
        raises UsageError when this executor cannot be debugged."""
        raise UsageError(f"{self.description} cannot be debugged with gdb")

    def check(self) -> None:  # noqa: B027 - a hook with a default, not abstract
        """Raise if the board crashed or died since started (an emulator sees it; on
        hardware nothing can, so this does nothing)."""

    # ------------------------------------------------------------------ recovery
    def recover(self, cause: BaseException, *, ready: str | None = None) -> str | None:
        """Climb the recovery ladder after ``cause``; the step that brought the board back,
        or None when this executor has no ladder (plain QEMU). Raises RecoveryFailed."""
        return None

    def reconnect_console(self) -> None:
        """Ladder step 1: close and reopen the console."""
        self.console.reconnect()

    def swd_reset(self, timeout: float) -> None:
        """Ladder step 2: reset through the debug probe."""
        raise InfrastructureError(f"{self.description}: no reset through a probe")

    def connect_under_reset(self, timeout: float) -> None:
        """Ladder step 3: connect with nRESET held, then reset."""
        raise InfrastructureError(f"{self.description}: no connect under reset")

    def follow_power(self) -> None:  # noqa: B027 - a hook with a default, not abstract
        """After a power switch (ladder step 4): a virtual board stops or boots its QEMU;
        a real board needs nothing."""

    def reflash(self, timeout: float) -> None:
        """Ladder step 5: flash the started image again, with reset."""
        raise InfrastructureError(f"{self.description}: cannot flash again")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Choice:
    """Which executor to use and why (for the terminal and the verdict)."""

    kind: str  # "qemu" | "hardware"
    reason: str
    entry: RackEntry | None = None  # the rack entry for hardware
    extra: dict[str, str] = field(default_factory=dict)
    entries: tuple[RackEntry, ...] = ()  # rack entries to lease one of (hardware or virtual)

    @property
    def virtual(self) -> bool:
        return self.kind == "qemu" and bool(self.entries)

    def describe(self, board: Board) -> str:
        if self.kind == "qemu":
            machine = board.qemu.machine if board.qemu else "?"
            where = (f" on a virtual board of the rack ({', '.join(e.id for e in self.entries)}:"
                     " flashed into its simulated probe)" if self.virtual else "")
            return f"{board.name}: running in QEMU ({machine}){where}: {self.reason}"
        return f"{board.name}: running on hardware: {self.reason}"


def choose_executor(board: Board, on: str = "auto", require_hardware: bool = False, *,
                    rack_path: Path | None = None) -> Choice:
    """Decide between hardware and QEMU; raises NoHardwareError or UsageError."""
    if on not in ON_CHOICES:
        raise UsageError(f"--on must be one of {', '.join(ON_CHOICES)}, not '{on}'")
    if require_hardware and on == "qemu":
        raise UsageError("--require-hardware contradicts --on qemu")
    if on == "qemu":
        if board.qemu is None:
            raise ConfigError(f"board {board.name} has no qemu section",
                              hint="run it on hardware (--on hardware)")
        return Choice("qemu", "requested with --on qemu")
    from hil.executors.hardware import present_hardware

    present, why_not = present_hardware(board, rack_path=rack_path)
    sick = _unhealthy(present, rack_path, board)
    if sick:  # out of service: never chosen, as in the gate's plan
        present = [e for e in present if e.id not in sick]
        ids = ", ".join(sick)
        why_not = (f"{why_not}; " if not present and why_not else "") + \
            f"unhealthy, skipped: {ids} ({'; '.join(sick.values())})"
    if present:
        ids = ", ".join(e.id for e in present)
        return Choice("hardware", f"rack entries {ids} present (one is leased per run)",
                      present[0], entries=tuple(present))
    if (on == "hardware" or require_hardware) and sick:  # only rack boards serve: no wait
        from hil.rack.leases import boards_unhealthy

        raise boards_unhealthy(sick)
    if on == "hardware" or require_hardware:
        flag = "--require-hardware" if require_hardware else "--on hardware"
        raise NoHardwareError(f"board {board.name} is required ({flag}) but no {board.name} "
                              f"hardware is present: {why_not}",
                              hint="attach the board and list it in rack.yaml, or drop "
                              f"{flag} to fall back to QEMU")
    if board.qemu is None:
        raise NoHardwareError(f"no {board.name} hardware is present ({why_not}) and the "
                              "board has no QEMU machine to fall back to")
    from hil.rack.inventory import load_rack

    virtual = tuple(e for e in load_rack(rack_path).entries_for_board(board.name)
                    if e.is_virtual)
    sick_virtual = _unhealthy(virtual, rack_path, board)
    if sick_virtual:
        virtual = tuple(e for e in virtual if e.id not in sick_virtual)
        why_not += "; virtual boards unhealthy, skipped: " + ", ".join(sick_virtual) + \
            f" ({'; '.join(sick_virtual.values())}; 'hil rack check ID' re-checks one)"
    if virtual:
        return Choice("qemu", f"no hardware present ({why_not})", entries=virtual)
    return Choice("qemu", f"no hardware present ({why_not})")


def _unhealthy(entries, rack_path: Path | None, board: Board) -> dict[str, str]:
    """Rack id -> reason, for those of ``entries`` out of service."""
    if not entries:
        return {}
    from hil.rack import lease_store
    from hil.rack.inventory import load_rack
    from hil.rack.leases import unhealthy_reasons

    with lease_store(load_rack(rack_path)) as store:
        return unhealthy_reasons(store, [e.id for e in entries])


def make_executor(board: Board, choice: Choice, *, work_dir: Path,
                  timeout: float = 10.0, debug: str | None = None) -> Executor:
    """Construct (no I/O) the executor ``choice`` names (with debug mode ``debug``)."""
    executor: Executor
    if choice.entries:
        from hil.executors.leased import LeasedExecutor

        executor = LeasedExecutor(board, choice, work_dir=work_dir, timeout=timeout)
    elif choice.kind == "qemu":
        from hil.executors.qemu import QemuExecutor

        executor = QemuExecutor(board, work_dir=work_dir, timeout=timeout)
    else:
        from hil.executors.hardware import HardwareExecutor

        executor = HardwareExecutor(board, choice.entry, work_dir=work_dir, timeout=timeout)
    executor.debug = debug
    return executor


def select_executor(board: Board, on: str = "auto", require_hardware: bool = False, *,
                    work_dir: Path, timeout: float = 10.0, rack_path: Path | None = None,
                    announce: Callable[[str], None] | None = None) -> Executor:
    """Choose, say which and why (on stderr unless ``announce`` is given), and construct."""
    choice = choose_executor(board, on, require_hardware, rack_path=rack_path)
    (announce or _stderr)(f"hil: {choice.describe(board)}")
    return make_executor(board, choice, work_dir=work_dir, timeout=timeout)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
