"""The HTML audit report, rendered by a real headless Debian Chromium driven over the
DevTools protocol (``--remote-debugging-pipe``): it loads, fetches nothing from the network,
logs no console errors, and its tables hold the store's data."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from auditdata import make_build_record

from hil import audit
from hil.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--remote-debugging-pipe"]


class Browser:
    """Headless Chromium with a DevTools session over fds 3/4; a context manager."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._buf = b""

    def __enter__(self) -> Browser:
        self.profile = tempfile.mkdtemp(prefix="hil-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        assert CHROMIUM is not None
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=wire, stdout=subprocess.DEVNULL,  # noqa: PLW1509
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=self.session)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        message, self._buf = self._buf.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 60) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def load(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, session=self.session)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True}, session=self.session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description")))
                                    for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("text", "exception"))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"]["text"])
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]


@pytest.fixture
def browser() -> Iterator[Browser]:
    with Browser() as b:
        yield b


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


@needs_chromium
def test_the_checker_sees_console_errors_and_network(tmp_path: Path, browser: Browser):
    """Control: a page that logs an error and fetches a remote image is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><title>x</title><img src="http://192.0.2.1/x.png">'
                    '<script>console.error("boom")</script>')
    browser.load(page.as_uri())
    assert any("boom" in e for e in browser.errors())
    assert any(u.startswith("http://192.0.2.1/") for u in browser.requests())
