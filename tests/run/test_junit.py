"""JUnit XML verdicts: properties per board run, failure text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import junit_rules
import pytest

from hil import junit


def test_write_properties_and_failures(tmp_path):
    suite = junit.Suite("nucleo-f4/shell", properties=junit.suite_properties(
        board="nucleo-f4", executor="qemu", image_sha256="ab" * 32, toolchain="gcc 12.2.1",
        rack_id="f4-a", probe="hilsim:f4-a"))
    suite.cases = [junit.Case("test_ok", "c"),
                   junit.Case("test_bad", "c", "failed", 0.5, "boom", "boom\n  | last line"),
                   junit.Case("test_skip", "c", "skipped", message="hardware_only")]
    path = tmp_path / "out" / "j.xml"
    junit.write(path, [suite])
    root = ET.parse(path).getroot()
    ts = root.find("testsuite")
    props = {p.get("name"): p.get("value") for p in ts.iter("property")}
    assert props == {"hil.board": "nucleo-f4", "hil.executor": "qemu",
                     "hil.image.sha256": "ab" * 32, "hil.toolchain": "gcc 12.2.1",
                     "hil.rack_id": "f4-a", "hil.probe": "hilsim:f4-a"}
    assert (ts.get("tests"), ts.get("failures"), ts.get("skipped")) == ("3", "1", "1")
    assert "| last line" in ts.find("testcase[@name='test_bad']/failure").text
    back = junit.read(path)
    assert [c.status for c in back[0].cases] == ["passed", "failed", "skipped"]


def _suite(name: str = "nucleo-f4/shell", **extra) -> junit.Suite:
    return junit.Suite(name, properties=junit.suite_properties(
        board="nucleo-f4", executor="qemu", image_sha256="ab" * 32, toolchain="gcc",
        **extra))


def test_written_file_follows_junit10_rules(tmp_path):
    suite = _suite(rack_id="f4-a", probe="hilsim:f4-a")
    suite.cases = [junit.Case("test_ok", "c"),
                   junit.Case("test_bad", "c", "failed", 0.5, "boom", "trace"),
                   junit.Case("test_err", "c", "error", message="lost"),
                   junit.Case("test_skip", "c", "skipped", message="hardware_only",
                              output="out")]
    path = tmp_path / "j.xml"
    junit.write(path, [suite, _suite("hifive1-revb/shell")])
    junit_rules.assert_valid(path)
    root = ET.parse(path).getroot()
    assert "skipped" not in root.attrib  # Jenkins' xunit plugin rejects it there
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")


BROKEN = [
    pytest.param('<testsuites skipped="0" tests="0" failures="0" errors="0"/>',
                 "attribute 'skipped' is not allowed on <testsuites>", id="skipped-on-root"),
    pytest.param('<testsuites><testsuite name="s" tests="1" failures="0"><testcase name="a"/>'
                 '</testsuite></testsuites>', "needs attribute 'errors'", id="no-errors"),
    pytest.param('<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
                 '<testcase name="a"><properties/></testcase></testsuite></testsuites>',
                 "<properties> is not allowed in <testcase>", id="testcase-properties"),
    pytest.param('<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
                 '<testcase name="a" file="x.py"/></testsuite></testsuites>',
                 "attribute 'file' is not allowed on <testcase>", id="testcase-file"),
    pytest.param('<testsuites><testsuite name="s" tests="2" failures="0" errors="0">'
                 '<testcase name="a"/></testsuite></testsuites>',
                 "tests=2 but the cases say 1", id="count-mismatch"),
    pytest.param('<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
                 '<testcase name="a"><failure/></testcase></testsuite></testsuites>',
                 "failures=0 but the cases say 1", id="failure-not-counted"),
    pytest.param('<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
                 '<testcase name="a"><flakyFailure message="x"/></testcase></testsuite>'
                 '</testsuites>', "needs attribute 'type'", id="flaky-without-type"),
    pytest.param('<testsuites><testsuite name="s" tests="1" failures="0" errors="0" '
                 'timestamp="2026-01-01T00:00:00+00:00"><testcase name="a"/></testsuite>'
                 '</testsuites>', "is not YYYY-MM-DDThh:mm:ss", id="timestamp-zone"),
]


@pytest.mark.parametrize("xml, message", BROKEN)
def test_the_rules_catch_what_jenkins_rejects(tmp_path, xml, message):
    path = tmp_path / "bad.xml"
    path.write_text(xml)
    assert any(message in e for e in junit_rules.check(path)), junit_rules.check(path)


def test_reruns_become_surefire_elements_naming_each_board(tmp_path):
    first = junit.Attempt("failed", "assert 1 == 2", "trace 1", 0.2, "nucleo-f4", "f4-a",
                          "qemu", output="console line")
    flaky = junit.Case("test_flaky", "c", reruns=[first])
    still = junit.Case("test_still", "c", "failed", message="boom", text="t", reruns=[
        first, junit.Attempt("error", "console lost", board="nucleo-f4", rack_id="f4-b",
                             executor="qemu")])
    suite = _suite()
    suite.cases = [flaky, still]
    path = tmp_path / "j.xml"
    junit.write(path, [suite])
    junit_rules.assert_valid(path)
    cases = {c.get("name"): c for c in ET.parse(path).iter("testcase")}
    assert flaky.flaky and not still.flaky
    assert [c.tag for c in cases["test_flaky"]] == ["flakyFailure"]
    el = cases["test_flaky"].find("flakyFailure")
    assert el.get("message") == "attempt 1 on nucleo-f4 (f4-a, qemu): assert 1 == 2"
    assert el.findtext("stackTrace") == "trace 1"
    assert "hil.rack_id=f4-a" in el.findtext("system-out")
    assert "console line" in el.findtext("system-out")
    assert [c.tag for c in cases["test_still"]] == ["failure", "rerunFailure", "rerunError"]
    assert "f4-b" in cases["test_still"].find("rerunError").get("message")
    suite_el = ET.parse(path).find("testsuite")
    assert (suite_el.get("tests"), suite_el.get("failures")) == ("2", "1")  # flaky = passed
    back = {c.name: c for c in junit.read(path)[0].cases}
    assert [(a.status, a.rack_id, a.board) for a in back["test_still"].reruns] == \
        [("failed", "f4-a", "nucleo-f4"), ("error", "f4-b", "nucleo-f4")]
    assert back["test_flaky"].flaky


def _placed(name: str, rack: str) -> junit.Case:
    return junit.Case(name, "c", properties={"hil.rack_id": rack, "hil.probe": f"hilsim:{rack}",
                                             "hil.executor": "qemu"})


def test_split_gives_one_suite_per_rack_entry(tmp_path):
    suite = _suite(rack_id="f4-a,f4-b", probe="hilsim:f4-a,hilsim:f4-b")
    suite.cases = [_placed("t1", "f4-a"), _placed("t2", "f4-b"), _placed("t3", "f4-a"),
                   junit.Case("cancelled", "c", "error", message="run cancelled")]
    parts = junit.split(suite)
    by_name = {s.name: s for s in parts}
    assert set(by_name) == {"nucleo-f4/shell@f4-a", "nucleo-f4/shell@f4-b", "nucleo-f4/shell"}
    assert [c.name for c in by_name["nucleo-f4/shell@f4-a"].cases] == ["t1", "t3"]
    assert by_name["nucleo-f4/shell@f4-b"].properties["hil.probe"] == "hilsim:f4-b"
    rest = by_name["nucleo-f4/shell"].properties  # ran on no single entry: names none
    assert "hil.rack_id" not in rest and rest["hil.board"] == "nucleo-f4"
    path = tmp_path / "j.xml"
    junit.write(path, parts)
    junit_rules.assert_valid(path)
    for ts in ET.parse(path).iter("testsuite"):
        assert "," not in {p.get("name"): p.get("value")
                           for p in ts.iter("property")}.get("hil.rack_id", "")


def test_split_keeps_a_suite_that_ran_in_one_place():
    suite = _suite(rack_id="f4-a", probe="hilsim:f4-a")
    suite.cases = [_placed("t1", "f4-a"), junit.Case("cancelled", "c", "error")]
    (same,) = junit.split(suite)
    assert same is suite and [c.name for c in same.cases] == ["t1", "cancelled"]
    one = _suite()
    one.cases = [_placed("t1", "f4-b")]
    (placed,) = junit.split(one)
    assert placed.properties["hil.rack_id"] == "f4-b"
