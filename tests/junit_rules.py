"""The rules of junit-10.xsd, the schema Jenkins' xunit plugin validates JUnit files against
(GitLab reads the same files), written from its documentation as a checker: allowed and
required attributes per element, allowed children and their order, and counts that match
the cases. ``check(path)`` returns the broken rules (an empty list: the file is valid)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

SUITES_ATTRS = {"name", "time", "tests", "failures", "errors"}  # nothing else, not skipped
SUITE_REQUIRED = {"name", "tests", "failures", "errors"}
SUITE_ATTRS = SUITE_REQUIRED | {"skipped", "time", "timestamp", "hostname", "id", "package",
                                "file", "log", "url", "version", "group"}
CASE_REQUIRED = {"name"}
CASE_ATTRS = CASE_REQUIRED | {"time", "classname", "group"}
RESULT = ("skipped", "error", "failure")
SUREFIRE = ("rerunFailure", "rerunError", "flakyFailure", "flakyError")
CASE_CHILDREN = (*RESULT, *SUREFIRE, "system-out", "system-err")
OUTCOME_ATTRS = {"message", "type"}
RERUN_CHILDREN = ("stackTrace", "system-out", "system-err")
DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
COUNT = re.compile(r"^[0-9]+$")
TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$")


def _attrs(el: ET.Element, where: str, allowed: set[str], required: set[str]) -> list[str]:
    errors = [f"{where}: attribute '{a}' is not allowed on <{el.tag}>"
              for a in sorted(set(el.attrib) - allowed)]
    errors += [f"{where}: <{el.tag}> needs attribute '{a}'" for a in sorted(required)
               if a not in el.attrib]
    for a in ("time",):
        if a in el.attrib and not DECIMAL.match(el.attrib[a]):
            errors.append(f"{where}: {a}='{el.attrib[a]}' is not a non-negative decimal")
    for a in ("tests", "failures", "errors", "skipped"):
        if a in el.attrib and not COUNT.match(el.attrib[a]):
            errors.append(f"{where}: {a}='{el.attrib[a]}' is not a count")
    if "timestamp" in el.attrib and not TIMESTAMP.match(el.attrib["timestamp"]):
        errors.append(f"{where}: timestamp='{el.attrib['timestamp']}' is not "
                      "YYYY-MM-DDThh:mm:ss (no zone)")
    return errors


def _case(tc: ET.Element, where: str) -> list[str]:
    errors = _attrs(tc, where, CASE_ATTRS, CASE_REQUIRED)
    tags = [c.tag for c in tc]
    errors += [f"{where}: <{t}> is not allowed in <testcase>" for t in tags
               if t not in CASE_CHILDREN]
    results = [t for t in tags if t in RESULT]
    if len(results) > 1:
        errors.append(f"{where}: more than one result element {results}")
    if "skipped" in results and any(t in SUREFIRE for t in tags):
        errors.append(f"{where}: a skipped case has rerun elements")
    if any(t.startswith("flaky") for t in tags) and results:
        errors.append(f"{where}: flaky elements belong to a case that passed in the end")
    if any(t.startswith("rerun") for t in tags) and not set(results) & {"failure", "error"}:
        errors.append(f"{where}: rerun elements belong to a case that failed in the end")
    # results first, then the Surefire attempts, then output
    rank = [0 if t in RESULT else 1 if t in SUREFIRE else 2 for t in tags if t in CASE_CHILDREN]
    if rank != sorted(rank):
        errors.append(f"{where}: children out of order {tags}")
    for child in tc:
        if child.tag in ("failure", "error", "skipped", *SUREFIRE):
            errors += _attrs(child, f"{where}/{child.tag}", OUTCOME_ATTRS, set())
        if child.tag in ("failure", "error", "skipped", "system-out", "system-err") and \
                len(child):
            errors.append(f"{where}/{child.tag}: has child elements (text only)")
        if child.tag in SUREFIRE:
            if "type" not in child.attrib:
                errors.append(f"{where}/{child.tag}: needs attribute 'type'")
            errors += [f"{where}/{child.tag}: <{g.tag}> not allowed" for g in child
                       if g.tag not in RERUN_CHILDREN]
    return errors


def _suite(ts: ET.Element, where: str) -> list[str]:
    errors = _attrs(ts, where, SUITE_ATTRS, SUITE_REQUIRED)
    tags = [c.tag for c in ts]
    order = {"properties": 0, "testcase": 1, "system-out": 2, "system-err": 3}
    errors += [f"{where}: <{t}> is not allowed in <testsuite>" for t in tags if t not in order]
    if [order[t] for t in tags if t in order] != sorted(order[t] for t in tags if t in order):
        errors.append(f"{where}: children out of order {tags}")
    if tags.count("properties") > 1:
        errors.append(f"{where}: more than one <properties>")
    for props in ts.findall("properties"):
        for p in props:
            if p.tag != "property":
                errors.append(f"{where}/properties: <{p.tag}> is not allowed")
            errors += _attrs(p, f"{where}/property", {"name", "value"}, {"name", "value"})
    cases = ts.findall("testcase")
    for i, tc in enumerate(cases):
        errors += _case(tc, f"{where}/testcase[{i}] {tc.get('name')}")
    want = {"tests": len(cases),
            "failures": sum(tc.find("failure") is not None for tc in cases),
            "errors": sum(tc.find("error") is not None for tc in cases),
            "skipped": sum(tc.find("skipped") is not None for tc in cases)}
    for key, n in want.items():
        if key in ts.attrib and ts.attrib[key] != str(n):
            errors.append(f"{where}: {key}={ts.attrib[key]} but the cases say {n}")
    return errors


def check(path: Path) -> list[str]:
    """Every junit-10.xsd rule the file at ``path`` breaks."""
    root = ET.parse(path).getroot()
    if root.tag == "testsuite":
        return _suite(root, "testsuite")
    if root.tag != "testsuites":
        return [f"root is <{root.tag}>, not <testsuites> or <testsuite>"]
    errors = _attrs(root, "testsuites", SUITES_ATTRS, set())
    errors += [f"testsuites: <{c.tag}> is not allowed" for c in root if c.tag != "testsuite"]
    suites = root.findall("testsuite")
    for i, ts in enumerate(suites):
        errors += _suite(ts, f"testsuite[{i}] {ts.get('name')}")
    for key in ("tests", "failures", "errors"):
        total = sum(int(ts.get(key, "0")) for ts in suites if COUNT.match(ts.get(key, "0")))
        if key in root.attrib and root.attrib[key] != str(total):
            errors.append(f"testsuites: {key}={root.attrib[key]} but its suites sum to {total}")
    return errors


def assert_valid(path: Path) -> None:
    errors = check(path)
    assert not errors, f"{path} breaks junit-10.xsd:\n" + "\n".join(errors)
