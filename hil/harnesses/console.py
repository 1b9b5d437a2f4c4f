"""The ``console`` harness: regular expressions that must appear in the console output.

Each pattern (app.yaml ``expect: [...]`` or ``--expect REGEX``) is one test case, passed when
a console line matches it (``re.search``, one line at a time), failed when it has not within
the timeout (from boot), with the last lines received. With ``ordered: true`` (``--ordered``)
each pattern counts only after the one before it matched; otherwise in any order.
"""

from __future__ import annotations

import re

from hil.crash import CrashError
from hil.errors import HilError, UsageError
from hil.harnesses.base import Event, HarnessConfig, TestCase


def compile_patterns(patterns: tuple[str, ...], source: str) -> list[re.Pattern[str]]:
    """The patterns compiled; UsageError naming ``source`` (file and key, or the option)."""
    if not patterns:
        raise UsageError("the console harness needs patterns to expect",
                         hint="give --expect REGEX (repeatable), or 'expect: [...]' in "
                         "app.yaml with 'harness: console'")
    compiled = []
    for i, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise UsageError(f"{source}[{i}]: {pattern!r} is not a regular expression: {exc}",
                             hint="patterns are Python regular expressions, matched against "
                             "each console line") from exc
    return compiled


class ConsoleHarness:
    """Expected console patterns as test cases; see the module doc."""

    name = "console"

    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        self.patterns = compile_patterns(config.expect, config.expect_source)
        self.ordered = config.ordered
        self.run_timeout = config.timeout
        self.seen: dict[int, str] = {}  # pattern index -> the line that matched
        self.lines: list[str] = []  # lines since the last match, for the next case's output

    @property
    def done(self) -> bool:
        return len(self.seen) == len(self.patterns)

    def _case_name(self, i: int) -> str:
        return f"expect[{i}] /{self.patterns[i].pattern}/"

    def feed(self, line: str) -> list[Event]:
        line = line.rstrip("\r")
        events: list[Event] = []
        self.lines.append(line)
        for i in self._candidates():
            if self.patterns[i].search(line):
                self.seen[i] = line
                events.append(TestCase(self._case_name(i), self.config.classname, "passed",
                                       output=self.lines))
                self.lines = []
            elif self.ordered:
                break  # the next pattern has to come first
        return events

    def _candidates(self) -> list[int]:
        todo = [i for i in range(len(self.patterns)) if i not in self.seen]
        return todo

    def finish(self, stop: HilError | None) -> list[TestCase]:
        owed = []
        crashed = isinstance(stop, CrashError)
        why = "the firmware crashed" if crashed else \
            f"not seen within {self.run_timeout:g} s"
        first_missing: int | None = None
        for i in self._candidates():
            message = why
            if self.ordered and first_missing is not None:
                message = f"not reached: {self._case_name(first_missing)} never matched"
            elif self.ordered and i > 0:
                message += f" (after {self._case_name(i - 1)})"
            first_missing = i if first_missing is None else first_missing
            owed.append(TestCase(self._case_name(i), self.config.classname,
                                 "error" if crashed else "failed", message=message,
                                 text=message + ("\n" + str(stop) if stop else "")))
        return owed
