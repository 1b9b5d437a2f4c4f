"""The ``command`` power driver: the site's own programs switch the board (a relay script).

    power:
      driver: command
      on: "relayctl --channel 3 on"          # argv, split like a shell does (no shell runs)
      off: "relayctl --channel 3 off"
      cycle: "relayctl --channel 3 pulse 2"  # optional: else off, off_time, on
      timeout: 10                            # optional: seconds per command (default 30)
      off_time: 1                            # optional: seconds off in a cycle (default 1)

``{id}`` and ``{board}`` in a command become the rack entry's id and board name (``{{`` is a
literal brace). A relative program path is relative to the rack file's directory, where the
commands run. A command that exits non-zero is a PowerError carrying the end of its stderr.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from hil.errors import PowerError
from hil.power import PowerDriver, PowerSpec
from hil.power._common import DEFAULT_TIMEOUT_S, run_program, seconds, tail
from hil.schema import Reader

if TYPE_CHECKING:
    from hil.rack.inventory import RackEntry

PLACEHOLDERS = ("id", "board")


def _reader(spec: PowerSpec) -> Reader:
    """The driver's keys; YAML 1.1 reads a bare ``on:``/``off:`` key as true/false, so those
    keys are taken back to the names the user wrote."""
    r = spec.reader()
    if any(isinstance(k, bool) for k in r.data):
        r.data = {("on" if k else "off") if isinstance(k, bool) else k: v
                  for k, v in r.data.items()}
    return r


def _argv(r: Reader, key: str, values: dict[str, str]) -> tuple[str, ...]:
    """The command of ``key`` as argv with the placeholders filled; ConfigError if it is not
    one (empty, an unclosed quote, an unknown placeholder)."""
    text = r.str(key)
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise r.error(key, f"cannot split '{text}' into words: {exc}",
                      hint="close the quote; the command runs without a shell") from None
    if not words:
        raise r.error(key, "is empty", hint=f"give the program that switches the power {key}")
    try:
        return tuple(word.format_map(values) for word in words)
    except (KeyError, IndexError) as exc:
        raise r.error(key, f"unknown placeholder {{{exc.args[0]}}} in '{text}'",
                      hint="the placeholders are {id} and {board}; write {{ and }} for a "
                      "literal brace") from None
    except ValueError as exc:
        raise r.error(key, f"'{text}': {exc}",
                      hint="write {{ and }} for a literal brace") from None


@dataclass(frozen=True)
class CommandDriver(PowerDriver):
    """Runs the rack entry's own on/off/cycle commands, each bounded by ``timeout``."""

    name = "command"

    rack_id: str
    on_argv: tuple[str, ...]
    off_argv: tuple[str, ...]
    cycle_argv: tuple[str, ...] | None
    timeout: float = DEFAULT_TIMEOUT_S
    off_seconds: float = 1.0
    cwd: Path | None = None

    @classmethod
    def from_options(cls, spec: PowerSpec, entry: RackEntry) -> Self:
        r = _reader(spec)
        values = {"id": entry.id, "board": entry.board}
        on = _argv(r, "on", values)
        off = _argv(r, "off", values)
        cycle = _argv(r, "cycle", values) if r.has("cycle") else None
        r.raw("cycle", None)  # read (or absent): not an unknown key
        timeout = seconds(r, "timeout", DEFAULT_TIMEOUT_S, minimum=0.1)
        off_time = seconds(r, "off_time", 1.0)
        r.done()
        return cls(entry.id, on, off, cycle, timeout, off_time,
                   spec.path.parent if spec.path else None)

    @property
    def off_time(self) -> float:  # type: ignore[override]
        return self.off_seconds

    def on(self) -> None:
        self._run("on", self.on_argv)

    def off(self) -> None:
        self._run("off", self.off_argv)

    def cycle(self) -> None:
        if self.cycle_argv is None:
            super().cycle()
        else:
            self._run("cycle", self.cycle_argv)

    def describe(self, action: str | None = None) -> str:
        argv = {"on": self.on_argv, "off": self.off_argv}.get(action or "")
        if argv is None:  # a cycle (or no action named): its own command, else off then on
            argv = self.cycle_argv
        if argv is None:
            return f"command {shlex.join(self.off_argv)}, then {shlex.join(self.on_argv)}"
        return f"command {shlex.join(argv)}"

    def _run(self, action: str, argv: tuple[str, ...]) -> None:
        what = f"{self.rack_id}: power {action}"
        result = run_program(argv, timeout=self.timeout, what=what, cwd=self.cwd)
        if result.returncode != 0:
            said = tail(result.stderr) or tail(result.stdout) or "(no output)"
            raise PowerError(f"{what}: '{shlex.join(argv)}' exited with status "
                             f"{result.returncode}:\n{said}",
                             hint=f"run the command by hand to see why; it is the '{action}' "
                             "key of the entry's power: in the rack file")
