"""Holding a board for the debugger: ``hil debug``'s session and ``--debug-on-failure``.

``serve(console, ...)`` copies the board's console to stdout (and, when stdin is a terminal,
typed lines to the board) until Ctrl-C or ``seconds``; the caller owns the executor and cleans
up. ``keep_for_debugger(executor, stop, policy)`` halts the board of a crashed or timed-out
test, prints the gdb command and waits as ``policy`` says: never unattended (a CI run without
a terminal only gets the command and a note), ``--debug-wait SECONDS`` waits that long,
otherwise it waits for Ctrl-C when stdin is a terminal. Ctrl-C raises Cancelled as anywhere
in hil: the caller's context managers stop the board and release its lease.
"""

from __future__ import annotations

import os
import select
import sys
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from hil.crash import CrashError
from hil.debug import hold
from hil.errors import HilError

if TYPE_CHECKING:
    from hil.console import Console
    from hil.executors import Executor

POLL = 0.1  # seconds per console read while serving


@dataclass(frozen=True)
class DebugOnFailure:
    """``hil test --debug-on-failure``: how long to keep a failed board for gdb.

    ``wait`` seconds (``--debug-wait``); None: until Ctrl-C when stdin is a terminal, not at
    all otherwise (an unattended run is never blocked)."""

    wait: float | None = None

    def seconds(self, interactive: bool) -> float | None:
        """How long to hold: a number, None for "until Ctrl-C", 0 for not at all."""
        if self.wait is not None:
            return self.wait
        return None if interactive else 0.0


def stdin_is_terminal() -> bool:
    """Whether file descriptor 0 is a terminal (``sys.stdin`` may be pytest's stand-in)."""
    try:
        return os.isatty(0)
    except OSError:
        return False


def keep_for_debugger(executor: Executor, why: BaseException, policy: DebugOnFailure, *,
                      out: IO[str] | None = None, interactive: bool | None = None) -> bool:
    """Halt ``executor``'s target after ``why`` (a crash or timeout), print the gdb command
    and hold it as ``policy`` says; returns whether gdb could be offered. Cancelled (Ctrl-C)
    propagates."""
    out = out or sys.stderr
    name = executor.board.name
    what = "crashed" if isinstance(why, CrashError) else "timed out"
    try:
        access = executor.debug_access()
    except HilError as exc:
        print(f"hil: --debug-on-failure: {name} {what}, but it cannot be offered to gdb: "
              f"{exc}", file=out, flush=True)
        return False
    executor.halted_for_debug = True
    from dataclasses import replace

    from hil.debug import source_dirs
    from hil.settings import current

    # the app is not known here: the runtime's sources and those under the project root
    access = replace(access, source_dirs=source_dirs(current().root))
    print(f"hil: --debug-on-failure: {name} {what} ({str(why).splitlines()[0]}); the target "
          f"is halted on {executor.description}", file=out)
    print(access.describe(), file=out, flush=True)
    seconds = policy.seconds(stdin_is_terminal() if interactive is None else interactive)
    if seconds == 0:
        print("hil: not waiting for a debugger: stdin is not a terminal (give --debug-wait "
              "SECONDS to keep the board that long); the board is stopped now", file=out,
              flush=True)
        return True
    if seconds is None:
        print("hil: waiting for the debugger; Ctrl-C ends the wait and the run", file=out,
              flush=True)
    else:
        print(f"hil: waiting {seconds:g} s for the debugger (--debug-wait); Ctrl-C ends the "
              "wait and the run", file=out, flush=True)
    hold(seconds)
    return True


def serve(console: Console, *, seconds: float | None = None, forward_input: bool | None = None,
          out: IO[str] | None = None) -> None:
    """Show the console until ``seconds`` have passed (None: until Ctrl-C, which raises
    Cancelled); typed lines go to the board when stdin is a terminal. A firmware FAULT
    report is shown and serving goes on (the debugger is attached); an emulator lockup
    (CrashError) or death (EmulatorError) ends it: raised, there is no target left."""
    out = out or sys.stdout
    forward = stdin_is_terminal() if forward_input is None else forward_input
    stdin = 0 if forward else -1
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        try:
            text = console.read_available(POLL)
        except CrashError as exc:  # the firmware's FAULT report: show it, keep serving
            if exc.crash.source == "emulator":
                raise
            text = f"\n{exc}\n"
        if text:
            out.write(text)
            out.flush()
        if stdin >= 0 and select.select([stdin], [], [], 0)[0]:
            data = os.read(stdin, 1024)
            if not data:  # Ctrl-D: no more input, the session goes on
                stdin = -1
            else:
                console.write(data)
