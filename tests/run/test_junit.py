"""JUnit XML verdicts: properties per board run, failure text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

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
