"""The HTML audit report, rendered by a real headless Debian Chromium driven over the
DevTools protocol (``--remote-debugging-pipe``): it loads, fetches nothing from the network,
logs no console errors, and its tables hold the store's data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from auditdata import make_build_record
from browser import Browser, needs_chromium

from hil import audit
from hil.cli import main

READ_TABLES = """JSON.stringify({
  title: document.title,
  tables: Object.fromEntries([...document.querySelectorAll('table')].map(t => [t.id,
      [...t.tBodies[0].rows].map(r => ({data: Object.assign({}, r.dataset),
                                        cells: [...r.cells].map(c => c.innerText.trim())}))])),
  bars: [...document.querySelectorAll('#memory tbody tr[data-region]')].map(r => ({
      region: r.dataset.region,
      fill: r.querySelector('.fill').getBoundingClientRect().width,
      outer: r.querySelector('.bar').clientWidth,
      used: +r.querySelector('[data-used]').dataset.used,
      length: +r.querySelector('[data-used]').dataset.length}))
})"""


@pytest.fixture
def store_with_history(state: Path, tmp_path: Path) -> dict[str, Any]:
    images = {}
    for app, tc, version in (("shell", "gcc", "12.2.0"), ("shell", "clang", "14.0.6"),
                             ("blinky", "gcc", "12.2.0")):
        out = tmp_path / "build" / f"{app}-{tc}"
        record = make_build_record(out, app=app, toolchain=tc, version=version)
        record["regions"][0]["used"] = {"shell": 400000, "blinky": 1024}[app]
        images[(app, tc)] = audit.on_build(out, record).image_sha256
    shell = images[("shell", "gcc")]
    audit.record_flash(image_sha256=shell, board="nucleo-f4", rack_id="rack1-a", probe="P1",
                       chip_id=0x413, verified=True, user="alice")
    audit.record_test(image_sha256=shell, board="nucleo-f4", rack_id="rack1-a",
                      executor="hardware", passed=5, failed=1, skipped=0, junit="hw.xml",
                      toolchain="gcc")
    audit.record_test(image_sha256=images[("blinky", "gcc")], board="nucleo-f4", rack_id=None,
                      executor="qemu", passed=2, failed=0, skipped=0, junit="q.xml",
                      toolchain="gcc")
    return images


@needs_chromium
def test_report_renders_the_store_in_chromium(store_with_history: dict[str, Any],
                                              tmp_path: Path, browser: Browser,
                                              capsys: pytest.CaptureFixture[str]):
    html_path = tmp_path / "report" / "audit.html"
    assert main(["audit", "report", "--html", str(html_path)]) == 0
    assert str(html_path.resolve()) in capsys.readouterr().out
    browser.load(html_path.resolve().as_uri())
    page = json.loads(browser.evaluate(READ_TABLES))

    assert browser.errors() == []
    assert all(u.startswith(("file:", "data:")) for u in browser.requests()), browser.requests()
    assert page["title"] == "hil audit report"
    tables = page["tables"]
    assert {r["data"]["sha256"] for r in tables["images"]} == set(store_with_history.values())
    assert {r["data"]["id"] for r in tables["toolchains"]} == {
        make_build_record(app="x", toolchain=t, version=v)["toolchain"]["id"]
        for t, v in (("gcc", "12.2.0"), ("clang", "14.0.6"))}
    gcc_row = next(r for r in tables["toolchains"] if r["cells"][0] == "gcc")
    assert gcc_row["cells"][5] == "2"  # images built
    assert [(r["cells"][0], r["data"]["location"]) for r in tables["boards"]] == \
        [("rack1-a", "rack1-a")]
    shell = store_with_history[("shell", "gcc")]
    assert tables["boards"][0]["cells"][2] == shell[:16]
    verdicts = {(r["cells"][5], r["cells"][6]) for r in tables["verdicts"]}
    assert verdicts == {("hardware", "FAIL"), ("qemu", "PASS")}
    # memory bars: drawn, and as wide as the fraction of the region used
    assert len(page["bars"]) == 6
    for bar in page["bars"]:
        assert bar["outer"] > 0
        assert bar["fill"] == pytest.approx(bar["outer"] * bar["used"] / bar["length"], abs=2)
    assert any(b["fill"] > 0.7 * b["outer"] for b in page["bars"])  # shell uses 76% of flash


@needs_chromium
def test_report_since_filters(store_with_history: dict[str, Any], tmp_path: Path,
                              browser: Browser):
    html_path = tmp_path / "later.html"
    assert main(["audit", "report", "--since", "2999-01-01", "--html", str(html_path)]) == 0
    browser.load(html_path.as_uri())
    page = json.loads(browser.evaluate(READ_TABLES))
    assert browser.errors() == []
    assert page["tables"]["images"][0]["cells"] == ["(none)"]


def _attempt(cell_run: str, number: int, rack_id: str, cases: list[list[str]],
             outcome: str = "passed") -> None:
    audit.record_test(image_sha256="ab" * 32, board="nucleo-f4", rack_id=rack_id,
                      executor="hardware", passed=sum(c[1] == "passed" for c in cases),
                      failed=sum(c[1] == "failed" for c in cases), skipped=0, junit=None,
                      toolchain="gcc", app="shell", seconds=1.0, outcome=outcome,
                      attempt=number, retry="rerun" if number > 1 else None,
                      cell_run=cell_run, cases=cases)


ECHO, UART, BOOT = "t.test_echo::test_echo", "t.test_uart::test_echo", "t.test_boot::test_boot"
READ_FLAKY = """JSON.stringify({
  note: document.querySelector('#flaky').previousElementSibling.innerText,
  tests: [...document.querySelectorAll('#flaky tbody tr')].map(r => Object.assign({
      text: r.innerText}, r.dataset)),
  boards: [...document.querySelectorAll('#flaky-boards tbody tr')].map(r => Object.assign({
      rate: r.cells[4].innerText}, r.dataset))})"""


@needs_chromium
def test_report_shows_flake_rates_per_test_and_per_board(state: Path, tmp_path: Path,
                                                         browser: Browser,
                                                         capsys: pytest.CaptureFixture[str]):
    # test_echo of t.test_echo: flaky on f4-a and f4-b (the test); the test_echo of another
    # module (same name) flaky only on f4-b (the board); test_boot never fails
    for run, where in (("r1", "f4-a"), ("r2", "f4-b")):
        _attempt(run, 1, where, [[ECHO, "failed"], [BOOT, "passed"]], outcome="failed")
        _attempt(run, 2, where, [[ECHO, "passed"]])
    _attempt("r3", 1, "f4-b", [[UART, "failed"], [BOOT, "passed"]], outcome="failed")
    _attempt("r3", 2, "f4-b", [[UART, "passed"]])
    _attempt("r4", 1, "f4-a", [[UART, "passed"], [BOOT, "passed"]])
    html_path = tmp_path / "audit.html"
    assert main(["audit", "report", "--html", str(html_path)]) == 0
    capsys.readouterr()
    assert main(["audit", "flaky", "--json"]) == 0
    query = json.loads(capsys.readouterr().out)
    browser.load(html_path.resolve().as_uri())
    page = json.loads(browser.evaluate(READ_FLAKY))
    assert browser.errors() == []
    rows = {(r["case"], r["board"]): (int(r["runs"]), int(r["failures"]), int(r["flaky"]))
            for r in page["tests"]}
    # the same numbers as `hil audit flaky`, for every test that failed at least once
    assert rows == {(t["case"], b["board"]): (b["runs"], b["failures"], b["flaky"])
                    for t in query["tests"] if t["failures"] for b in t["boards"]}
    assert rows == {(ECHO, "f4-a"): (2, 1, 1), (ECHO, "f4-b"): (2, 1, 1),
                    (UART, "f4-a"): (1, 0, 0), (UART, "f4-b"): (2, 1, 1)}
    first: dict[str, str] = {}  # a test's first row holds its app, name and diagnosis
    for r in page["tests"]:
        first.setdefault(r["case"], r["text"])
    assert "flaky on every board it ran on: a flaky test" in first[ECHO]
    assert "flaky only on f4-b: look at the board" in first[UART]
    assert "3 test case(s)" in page["note"] and "1 never failed" in page["note"]
    # per board, over every test (test_boot included): f4-b flaky in 2 of its 6 runs
    assert {b["board"]: (int(b["runs"]), int(b["flaky"]), b["rate"]) for b in page["boards"]} \
        == {"f4-a": (5, 1, "20%"), "f4-b": (6, 2, "33%")}


@needs_chromium
def test_the_checker_sees_console_errors_and_network(tmp_path: Path, browser: Browser):
    """Control: a page that logs an error and fetches a remote image is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><title>x</title><img src="http://192.0.2.1/x.png">'
                    '<script>console.error("boom")</script>')
    browser.load(page.as_uri())
    assert any("boom" in e for e in browser.errors())
    assert any(u.startswith("http://192.0.2.1/") for u in browser.requests())
