"""JUnit XML verdicts: one ``<testsuite>`` per board run, with hil's properties.

Properties of every suite: ``hil.board``, ``hil.executor`` (``qemu`` or ``hardware``),
``hil.image.sha256`` (of the HEX), ``hil.toolchain``, and any extra the caller adds (the rack
adds ``hil.rack_id`` and ``hil.probe``). A failure's text carries the console transcript tail.

The file follows the junit-10.xsd rules Jenkins' xunit plugin validates against (GitLab reads
the same file): ``<testsuites>`` carries only name, time, tests, failures, errors; properties
exist only on ``<testsuite>``, never on ``<testcase>``. So a case names the rack entry that ran
it through its suite: ``split`` gives one suite per rack entry (``Case.properties`` say which).

Retries: ``Case.reruns`` holds a case's earlier attempts (``Attempt``, oldest first; the case's
own status, message and text are its last attempt). They are written as Surefire's elements,
which Jenkins and GitLab show: ``flakyFailure``/``flakyError`` when the case passed in the end
(a flaky case: counted as passed), ``rerunFailure``/``rerunError`` when it still failed. Each
attempt's board, rack entry and executor are in its message prefix and its ``system-out``.
"""

from __future__ import annotations

import io
import os
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hil.fsutil import atomic_write

# per-case properties: where a case ran (the suite it is split into says it)
PLACEMENT = ("hil.rack_id", "hil.probe", "hil.executor")


@dataclass
class Attempt:
    """One earlier attempt of a case that was run again: failed or error, and where."""

    status: str  # "failed" or "error"
    message: str = ""
    text: str = ""
    seconds: float = 0.0
    board: str = ""
    rack_id: str | None = None
    executor: str = ""  # "qemu", "hardware", or a description
    output: str = ""

    @property
    def where(self) -> str:
        """The board of the attempt in words: "nucleo-f4 (f4-a, qemu)"."""
        detail = ", ".join(x for x in (self.rack_id, self.executor) if x)
        return f"{self.board} ({detail})" if detail else self.board or "?"


@dataclass
class Case:
    """One test case; status is passed, failed, error or skipped (of its last attempt).

    ``reruns``: the earlier attempts, oldest first (see the module doc). ``properties``:
    where the case ran (``hil.rack_id``, ``hil.probe``, ``hil.executor``), when it is known
    per case; ``split`` moves them to the suite (the schema has no testcase properties).
    ``recovered``: the recovery-ladder step that brought its board back (the XML says it in
    the case's ``system-out``).
    """

    name: str
    classname: str
    status: str = "passed"
    seconds: float = 0.0
    message: str = ""
    text: str = ""  # failure details (assertion, transcript tail)
    output: str = ""
    reruns: list[Attempt] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    # the recovery-ladder step that brought the case's board back during it (the test then
    # ran again on it): pytest's ``hil.recovered`` property; "" when the board did not hang
    recovered: str = ""

    @property
    def flaky(self) -> bool:
        """Failed at least once, then passed."""
        return self.status == "passed" and bool(self.reruns)


@dataclass
class Suite:
    """One board run."""

    name: str
    cases: list[Case] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)


def split(suite: Suite) -> list[Suite]:
    """One suite per rack entry that ran the suite's cases (``Case.properties``), so no
    suite names two rack entries. Cases that name none stay in a suite with the run's
    properties, less a rack entry or probe that is not one (a run over several entries).
    A suite whose cases all ran in one place comes back as it is."""
    groups: dict[tuple[tuple[str, str], ...], list[Case]] = {}
    for case in suite.cases:
        key = tuple(sorted((k, v) for k, v in case.properties.items() if k in PLACEMENT and v))
        if all(suite.properties.get(k) == v for k, v in key):
            key = ()  # ran where the suite says
        groups.setdefault(key, []).append(case)
    if len(groups) <= 1 and not any("," in suite.properties.get(k, "") for k in PLACEMENT):
        if groups:  # (all in one place, which the suite's properties may not say yet)
            suite.properties.update(next(iter(groups)))
        return [suite]
    out = []
    for key, cases in (groups or {(): []}).items():
        props = dict(suite.properties)
        props.update(key)
        for k in PLACEMENT:
            if "," in props.get(k, ""):
                del props[k]  # the run's list of entries: no single one ran these cases
        rack_id = dict(key).get("hil.rack_id")
        name = f"{suite.name}@{rack_id}" if rack_id and len(groups) > 1 else suite.name
        seconds = sum(c.seconds for c in cases) if len(groups) > 1 else suite.seconds
        out.append(Suite(name, cases, props, seconds, suite.timestamp))
    return out


def suite_properties(*, board: str, executor: str, image_sha256: str | None,
                     toolchain: str | None, **extra: str | None) -> dict[str, str]:
    props = {"hil.board": board, "hil.executor": executor,
             "hil.image.sha256": image_sha256 or "", "hil.toolchain": toolchain or ""}
    props.update({f"hil.{k.replace('_', '.') if k != 'rack_id' else k}": str(v)
                  for k, v in extra.items() if v is not None})
    return props


def to_xml(suites: list[Suite]) -> ET.ElementTree:
    # junit-10.xsd: no ``skipped`` here (each testsuite carries its own)
    root = ET.Element("testsuites", {
        "tests": str(sum(len(s.cases) for s in suites)),
        "failures": str(sum(s.count("failed") for s in suites)),
        "errors": str(sum(s.count("error") for s in suites)),
        "time": f"{sum(s.seconds for s in suites):.3f}",
    })
    host = socket.gethostname()
    for suite in suites:
        el = ET.SubElement(root, "testsuite", {
            "name": suite.name, "tests": str(len(suite.cases)),
            "failures": str(suite.count("failed")), "errors": str(suite.count("error")),
            "skipped": str(suite.count("skipped")), "time": f"{suite.seconds:.3f}",
            # UTC without a zone suffix: the Ant/Jenkins schema's timestamp pattern
            "timestamp": suite.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "hostname": host,
        })
        props = ET.SubElement(el, "properties")
        for key, value in suite.properties.items():
            ET.SubElement(props, "property", {"name": key, "value": value})
        for case in suite.cases:
            c = ET.SubElement(el, "testcase", {"classname": case.classname, "name": case.name,
                                               "time": f"{case.seconds:.3f}"})
            if case.status in ("failed", "error"):
                f = ET.SubElement(c, "failure" if case.status == "failed" else "error",
                                  {"message": case.message[:500]})
                f.text = case.text or case.message
            elif case.status == "skipped":
                ET.SubElement(c, "skipped", {"message": case.message})
            _write_reruns(c, case)
            if case.output:
                ET.SubElement(c, "system-out").text = case.output
    ET.indent(root)
    return ET.ElementTree(root)


_RERUN_TAGS = {(True, "failed"): "flakyFailure", (True, "error"): "flakyError",
               (False, "failed"): "rerunFailure", (False, "error"): "rerunError"}


def _write_reruns(el: ET.Element, case: Case) -> None:
    """Surefire's elements for the earlier attempts, each naming its board."""
    if case.status == "skipped":
        return  # (the schema allows no rerun elements beside <skipped>)
    for n, attempt in enumerate(case.reruns, 1):
        status = attempt.status if attempt.status in ("failed", "error") else "failed"
        tag = _RERUN_TAGS[(case.status == "passed", status)]
        message = f"attempt {n} on {attempt.where}: {attempt.message}".rstrip(": ")
        a = ET.SubElement(el, tag, {"message": message[:500], "type": status})
        if attempt.text:
            ET.SubElement(a, "stackTrace").text = attempt.text
        lines = [f"hil.board={attempt.board}", f"hil.rack_id={attempt.rack_id or ''}",
                 f"hil.executor={attempt.executor}", f"hil.time={attempt.seconds:.3f}"]
        ET.SubElement(a, "system-out").text = "\n".join(lines) + (
            "\n" + attempt.output if attempt.output else "")


def check_target(path: Path, option: str = "--junit") -> None:
    """Refuse, before a run, an output path (JUnit, report) that cannot be written: a
    directory, or a path below a file. Raises UsageError naming the option."""
    from hil.errors import UsageError

    if path.is_dir():
        what = "the JUnit verdict" if option == "--junit" else "the output"
        raise UsageError(f"{option} {path}: is a directory; {what} is a file",
                         hint=f"give a file name, e.g. {option} {path / 'report.xml'}")
    blocker = next((p for p in path.parents if p.exists() or p.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        raise UsageError(f"{option} {path}: {blocker} is a file, not a directory",
                         hint="give a path in an existing directory")
    if blocker is not None and not os.access(blocker, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: {blocker} is not writable",
                         hint="give a path in a writable directory")


def write(path: Path, suites: list[Suite]) -> None:
    """Write the JUnit file whole or not at all (a temp file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    to_xml(suites).write(buf, encoding="utf-8", xml_declaration=True)
    atomic_write(path, buf.getvalue())


def read_pytest(path: Path) -> list[Case]:
    """The test cases of a pytest ``--junitxml`` file (any number of suites)."""
    tree = ET.parse(path)
    cases = []
    for tc in tree.iter("testcase"):
        if tc.get("name") is None:  # the test an interrupt stopped: it has no result
            continue
        status, message, text = "passed", "", ""
        for child in tc:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = child.get("message", "")
                text = child.text or ""
                break
        out = "".join((o.text or "") for o in tc.findall("system-out"))
        props = {p.get("name", ""): p.get("value", "") for p in tc.iter("property")}
        if props.get("hil.recovered"):  # the recovery ladder brought its board back
            out = (f"hil: the board hung during this test and was recovered by "
                   f"{props['hil.recovered']}; the test ran again on it\n") + out
        cases.append(Case(tc.get("name", "?"), tc.get("classname", ""), status,
                          float(tc.get("time", "0") or 0), message, text, out,
                          properties={k: v for k, v in props.items() if k in PLACEMENT},
                          recovered=props.get("hil.recovered", "")))
    return cases


def read(path: Path) -> list[Suite]:
    """Read back a file written by ``write`` (for tests and merging)."""
    suites = []
    for el in ET.parse(path).getroot().iter("testsuite"):
        props = {p.get("name", ""): p.get("value", "") for p in el.iter("property")}
        suite = Suite(el.get("name", ""), properties=props, seconds=float(el.get("time", 0)))
        for tc in el.iter("testcase"):
            status = "passed"
            message = ""
            reruns = []
            for child in tc:
                if child.tag in ("failure", "error", "skipped"):
                    status = {"failure": "failed", "error": "error",
                              "skipped": "skipped"}[child.tag]
                    message = child.get("message", "")
                elif child.tag in ("flakyFailure", "flakyError", "rerunFailure", "rerunError"):
                    out = dict(line.split("=", 1) for line in
                               (child.findtext("system-out") or "").splitlines()[:4]
                               if "=" in line)
                    reruns.append(Attempt(
                        "failed" if child.tag.endswith("Failure") else "error",
                        child.get("message", ""), child.findtext("stackTrace") or "",
                        float(out.get("hil.time", 0) or 0), out.get("hil.board", ""),
                        out.get("hil.rack_id") or None, out.get("hil.executor", "")))
            suite.cases.append(Case(tc.get("name", ""), tc.get("classname", ""), status,
                                    message=message, reruns=reruns))
        suites.append(suite)
    return suites
