"""JUnit XML verdicts: one ``<testsuite>`` per board run, with hil's properties.

Properties of every suite: ``hil.board``, ``hil.executor`` (``qemu`` or ``hardware``),
``hil.image.sha256`` (of the HEX), ``hil.toolchain``, and any extra the caller adds (the rack
adds ``hil.rack_id`` and ``hil.probe``). A failure's text carries the console transcript tail.
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


@dataclass
class Case:
    """One test case; status is passed, failed, error or skipped."""

    name: str
    classname: str
    status: str = "passed"
    seconds: float = 0.0
    message: str = ""
    text: str = ""  # failure details (assertion, transcript tail)
    output: str = ""


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


def suite_properties(*, board: str, executor: str, image_sha256: str | None,
                     toolchain: str | None, **extra: str | None) -> dict[str, str]:
    props = {"hil.board": board, "hil.executor": executor,
             "hil.image.sha256": image_sha256 or "", "hil.toolchain": toolchain or ""}
    props.update({f"hil.{k.replace('_', '.') if k != 'rack_id' else k}": str(v)
                  for k, v in extra.items() if v is not None})
    return props


def to_xml(suites: list[Suite]) -> ET.ElementTree:
    root = ET.Element("testsuites", {
        "tests": str(sum(len(s.cases) for s in suites)),
        "failures": str(sum(s.count("failed") for s in suites)),
        "errors": str(sum(s.count("error") for s in suites)),
        "skipped": str(sum(s.count("skipped") for s in suites)),
        "time": f"{sum(s.seconds for s in suites):.3f}",
    })
    host = socket.gethostname()
    for suite in suites:
        el = ET.SubElement(root, "testsuite", {
            "name": suite.name, "tests": str(len(suite.cases)),
            "failures": str(suite.count("failed")), "errors": str(suite.count("error")),
            "skipped": str(suite.count("skipped")), "time": f"{suite.seconds:.3f}",
            "timestamp": suite.timestamp.isoformat(timespec="seconds"), "hostname": host,
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
            if case.output:
                ET.SubElement(c, "system-out").text = case.output
    ET.indent(root)
    return ET.ElementTree(root)


def check_target(path: Path, option: str = "--junit") -> None:
    """Refuse, before a run, a JUnit path that cannot be written: a directory, or a path
    below a file. Raises UsageError naming the option."""
    from hil.errors import UsageError

    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; the JUnit verdict is a file",
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
        out = "".join((o.text or "") for o in tc.iter("system-out"))
        cases.append(Case(tc.get("name", "?"), tc.get("classname", ""), status,
                          float(tc.get("time", "0") or 0), message, text, out))
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
            for child in tc:
                if child.tag in ("failure", "error", "skipped"):
                    status = {"failure": "failed", "error": "error",
                              "skipped": "skipped"}[child.tag]
                    message = child.get("message", "")
            suite.cases.append(Case(tc.get("name", ""), tc.get("classname", ""), status,
                                    message=message))
        suites.append(suite)
    return suites
