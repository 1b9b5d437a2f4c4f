"""Helpers of the gate tests: tiny apps for the line harnesses."""

from __future__ import annotations

from pathlib import Path

CONSOLE_MAIN = """#include "hil.h"
int main(void)
{
    hil_println("hello %s");
    hil_println("READY"); /* what the pytest plugin's dut waits for */
    for (;;) {
    }
}
"""

UNITY_FAIL_MAIN = """#include "hil.h"
int main(void)
{
    hil_println("main.c:3:test_sum:PASS");
    hil_println("main.c:4:test_product:FAIL: expected 6 was 5");
    hil_println("2 Tests 1 Failures 0 Ignored");
    hil_println("FAIL");
    for (;;) {
    }
}
"""


def console_app(root: Path, name: str, extra: str = "") -> Path:
    """An app that prints ``hello NAME``; its app.yaml expects it (console harness)."""
    d = root / "apps" / name
    d.mkdir(parents=True)
    (d / "main.c").write_text(CONSOLE_MAIN % name)
    (d / "app.yaml").write_text(f"name: {name}\nharness: console\n"
                                f"expect: ['^hello {name}$']\n{extra}")
    return d


def unity_failing_app(root: Path, name: str, extra: str = "") -> Path:
    d = root / "apps" / name
    d.mkdir(parents=True)
    (d / "main.c").write_text(UNITY_FAIL_MAIN)
    (d / "app.yaml").write_text(f"name: {name}\nharness: unity\n{extra}")
    return d
