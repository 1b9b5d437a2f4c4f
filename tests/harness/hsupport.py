"""Helpers of the harness tests: the test firmware under firmware/, as hil apps."""

from __future__ import annotations

import shutil
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parent / "firmware"


def firmware_app(kind: str, directory: Path, app_yaml: str = "") -> Path:
    """firmware/<kind>/ copied to ``directory`` with an app.yaml (name, version, then
    ``app_yaml``)."""
    shutil.copytree(FIRMWARE / kind, directory)
    (directory / "app.yaml").write_text(f"name: {directory.name}\nversion: 0.1.0\n"
                                        + textwrap.dedent(app_yaml))
    return directory


def junit_cases(path: Path) -> dict[tuple[str, str], ET.Element]:
    """(classname, name) -> <testcase> of a JUnit file (checked against junit-10.xsd's rules)."""
    import junit_rules

    junit_rules.assert_valid(path)
    return {(c.get("classname", ""), c.get("name", "")): c
            for c in ET.parse(path).getroot().iter("testcase")}


def status(case: ET.Element) -> str:
    for tag, word in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        if case.find(tag) is not None:
            return word
    return "passed"
