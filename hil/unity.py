"""Unity test output -> test cases: works for any image that prints Unity's format.

Unity prints one line per test, ``file:line:name:PASS``, ``file:line:name:FAIL: message``
or ``file:line:name:IGNORE[: reason]``, then a dashed line, ``N Tests M Failures K Ignored``
and ``OK`` or ``FAIL``. Other lines (the test's own prints, a boot banner) are kept as the
output of the test that follows them.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from hil.console import Console

RESULT = re.compile(
    r"^(?P<file>(?:[A-Za-z]:)?[^:\r\n]+):(?P<line>\d+):(?P<name>[^:\r\n]+):"
    r"(?P<status>PASS|FAIL|IGNORE)(?::\s?(?P<message>.*?))?\s*$")
SUMMARY = re.compile(r"^(?P<tests>\d+) Tests (?P<failures>\d+) Failures (?P<ignored>\d+) Ignored"
                     r"\s*$", re.MULTILINE)
VERDICT = re.compile(r"^(?P<verdict>OK|FAIL)\s*$", re.MULTILINE)


@dataclass
class UnityCase:
    """One test: status is ``passed``, ``failed`` or ``skipped`` (Unity's IGNORE)."""

    name: str
    file: str
    line: int
    status: str
    message: str = ""
    output: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class UnityRun:
    """All cases of one run and the summary Unity printed (None if it never came)."""

    cases: list[UnityCase]
    tests: int | None = None
    failures: int | None = None
    ignored: int | None = None
    verdict: str | None = None

    @property
    def complete(self) -> bool:
        return self.tests is not None

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)

    def mismatch(self) -> str | None:
        """Why the summary disagrees with the cases seen, or None."""
        if self.tests is None:
            return "no Unity summary line"
        seen = (len(self.cases), self.count("failed"), self.count("skipped"))
        said = (self.tests, self.failures, self.ignored)
        if seen != said:
            return (f"summary says {said[0]} tests, {said[1]} failures, {said[2]} ignored; "
                    f"output shows {seen[0]}, {seen[1]}, {seen[2]}")
        return None


_STATUS = {"PASS": "passed", "FAIL": "failed", "IGNORE": "skipped"}


def parse(text: str, *, times: list[float] | None = None) -> UnityRun:
    """Parse Unity output; ``times`` (optional) gives each line's arrival time."""
    cases: list[UnityCase] = []
    pending: list[str] = []
    run = UnityRun(cases)
    last_t = times[0] if times else 0.0
    for i, raw in enumerate(text.splitlines()):
        line = raw.rstrip("\r")
        m = RESULT.match(line)
        if m:
            t = times[i] if times and i < len(times) else last_t
            cases.append(UnityCase(m["name"].strip(), m["file"], int(m["line"]),
                                   _STATUS[m["status"]], (m["message"] or "").strip(),
                                   pending, max(t - last_t, 0.0)))
            pending, last_t = [], t
            continue
        s = SUMMARY.match(line)
        if s:
            run.tests, run.failures, run.ignored = (int(s["tests"]), int(s["failures"]),
                                                    int(s["ignored"]))
            continue
        if run.tests is not None and VERDICT.match(line):
            run.verdict = line.strip()
            continue
        if line.strip() and not set(line.strip()) <= {"-"}:
            pending.append(line)
    return run


def run_unity(console: Console, *, timeout: float) -> UnityRun:
    """Read the console from boot to Unity's final OK/FAIL line; parse it.

    Raises ConsoleTimeout (no summary in ``timeout``) or CrashError from the console.
    """
    lines: list[str] = []
    stamps: list[float] = []
    deadline = time.monotonic() + timeout
    seen_summary = False
    while True:
        line = console.read_line(timeout=max(deadline - time.monotonic(), 0.0))
        lines.append(line)
        stamps.append(time.monotonic())
        if SUMMARY.match(line):
            seen_summary = True
        elif seen_summary and VERDICT.match(line):
            break
    return parse("\n".join(lines), times=stamps)
