"""The ``ztest`` harness: Zephyr's ztest output -> one test case per test.

What ztest prints (Zephyr 3.x; the older API's ``Running test suite`` and results without a
duration are read too)::

    Running TESTSUITE <suite>
    START - <test>
        Assertion failed at main.c:38: <suite>_<test>: (1 not equal to 2)
     FAIL - <test> in 0.005 seconds
    TESTSUITE <suite> failed.
    ------ TESTSUITE SUMMARY START ------
    SUITE FAIL -  50.00% [<suite>]: pass = 1, fail = 1, skip = 0, total = 2 ...
     - FAIL - [<suite>.<test>] duration = 0.005 seconds
    ------ TESTSUITE SUMMARY END ------
    PROJECT EXECUTION FAILED

The lines between ``START`` and a ``FAIL`` are the failure's text (the assertion line its
message); ``ZEPHYR FATAL ERROR`` ends the run as a crash, the registers Zephyr printed before
it (``r15/pc``, ``r14/lr``; ``mepc``, ``ra`` on RISC-V) decoded through the ELF. Each case's
classname is its suite's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hil.crash import Crash, CrashError
from hil.errors import HilError
from hil.harnesses.base import Crashed, Event, HarnessConfig, TestCase

SUITE = re.compile(r"^\s*Running (?:TESTSUITE|test suite) (?P<suite>\S+)\s*$")
START = re.compile(r"^\s*START - (?P<test>\S+)\s*$")
RESULT = re.compile(r"^\s*(?P<status>PASS|FAIL|SKIP|BLOCK) - (?P<test>\S+)"
                    r"(?: in (?P<seconds>\d+(?:\.\d+)?) seconds)?\s*$")
SUITE_END = re.compile(r"^\s*TESTSUITE (?P<suite>\S+) (?P<how>succeeded|failed|skipped)\.?\s*$")
SUMMARY_START = re.compile(r"^-+ TESTSUITE SUMMARY START -+\s*$")
SUMMARY_END = re.compile(r"^-+ TESTSUITE SUMMARY END -+\s*$")
SUMMARY_CASE = re.compile(r"^\s*- (?P<status>PASS|FAIL|SKIP|BLOCK) - \[(?P<suite>[^\].]+)\."
                          r"(?P<test>[^\]]+)\]")
PROJECT = re.compile(r"^\s*PROJECT EXECUTION (?P<how>SUCCESSFUL|FAILED)\s*$")
FATAL = re.compile(r"ZEPHYR FATAL ERROR\s*(?P<what>.*?)\s*$")
# registers in Zephyr's fault dump (log prefix "E: " and padding vary)
REGISTER = re.compile(r"(?:\((?P<paren>r15/pc)\)|\b(?P<name>r14/lr|mepc|ra|mcause|mtval))\s*:"
                      r"\s*0x(?P<value>[0-9a-fA-F]+)")
_REG_KEYS = {"r15/pc": "PC", "r14/lr": "LR", "mepc": "mepc", "ra": "ra", "mcause": "mcause",
             "mtval": "mtval"}

_STATUS = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped", "BLOCK": "skipped"}


@dataclass
class _Open:
    """The test between its START and its result."""

    suite: str
    name: str
    lines: list[str] = field(default_factory=list)


class ZtestHarness:
    """Zephyr ztest output as test cases; see the module doc."""

    name = "ztest"

    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        self.run_timeout = max(60.0, 10 * config.timeout)
        self.suite = ""
        self.current: _Open | None = None
        self.cases: list[TestCase] = []
        self.failed_suites: list[str] = []
        self.summary: dict[tuple[str, str], str] = {}  # (suite, test) -> status
        self.in_summary = False
        self.project: str | None = None  # SUCCESSFUL | FAILED
        self.registers: dict[str, int] = {}
        self.stray: list[str] = []  # lines outside any test, for the next test's output

    @property
    def done(self) -> bool:
        return self.project is not None

    def feed(self, line: str) -> list[Event]:
        line = line.rstrip("\r")
        fatal = FATAL.search(line)
        if fatal:
            return [Crashed(self._crash(fatal["what"] or "", line))]
        for reg in REGISTER.finditer(line):
            self.registers[_REG_KEYS[reg["paren"] or reg["name"]]] = int(reg["value"], 16)
        if self.in_summary:
            self._summary_line(line)
            return []
        if m := SUITE.match(line):
            self.suite = m["suite"]
        elif m := START.match(line):
            events: list[Event] = []
            if self.current is not None:  # the previous test printed no result
                events.append(self._unfinished(self.current, f"no result line before "
                                               f"START - {m['test']}"))
            self.current = _Open(self.suite, m["test"], self.stray)
            self.stray = []
            return events
        elif m := RESULT.match(line):
            return [self._result(m)]
        elif m := SUITE_END.match(line):
            if m["how"] == "failed":
                self.failed_suites.append(m["suite"])
        elif SUMMARY_START.match(line):
            self.in_summary = True
        elif m := PROJECT.match(line):
            self.project = m["how"]
        elif line.strip() and not set(line.strip()) <= {"="}:
            (self.current.lines if self.current else self.stray).append(line)
        return []

    def _summary_line(self, line: str) -> None:
        if SUMMARY_END.match(line):
            self.in_summary = False
        elif m := SUMMARY_CASE.match(line):
            self.summary[(m["suite"], m["test"])] = _STATUS[m["status"]]

    def _result(self, m: re.Match[str]) -> TestCase:
        test, status = m["test"], _STATUS[m["status"]]
        lines: list[str] = []
        suite = self.suite
        if self.current is not None and self.current.name == test:
            lines, suite = self.current.lines, self.current.suite
        self.current = None
        seconds = float(m["seconds"]) if m["seconds"] else None
        case = TestCase(test, suite or self.config.classname, status, seconds=seconds)
        if status == "failed":
            text = [x.strip() for x in lines if x.strip()]
            # the message: the assertion line (ztest's "Assertion failed at ..."), not the
            # test's own prints before it
            asserts = [x for x in text if "Assertion failed" in x] or \
                [x for x in text if "assert" in x.lower()]
            case.message = (asserts or text or ["FAIL (no assertion text printed)"])[0]
            case.text = "\n".join(text) or case.message
        elif m["status"] == "BLOCK":
            case.message = "blocked (ztest BLOCK: a test it depends on failed)"
            case.output = lines
        else:
            case.output = lines
        self.cases.append(case)
        return case

    def _unfinished(self, cur: _Open, why: str) -> TestCase:
        case = TestCase(cur.name, cur.suite or self.config.classname, "failed",
                        message=f"{cur.name} did not finish: {why}", text="\n".join(
                            [*cur.lines, why]))
        self.cases.append(case)
        return case

    def _crash(self, what: str, line: str) -> Crash:
        registers = dict(self.registers)
        self.registers = {}
        kind = "ZEPHYR FATAL ERROR" + (f" {what}" if what else "")
        return Crash(kind=kind, registers=registers, source="firmware", raw=line.strip())

    def finish(self, stop: HilError | None) -> list[TestCase]:
        owed: list[TestCase] = []
        if self.current is not None:  # the test that was running when the run ended
            cur, self.current = self.current, None
            how = "crashed" if isinstance(stop, CrashError) else "did not finish"
            detail = str(stop) if stop is not None else "no result line"
            owed.append(TestCase(cur.name, cur.suite or self.config.classname,
                                 "error" if isinstance(stop, CrashError) else "failed",
                                 message=f"{cur.name} {how}: {detail.splitlines()[0]}",
                                 text="\n".join([*cur.lines, detail]), seconds=None))
        if stop is None:
            problem = self._mismatch()
            if problem:
                owed.append(TestCase("ztest-summary", self.config.classname, "failed",
                                     message=problem, text=problem))
        return owed

    def _mismatch(self) -> str | None:
        """Why the end of the run disagrees with the cases seen, or None."""
        seen = {(c.classname, c.name): c.status for c in self.cases}
        failed = any(c.status == "failed" for c in self.cases)
        if self.project == "FAILED" and not failed:
            return "PROJECT EXECUTION FAILED but no test failed"
        if self.project == "SUCCESSFUL" and failed:
            return "PROJECT EXECUTION SUCCESSFUL but a test failed"
        if self.summary and self.summary != seen:
            diff = sorted(set(self.summary.items()) ^ set(seen.items()))
            return "the TESTSUITE SUMMARY disagrees with the results printed: " + ", ".join(
                f"{suite}.{test} {status}" for (suite, test), status in diff)
        quiet = [s for s in self.failed_suites
                 if not any(c.classname == s and c.status == "failed" for c in self.cases)]
        if quiet:
            return f"TESTSUITE {quiet[0]} failed but none of its tests failed"
        return None
