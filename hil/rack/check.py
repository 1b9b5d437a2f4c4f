"""Health checks: lease a board, flash its golden image, run the smoke exchange, record it.

``HealthChecker.check(entry)`` is one check (``hil rack check``); ``due_checks`` says which
boards are due (an unhealthy one once its cool-down ``health.recheck_after`` has passed, an
idle healthy one when its last check is older than the idle-check period); ``IdleChecks``
runs the due ones in a loop until stopped (``hil rack-host --idle-checks``).

A check holds a lease on the board for as long as it runs, so no job gets a board
mid-check; unlike a job it may lease an unhealthy board (that is how one comes back). It
never takes a free board a queued job is about to get. A passing check returns an unhealthy
board to service; a failing one takes a healthy board out or keeps an unhealthy one out with
the reason added (``LeaseStore.record_check``). Only the board's own failures count: the rig
or the firmware answering wrongly (infrastructure errors and test failures). A golden image
that does not build, or a bad rack file, is an error of the check, not of the board.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from hil.boards import Board, load_board
from hil.console import Console
from hil.errors import (
    ConfigError,
    ExitCode,
    HilError,
    TestFailure,
    is_infrastructure,
    is_test_failure,
)
from hil.executors import Executor
from hil.image import Image
from hil.paths import state_dir
from hil.rack.health_spec import HealthSpec, SmokeStep
from hil.rack.inventory import Rack, RackEntry
from hil.rack.leases import Holder, Lease, LeaseInfo, LeaseStore

LOG = logging.getLogger(__name__)
CHECK_TTL = 60.0  # the check's lease, renewed by its heartbeat
LEASE_POLL = 0.25  # seconds between looks at a leased board while waiting for it
IDLE_POLL = 1.0  # seconds between looks for due checks in the idle-check loop
ERROR_BACKOFF = 60.0  # a check that could not run (golden does not build) is not retried
# sooner than this

Say = Callable[[str, str], None]  # (rack id, what is happening)


class SmokeFailed(TestFailure):
    """The golden image did not answer its smoke exchange; ``last_lines`` is what the board
    said last (kept out of the message, so the same failure reads the same each time)."""

    def __init__(self, message: str, last_lines: list[str]) -> None:
        super().__init__(message)
        self.last_lines = last_lines


class CheckStopped(Exception):
    """The check was stopped (rack-host is shutting down): nothing is recorded."""


@dataclass
class CheckResult:
    """One board's check: ``status`` passed, failed, skipped (leased) or error (could not
    run: its ``error`` says why); ``health`` the board's health afterwards, in words."""

    rack_id: str
    board: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    health: str = ""
    transcript: Path | None = None
    error: HilError | None = None
    last_lines: list[str] = field(default_factory=list)  # the board's last words (failed)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.rack_id, "board": self.board, "status": self.status,
                "detail": self.detail, "seconds": round(self.seconds, 2),
                "health": self.health,
                "transcript": str(self.transcript) if self.transcript else None,
                "last_lines": self.last_lines}


def exit_code(results: Sequence[CheckResult], *, named: bool) -> int:
    """0 when every checked board passed; a usage error (2) first, then the infrastructure
    code (3) for a failed board, then the own code of a check that could not run (build,
    toolchain); a board skipped because it was leased is 20 when it was named (``named``)."""
    codes = {int(r.error.exit_code) for r in results if r.status == "error" and r.error}
    if int(ExitCode.USAGE) in codes:
        return int(ExitCode.USAGE)
    if any(r.status == "failed" for r in results):
        return int(ExitCode.INFRASTRUCTURE)
    if codes:
        return min(codes)
    if named and any(r.status == "skipped" for r in results):
        return int(ExitCode.LEASE_TIMEOUT)
    return int(ExitCode.OK)


# ---------------------------------------------------------------- golden images

class GoldenImages:
    """Golden images, built (through the build cache) once per board type and spec."""

    def __init__(self, rack: Rack, work_dir: Path, toolchain: str = "gcc") -> None:
        self.rack = rack
        self.work_dir = work_dir
        self.toolchain = toolchain
        self._made: dict[tuple[str, str | None, Path | None], Image] = {}

    def get(self, board: Board, spec: HealthSpec) -> Image:
        key = (board.name, spec.golden, spec.golden_path)
        if key not in self._made:
            self._made[key] = self._make(board, spec)
        return self._made[key]

    def _make(self, board: Board, spec: HealthSpec) -> Image:
        from hil.app import load_app
        from hil.build import build
        from hil.catalog import EXAMPLES_DIR

        if spec.golden_path is not None:
            from hil.image import check_image_file

            check_image_file(board, spec.golden_path)
            return Image.from_path(spec.golden_path, work_dir=self.work_dir / "golden")
        try:
            app = load_app(spec.golden if spec.golden else EXAMPLES_DIR / "shell")
        except ConfigError as exc:
            raise ConfigError(f"golden app of board type {board.name}: {exc.message}",
                              path=self.rack.path, key=f"{spec.where}.golden",
                              hint=exc.hint) from None
        return Image.from_build(build(board, app, toolchain=self.toolchain))


# ---------------------------------------------------------------- the smoke exchange

def run_smoke(console: Console, steps: Sequence[SmokeStep], timeout: float,
              stop: threading.Event | None = None) -> str:
    """Run the exchanges in order; returns the last matched line. Raises SmokeFailed (no
    matching line within ``timeout`` per pattern), CrashError, ConsoleLost, CheckStopped."""
    pending = ""
    last = ""
    for step in steps:
        if step.send is not None:
            console.note(f"health check: send {step.send!r}")
            console.send(step.send)
        for pattern in step.expect:
            regex = re.compile(pattern)
            deadline = time.monotonic() + timeout
            while True:
                lines = pending.split("\n")
                pending = lines.pop()
                found = next((i for i, line in enumerate(lines)
                              if regex.search(line.removesuffix("\r"))), None)
                if found is not None:
                    last = lines[found].removesuffix("\r")
                    pending = "\n".join([*lines[found + 1:], pending])
                    break
                if stop is not None and stop.is_set():
                    raise CheckStopped()
                if time.monotonic() >= deadline:
                    console.note(f"health check: no line matching /{pattern}/")
                    after = f" after sending '{step.send}'" if step.send is not None else ""
                    raise SmokeFailed(f"no line matching /{pattern}/ within {timeout:g} s"
                                      f"{after}", console.last_lines(5))
                pending += console.read_available(min(0.1, deadline - time.monotonic()))
    return last


# ---------------------------------------------------------------- one check

class HealthChecker:
    """Checks boards of ``rack`` one at a time (``check``); see the module doc.

    ``consoles``: rack ids served by this process's rack host, with the console path a
    runner would use: such a board is checked as a runner sees it (its console, the host's
    QEMU) instead of in a QEMU of the check's own."""

    def __init__(self, rack: Rack, store: LeaseStore, *, say: Say | None = None,
                 consoles: dict[str, Path] | None = None, work_dir: Path | None = None,
                 stop: threading.Event | None = None) -> None:
        from hil.settings import current

        self.rack = rack
        self.store = store
        self.say = say or (lambda _id, _text: None)
        self.consoles = consoles or {}
        self.work_dir = work_dir or state_dir() / "checks" / time.strftime("%Y%m%d-%H%M%S")
        self.stop = stop
        self._transcript: Path | None = None  # the current check's console transcript
        toolchains = current().toolchains
        self.golden = GoldenImages(rack, self.work_dir, toolchains[0] if toolchains else "gcc")

    # -- leasing -------------------------------------------------------------------------
    def _lease(self, entry: RackEntry, wait: float) -> Lease | str:
        """The board's lease for the check, or why it cannot be had (leased, wanted)."""
        from hil.settings import current

        token = current().lease_token
        leases = self.store.leases()
        held = leases.get(entry.id)
        if token and held is not None and held.token == token:  # HIL_LEASE: the caller's
            return Lease(self.store, held, CHECK_TTL, borrowed=True)
        holder = Holder.current(f"hil rack check {entry.id}")
        deadline = time.monotonic() + wait
        while True:
            info: LeaseInfo | None = self.store.lease_for_check(entry.id, holder=holder,
                                                                ttl=CHECK_TTL)
            if info is not None:
                lease = Lease(self.store, info, CHECK_TTL)
                lease.start_heartbeat()
                return lease
            if time.monotonic() >= deadline or (self.stop and self.stop.is_set()):
                held = self.store.leases().get(entry.id)
                if held is None:
                    return "a job waiting in the queue gets it first"
                who = held.holder
                return f"leased by {who.user}@{who.host}" + (
                    f" ({who.purpose})" if who.purpose else "")
            time.sleep(LEASE_POLL)

    def _off_by_hand(self, entry: RackEntry) -> str | None:
        """Why not to check a board a person switched off (checking would power it on)."""
        from hil.rack.leases import OFF_BY_HAND

        health = self.store.health().get(entry.id)
        reason = health.unhealthy_reason if health else None
        if isinstance(reason, str) and reason.startswith(OFF_BY_HAND):
            return f"{OFF_BY_HAND}: 'hil rack power {entry.id} on' first"
        return None

    def _executor(self, entry: RackEntry, board: Board, work_dir: Path,
                  timeout: float) -> Executor:
        from hil.executors.hardware import HardwareExecutor

        hosted = self.consoles.get(entry.id)
        if hosted is not None:  # through this host's console pty, as a runner sees it
            return HardwareExecutor(board, replace(entry, console=str(hosted)),
                                    work_dir=work_dir, timeout=timeout)
        if entry.probe.simulated:
            from hil.executors.virtual import VirtualBoardExecutor

            return VirtualBoardExecutor(board, entry, work_dir=work_dir, timeout=timeout)
        return HardwareExecutor(board, entry, work_dir=work_dir, timeout=timeout)

    # -- the check -----------------------------------------------------------------------
    def check(self, entry: RackEntry, *, wait: float = 0.0) -> CheckResult:
        """Check one board; never raises HilError (it becomes the result). Raises
        CheckStopped when ``stop`` was set mid-check (nothing recorded, lease released)."""
        t0 = time.monotonic()
        result = CheckResult(entry.id, entry.board, "error")
        spec = self.rack.health_for(entry)
        try:
            board = load_board(entry.board)
            self.say(entry.id, f"golden image {spec.golden_name} for {board.name}")
            image = self.golden.get(board, spec)
        except HilError as exc:
            result.detail, result.error = _first_line(exc), exc
            result.seconds = time.monotonic() - t0
            return result
        got = self._off_by_hand(entry) or self._lease(entry, wait)
        if isinstance(got, str):
            result.status, result.detail = "skipped", got
            result.seconds = time.monotonic() - t0
            return result
        with got:
            self.say(entry.id, "leased; flashing the golden image")
            try:
                result.transcript = self._run(entry, board, image, spec)
                result.status, result.detail = "passed", "smoke test passed"
            except HilError as exc:
                if not (is_infrastructure(exc) or is_test_failure(exc)):
                    result.detail, result.error = _first_line(exc), exc
                    result.seconds = time.monotonic() - t0
                    return result
                result.status, result.detail = "failed", _first_line(exc)
                result.transcript = self._transcript
                result.last_lines = list(getattr(exc, "last_lines", None) or [])
            ok = result.status == "passed"
            record = self.store.record_check(entry.id, ok, None if ok else result.detail)
        if record.returned:
            result.health = "returned to service"
        elif record.reason_after:
            result.health = "UNHEALTHY: " + record.reason_after
        else:
            result.health = "ok"
        result.seconds = time.monotonic() - t0
        return result

    def _run(self, entry: RackEntry, board: Board, image: Image, spec: HealthSpec) -> Path:
        work = self.work_dir / entry.id
        executor = self._executor(entry, board, work, spec.timeout)
        self._transcript = None
        try:
            with executor:
                console = executor.start(image)
                self._transcript = console.transcript_path
                console.note(f"health check of {entry.id}: golden {spec.golden_name}")
                self.say(entry.id, "flashed; running the smoke test")
                try:
                    run_smoke(console, spec.smoke, spec.timeout, self.stop)
                finally:
                    console.flush()
                return console.transcript_path or work
        finally:
            if self.stop is not None and self.stop.is_set():
                raise CheckStopped()


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return str(text).splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------- which checks are due

@dataclass(frozen=True)
class Due:
    entry: RackEntry
    why: str


def due_checks(rack: Rack, store: LeaseStore, entries: Sequence[RackEntry], *,
               idle_every: float | None = None, now: float | None = None) -> list[Due]:
    """The checks due among ``entries``: an unhealthy board whose cool-down
    (``recheck_after`` since it went out or since its last failed check) has passed, and,
    with ``idle_every``, a healthy unleased board not checked for that many seconds."""
    from hil.rack.leases import OFF_BY_HAND

    now = time.time() if now is None else now
    since = store.unhealthy_since()
    leased = store.leases()
    health = store.health()
    out = []
    for entry in entries:
        spec = rack.health_for(entry)
        reason = health[entry.id].unhealthy_reason if entry.id in health else None
        if isinstance(reason, str) and reason.startswith(OFF_BY_HAND):
            continue  # a person switched it off: it waits for them, not for a re-check
        if entry.id in since:
            if now >= since[entry.id] + spec.recheck_after:
                out.append(Due(entry, f"unhealthy; re-check after {spec.recheck_after:g} s"))
        elif idle_every is not None and entry.id not in leased:
            checks = [ev for ev in store.health_log(entry.id) if ev.kind == "check"]
            if not checks or now - checks[-1].at >= idle_every:
                out.append(Due(entry, "idle check"))
    return out


class IdleChecks:
    """The idle-check loop of ``hil rack-host --idle-checks``: every ``IDLE_POLL`` seconds,
    run the checks due among ``entries`` until ``stop`` is set. Call ``run`` in a thread of
    its own; it opens (and closes) its own connection to the lease database."""

    def __init__(self, rack: Rack, entries: Sequence[RackEntry], *, every: float,
                 consoles: dict[str, Path] | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.rack = rack
        self.entries = list(entries)
        self.every = every
        self.consoles = consoles or {}
        self.report = report or (lambda text: LOG.info("%s", text))
        self.stop = threading.Event()
        self.results: list[CheckResult] = []
        self._not_before: dict[str, float] = {}

    def run(self) -> None:
        from hil.rack import lease_store

        try:
            with lease_store(self.rack) as store:
                checker = HealthChecker(self.rack, store, consoles=self.consoles,
                                        stop=self.stop,
                                        say=lambda i, t: self.report(f"{i}: {t}"))
                while not self.stop.is_set():
                    self._round(store, checker)
                    self.stop.wait(min(IDLE_POLL, self.every))
        except CheckStopped:
            pass

    def _round(self, store: LeaseStore, checker: HealthChecker) -> None:
        try:
            due = due_checks(self.rack, store, self.entries, idle_every=self.every)
        except HilError as exc:  # the lease database is away: try again next round
            self.report(f"cannot read the rack's health: {_first_line(exc)}")
            return
        for item in due:
            if self.stop.is_set():
                return
            if self._not_before.get(item.entry.id, 0.0) > time.monotonic():
                continue
            self.report(f"{item.entry.id}: health check ({item.why})")
            try:
                result = checker.check(item.entry)
            except HilError as exc:  # recording failed (database): next round
                self.report(f"{item.entry.id}: check not recorded: {_first_line(exc)}")
                continue
            self.results.append(result)
            if result.status == "error":
                self._not_before[item.entry.id] = time.monotonic() + max(ERROR_BACKOFF,
                                                                         self.every)
            text = f"{result.status.upper()}: {result.detail}"
            self.report(f"{item.entry.id}: check {text}" + (
                f"; {result.health}" if result.health else ""))
