"""The ``unity`` harness: Unity test output -> test cases, for any image that prints it.

Unity prints one line per test, ``file:line:name:PASS``, ``file:line:name:FAIL: message``
or ``file:line:name:IGNORE[: reason]``, then a dashed line, ``N Tests M Failures K Ignored``
and ``OK`` or ``FAIL``. Other lines (the test's own prints, a boot banner) are kept as the
output of the test that follows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hil.errors import HilError
from hil.harnesses.base import Event, HarnessConfig, TestCase

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


class UnityParser:
    """Unity output, one line at a time; ``run`` holds what was seen so far."""

    def __init__(self) -> None:
        self.run = UnityRun([])
        self._pending: list[str] = []

    @property
    def done(self) -> bool:
        return self.run.verdict is not None

    def feed(self, raw: str) -> UnityCase | None:
        """Take one line; the case it completes, if any."""
        line = raw.rstrip("\r")
        m = RESULT.match(line)
        if m:
            case = UnityCase(m["name"].strip(), m["file"], int(m["line"]),
                             _STATUS[m["status"]], (m["message"] or "").strip(), self._pending)
            self._pending = []
            self.run.cases.append(case)
            return case
        s = SUMMARY.match(line)
        if s:
            self.run.tests, self.run.failures, self.run.ignored = (
                int(s["tests"]), int(s["failures"]), int(s["ignored"]))
        elif self.run.tests is not None and VERDICT.match(line):
            self.run.verdict = line.strip()
        elif line.strip() and not set(line.strip()) <= {"-"}:
            self._pending.append(line)
        return None


def parse(text: str, *, times: list[float] | None = None) -> UnityRun:
    """Parse Unity output; ``times`` (optional) gives each line's arrival time."""
    parser = UnityParser()
    last_t = times[0] if times else 0.0
    for i, line in enumerate(text.splitlines()):
        case = parser.feed(line)
        if case is not None and times:
            t = times[i] if i < len(times) else last_t
            case.seconds, last_t = max(t - last_t, 0.0), t
    return parser.run


class UnityHarness:
    """Unity's output as test cases (classname ``board.app.<file stem>``)."""

    name = "unity"

    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        self.run_timeout = max(60.0, 10 * config.timeout)
        self.parser = UnityParser()

    @property
    def done(self) -> bool:
        return self.parser.done

    def feed(self, line: str) -> list[Event]:
        case = self.parser.feed(line)
        return [self._case(case)] if case is not None else []

    def _case(self, c: UnityCase) -> TestCase:
        where = f"\n  at {c.file}:{c.line}" if c.status == "failed" else ""
        return TestCase(c.name, f"{self.config.classname}.{Path(c.file).stem}", c.status,
                        message=c.message, text=c.message + where, output=list(c.output))

    def finish(self, stop: HilError | None) -> list[TestCase]:
        if stop is not None:
            return []  # the runner reports the crash or the timeout
        mismatch = self.parser.run.mismatch()
        if mismatch is None and self.parser.run.verdict == "FAIL" and \
                not self.parser.run.count("failed"):
            mismatch = "Unity's verdict is FAIL but no test failed"
        if mismatch:
            return [TestCase("unity-summary", self.config.classname, "failed",
                             message=mismatch, text=mismatch)]
        return []
