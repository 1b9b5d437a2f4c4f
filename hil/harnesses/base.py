"""The line-harness interface and its one runner: console lines in, test cases out.

A harness reads what an image prints and says which tests passed. Contract:

- the factory (what the ``hil.harness`` entry point names) is called once per run with a
  ``HarnessConfig`` and does no I/O; it raises ``HilError`` (e.g. ``UsageError``) when the
  config cannot work for it (the console harness without patterns);
- ``run_timeout`` is how long the runner waits, from boot, for ``done``;
- ``feed(line)`` gets each console line in order, without CR/LF, and returns the events the
  line completes: a finished ``TestCase`` or a ``Crashed`` report (the runner stops there);
- ``done`` turns True once the output's end was seen (Unity's OK/FAIL, ztest's PROJECT
  EXECUTION line, the last console pattern);
- ``finish(stop)`` is called once at the end: ``stop`` is None when ``done`` was reached, else
  the ``ConsoleTimeout`` or ``CrashError`` that ended the run; it returns the cases still owed
  (a test that was running, patterns not seen, a summary that disagrees with the cases).

The runner (``run``) adds one ``<harness>-run`` case when a stop is not explained by a case of
``finish``, so a crash or a timeout is never silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from hil.console import Console, ConsoleTimeout
from hil.crash import Crash, CrashError
from hil.errors import HilError

STATUSES = ("passed", "failed", "skipped", "error")


@dataclass
class TestCase:
    """One finished test: ``status`` is passed, failed, skipped or error; ``seconds`` None
    means "the time since the previous case" (the runner measures it)."""

    __test__ = False  # not a pytest test class

    name: str
    classname: str
    status: str
    message: str = ""
    text: str = ""  # failure details: assertion lines, the last console lines
    output: list[str] = field(default_factory=list)  # the test's own lines
    seconds: float | None = None


@dataclass(frozen=True)
class Crashed:
    """The image reported a crash (e.g. ``ZEPHYR FATAL ERROR``); ``crash`` holds what the
    registers printed say (decoded through the ELF by the runner)."""

    crash: Crash


Event = TestCase | Crashed


@dataclass(frozen=True)
class HarnessConfig:
    """What a harness may use: where it runs and the user's patterns and timeout."""

    board: str
    app: str
    timeout: float = 10.0  # seconds per expected output (``--timeout``, ``[test] timeout``)
    expect: tuple[str, ...] = ()  # console patterns (``--expect``, app.yaml ``expect``)
    ordered: bool = False  # patterns must appear in this order
    expect_source: str = "--expect"  # where the patterns came from, for error messages
    elf: Path | None = None

    @property
    def classname(self) -> str:
        """The JUnit classname of cases that have no suite of their own."""
        return f"{self.board}.{self.app}"


@runtime_checkable
class Harness(Protocol):
    """A line-based harness; see the module doc for the call order."""

    name: str
    run_timeout: float

    def feed(self, line: str) -> list[Event]: ...

    @property
    def done(self) -> bool: ...

    def finish(self, stop: HilError | None) -> list[TestCase]: ...


HarnessFactory = Callable[[HarnessConfig], Harness]


@dataclass
class HarnessRun:
    """What one run produced: the cases in order and the error that stopped it, if any."""

    cases: list[TestCase]
    stop: ConsoleTimeout | CrashError | None = None
    lines: int = 0  # console lines read


def run(console: Console, harness: Harness, config: HarnessConfig) -> HarnessRun:
    """Read ``console`` from boot until ``harness.done`` or its ``run_timeout``; never raises
    ConsoleTimeout or CrashError (they end the run and are kept in ``stop``); a lost console
    (``ConsoleLost``) and emulator errors propagate."""
    cases: list[TestCase] = []
    start = last = time.monotonic()
    deadline = start + harness.run_timeout
    stop: ConsoleTimeout | CrashError | None = None
    count = 0

    def add(case: TestCase) -> None:
        nonlocal last
        now = time.monotonic()
        if case.seconds is None:
            case.seconds = max(now - last, 0.0)
        last = now
        cases.append(case)

    try:
        while not harness.done:
            try:
                line = console.read_line(timeout=max(deadline - time.monotonic(), 0.0))
            except ConsoleTimeout as exc:
                raise ConsoleTimeout(
                    f"{console.name}: the {harness.name} harness saw no end of the run within "
                    f"{harness.run_timeout:g} s", last_lines=exc.last_lines,
                    transcript=exc.transcript) from exc
            count += 1
            for event in harness.feed(line):
                if isinstance(event, Crashed):
                    console.raise_crash(event.crash)  # decodes the PC, notes it, raises
                else:
                    add(event)
    except (ConsoleTimeout, CrashError) as exc:
        stop = exc
    if isinstance(stop, CrashError):  # lines that came with the crash report: their results
        for line in console.pending_lines():
            count += 1
            for event in harness.feed(line):
                if isinstance(event, TestCase):
                    add(event)
    console.flush()
    owed = harness.finish(stop)
    for case in owed:
        add(case)
    if stop is not None and not _explained(stop, owed):
        add(TestCase(f"{harness.name}-run", config.classname,
                     "error" if isinstance(stop, CrashError) else "failed",
                     message=str(stop).splitlines()[0], text=str(stop)))
    return HarnessRun(cases, stop, count)


def _explained(stop: HilError, owed: list[TestCase]) -> bool:
    wanted = ("error",) if isinstance(stop, CrashError) else ("failed", "error")
    return any(c.status in wanted for c in owed)
